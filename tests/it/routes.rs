//! Routes keep the gateway's promises (issue 13, items 3 to 5), end to end with the real
//! binary, the sample core-banking upstream and the shipped policies:
//!
//! - a route without an action (or without field rules) never reaches upstream paths a
//!   decided route guards: `privgate check` and start refuse the configuration;
//! - the data subject is the customer, whatever entity the path names: an account's owner
//!   is read from the upstream's answer and decided on before anything is released;
//! - a subject id has one spelling per route: any other is refused before any consent
//!   lookup, key or audit pseudonym is made for it.

use crate::harness::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use privgate::demo::data::Bank;
use serde_json::{json, Value};
use sqlx::Connection;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The one spelling of a sample customer id (as in the demo).
const CUSTOMER_ID: &str = "[1-9][0-9]{0,9}|c-[1-9][0-9]{0,11}";

fn check(text: &str, ws: &Workspace) -> CliRun {
    let path = ws.write("privgate.toml", text);
    privgate(["check".as_ref(), "--config".as_ref(), path.as_os_str()])
}

/// Decided customer routes on `main` (the shipped field rules), a policy set and `extra`.
fn decided(ws: &Workspace, extra: &str) -> String {
    let routes = decided_customers(extra);
    without_plain_routes(config(ws, "127.0.0.1:9".parse().unwrap(), "", &routes))
}

#[test]
fn check_refuses_plain_routes_that_reach_decided_records() {
    let ws = Workspace::new();
    let good = decided(&ws, "");
    let run = check(&good, &ws);
    assert!(run.ok, "{}", run.all());
    // (route added beside the decided one, fragment of the refusal)
    let cases = [
        // The shipped demo's fraud review: strips its prefix, so it reaches everything.
        (
            "[[route]]\nname = \"fraud-review\"\npath_prefix = \"/review\"\nstrip_prefix = true\nmethods = [\"GET\"]\nupstream = \"main\"",
            "route `fraud-review` has no action",
        ),
        // A catch-all for other methods.
        (
            "[[route]]\nname = \"writes\"\npath_prefix = \"/\"\nmethods = [\"PUT\", \"DELETE\"]\nupstream = \"main\"",
            "route `writes` has no action",
        ),
        // An export under the decided prefix, authenticated but not decided.
        (
            "[[route]]\nname = \"export\"\npath_prefix = \"/customers/export\"\nupstream = \"main\"\nauthenticate = true",
            "route `export` has no action",
        ),
        // Another name for the same service, with a base path on the guarded records.
        (
            "[upstream.raw]\nurl = \"http://localhost:9/customers/\"\n[[route]]\nname = \"people\"\npath_prefix = \"/people\"\nstrip_prefix = true\nupstream = \"raw\"",
            "route `people` has no action",
        ),
        // The same service by other spellings of this machine's address.
        (
            "[upstream.raw]\nurl = \"http://0.0.0.0:9\"\n[[route]]\nname = \"raw\"\npath_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
            "route `raw` has no action",
        ),
        (
            "[upstream.raw]\nurl = \"http://127.1:9\"\n[[route]]\nname = \"raw\"\npath_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
            "route `raw` has no action",
        ),
        (
            "[upstream.raw]\nurl = \"http://[::ffff:127.0.0.1]:9\"\n[[route]]\nname = \"raw\"\npath_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
            "route `raw` has no action",
        ),
        // Prefixes an upstream decodes or cuts onto the guarded records.
        (
            "[[route]]\nname = \"encoded\"\npath_prefix = \"/%63ustomers\"\nupstream = \"main\"",
            "route `encoded` has no action",
        ),
        (
            "[[route]]\nname = \"params\"\npath_prefix = \"/customers;v=2\"\nupstream = \"main\"",
            "route `params` has no action",
        ),
        // Decided, but without field rules: card numbers would pass in clear.
        (
            "[[route]]\nname = \"review\"\npath_prefix = \"/review\"\nstrip_prefix = true\nupstream = \"main\"\nbody = \"buffered\"\naction = \"customers:read\"",
            "route `review` reaches upstream paths",
        ),
    ];
    for (route, fragment) in cases {
        let run = check(&format!("{good}\n{route}\n"), &ws);
        assert!(!run.ok, "check passed with {route}");
        assert!(
            run.all().contains("privgate.toml: ") && run.all().contains(fragment),
            "{fragment}: {}",
            run.all()
        );
    }
    // A plain route on paths no decided route reaches is fine.
    let beside = format!(
        "{good}\n[[route]]\nname = \"health\"\npath_prefix = \"/health\"\nupstream = \"main\"\n"
    );
    let run = check(&beside, &ws);
    assert!(run.ok, "{}", run.all());
    // `serve` refuses what `check` refuses.
    let path = ws.write(
        "privgate.toml",
        &format!("{good}\n[[route]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"main\"\n"),
    );
    let out = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("route `all` has no action"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_warns_about_policy_actions_no_route_uses() {
    let ws = Workspace::new();
    let run = check(&decided(&ws, ""), &ws);
    assert!(run.ok, "{}", run.all());
    // The shipped payments policies promise a second factor above 1,000.00: with no
    // payments route they decide nothing, and the operator hears so.
    assert!(
        run.stderr
            .contains("warning: action `payments:create` is used by no route")
            && run.stderr.contains("large-payments-need-step-up"),
        "{}",
        run.all()
    );
    assert!(!run.stderr.contains("`customers:read` is used by no route"));
    // The gateway's own services' actions are not route actions.
    assert!(!run.stderr.contains("`consent:grant`"), "{}", run.stderr);
    let with_payments = decided(
        &ws,
        "[[route]]\nname = \"payments\"\npath_prefix = \"/payments\"\nupstream = \"main\"\nbody = \"buffered\"\naction = \"payments:create\"\namount = \"$.amount_minor\"",
    );
    let run = check(&with_payments, &ws);
    assert!(run.ok, "{}", run.all());
    assert!(!run.stderr.contains("`payments:create`"), "{}", run.all());
}

#[test]
fn check_refuses_routes_that_cannot_name_their_subject() {
    let ws = Workspace::new();
    let good = decided(&ws, "");
    let declared = "subject = { from = \"path\", id = \"integer\" }";
    // (the decided route's subject lines instead, fragment of the refusal)
    let cases = [
        // The old form took any segment after the prefix as a customer id.
        ("subject = \"after_prefix\"", "is no longer accepted"),
        // No spelling declared: ids could never be canonical.
        ("subject = { from = \"path\" }", "missing field `id`"),
        // The shipped rules name per-element subjects on this route: their form is needed.
        ("", "field rules (routes.toml) name data subjects"),
        // Decided on the upstream's answer: only if the request changes nothing.
        (
            "subject = { from = \"response\", selector = \"$.customer_id\", id = \"integer\" }\nmethods = [\"GET\", \"POST\"]",
            "only methods that change nothing",
        ),
    ];
    for (lines, fragment) in cases {
        let text = good
            .replacen("methods = [\"GET\"]\n", "", 1)
            .replacen(declared, lines, 1);
        let run = check(&text, &ws);
        assert!(!run.ok, "check passed with {lines}");
        assert!(run.all().contains(fragment), "{fragment}: {}", run.all());
    }
    // A path subject is only for paths naming the subject's entity: an account, card or
    // loan id after the prefix is never taken as a customer id.
    for prefix in ["/accounts", "/cards", "/v2/loans", "/customers/7/accounts"] {
        let text = good.replacen(
            "path_prefix = \"/customers\"",
            &format!("path_prefix = \"{prefix}\""),
            1,
        );
        let run = check(&text, &ws);
        assert!(!run.ok, "check passed with a path subject under {prefix}");
        assert!(
            run.all().contains("as a Customer id") && run.all().contains("from = \"response\""),
            "{prefix}: {}",
            run.all()
        );
    }
    for prefix in ["/customers", "/review/customers/", "/v2/Customer"] {
        let text = good.replacen(
            "path_prefix = \"/customers\"",
            &format!("path_prefix = \"{prefix}\""),
            1,
        );
        let run = check(&text, &ws);
        assert!(run.ok, "{prefix}: {}", run.all());
    }
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// The sample bank behind a gateway with the demo's customer and account routes: client-a
/// a partner of `fintech`, client-b a teller; a keyring and an audit trail.
struct Bank0 {
    ws: Workspace,
    config: PathBuf,
    upstream: SocketAddr,
    _task: tokio::task::JoinHandle<()>,
}

async fn bank() -> Bank0 {
    let ws = Workspace::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let task = tokio::spawn(privgate::demo::upstream::serve(listener));
    let extra = format!(
        r#"{protected}
[[route]]
name = "accounts"
path_prefix = "/accounts"
methods = ["GET"]
upstream = "main"
body = "buffered"
action = "accounts:read"
subject = {{ from = "response", selector = "$.customer_id", id = "integer" }}

{fintech_app}"#,
        protected = protected_customers(&ws, "4d", CUSTOMER_ID),
        fintech_app = fintech_app_client(&ws),
    );
    let mtls = optional_mtls(&ws);
    let config = ws.write(
        "privgate.toml",
        &without_plain_routes(config(&ws, upstream, &mtls, &extra)),
    );
    let init = cli(&config, &["keys", "init"]);
    assert!(init.ok, "{}", init.all());
    Bank0 {
        ws,
        config,
        upstream,
        _task: task,
    }
}

fn who_saw(config: &Path, subject: &str) -> CliRun {
    let config = config.to_str().unwrap();
    privgate(["audit", "who-saw", "--config", config, "--subject", subject])
}

fn cli(config: &Path, args: &[&str]) -> CliRun {
    let mut all = vec![args[0], "--config", config.to_str().unwrap()];
    all.extend_from_slice(&args[1..]);
    privgate(all)
}

#[tokio::test]
async fn an_accounts_data_subject_is_its_owner_whatever_the_ids_collide() {
    let b = bank().await;
    let gw = Gateway::start(&b.config);
    let partner = https_client(&b.ws, Some("certs/client-a"), false);
    let sample = Bank::generate();
    // Customer 7 consents; account 7 belongs to someone else.
    let customer = 7;
    grant_account_information(&b.config, &customer.to_string());
    assert_ne!(sample.accounts[6].customer_id, customer);
    let own: Vec<u32> = sample
        .accounts
        .iter()
        .filter(|a| a.customer_id == customer)
        .map(|a| a.id)
        .collect();
    assert!(!own.is_empty() && !own.contains(&customer));
    // Every account among the first 30: readable exactly when customer 7 owns it.
    for account in sample.accounts.iter().take(30) {
        let url = gw.url(&format!("/accounts/{}/transactions", account.id));
        let reply = get(&partner, &url).await;
        if account.customer_id == customer {
            assert_eq!(reply.status, StatusCode::OK, "account {}", account.id);
            assert_eq!(reply.json()["customer_id"], customer);
        } else {
            assert_eq!(
                reply.error_code(),
                "consent_required",
                "account {} of customer {}",
                account.id,
                account.customer_id
            );
            // Nothing of the upstream's answer is released with the refusal.
            assert!(!text(&reply).contains("transactions"), "{}", text(&reply));
        }
    }
    // The owner's consent opens account 7; customer 7's never did.
    let owner = sample.accounts[6].customer_id;
    grant_account_information(&b.config, &owner.to_string());
    // The owner's (empty) consents were read above and may be cached for the revocation
    // window: the CLI's grant holds here once it has passed.
    after_revocation_window().await;
    let reply = get(&partner, &gw.url("/accounts/7/transactions")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", text(&reply));
    assert_eq!(reply.json()["customer_id"], owner);
    // An answer that names no owner is never released, even to a teller.
    let teller = https_client(&b.ws, Some("certs/client-b"), false);
    for path in ["/accounts/999999/transactions", "/accounts/7"] {
        let reply = get(&teller, &gw.url(path)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_GATEWAY,
            "{path}: {}",
            text(&reply)
        );
        assert!(!text(&reply).contains("not found"), "{}", text(&reply));
    }
    // The audit trail names the owner, not the account id.
    let allowed = |subject: &str| {
        let who = who_saw(&b.config, subject);
        assert!(who.ok, "{}", who.all());
        who.stdout
            .lines()
            .filter(|l| l.contains("\tallow\t"))
            .count()
    };
    let own_read = sample
        .accounts
        .iter()
        .take(30)
        .filter(|a| a.customer_id == customer)
        .count();
    assert_eq!(allowed("7"), own_read);
    let who = who_saw(&b.config, &owner.to_string());
    assert!(
        who.stdout.lines().any(|l| l.contains("\tallow\t")),
        "{}",
        who.stdout
    );
}

async fn post(client: &HttpsClient, url: &str, body: &Value) -> Reply {
    let req = Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    send(client, req).await.unwrap()
}

/// Rows of per-subject key material in the gateway's store.
async fn subject_key_rows(ws: &Workspace) -> i64 {
    let url = format!("sqlite://{}", ws.path("privgate.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM key_subjects")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n
}

#[tokio::test]
async fn subject_ids_have_one_spelling_and_others_are_refused_before_any_lookup() {
    let b = bank().await;
    let gw = Gateway::start(&b.config);
    let teller = https_client(&b.ws, Some("certs/client-b"), false);
    let reply = get(&teller, &gw.url("/customers/42")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["id"], 42);
    // The sample upstream parses every one of these as customer 42.
    for spelling in [
        "042",
        "0042",
        "+42",
        "42.0",
        "%34%32",
        "4%32",
        "%2B42",
        "%D9%A4%D9%A2",
    ] {
        let reply = get(&teller, &gw.url(&format!("/customers/{spelling}"))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{spelling}");
        assert_eq!(reply.error_code(), "invalid_subject", "{spelling}");
    }
    // Onboarding: the new customer's id in the body is the subject, in the same form.
    let customer =
        |id: Value| json!({"id": id, "name": "Jane Example", "email": "jane@example.com"});
    let made = post(&teller, &gw.url("/customers"), &customer(json!("c-1"))).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", text(&made));
    let keys = subject_key_rows(&b.ws).await;
    for id in [
        json!("C-1"),
        json!("c-01"),
        json!(" c-2"),
        json!("c-2 "),
        json!("c-2\n"),
        json!(""),
        json!(null),
        json!(["c-2"]),
    ] {
        let reply = post(&teller, &gw.url("/customers"), &customer(id.clone())).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{id}: {}",
            text(&reply)
        );
        assert_eq!(reply.error_code(), "invalid_subject", "{id}");
    }
    let missing = post(&teller, &gw.url("/customers"), &json!({"name": "No Id"})).await;
    assert_eq!(missing.error_code(), "invalid_subject");
    // None of them reached the upstream or made a key.
    for id in ["C-1", "c-01"] {
        let raw = reqwest_like_get(b.upstream, &format!("/customers/{id}")).await;
        assert!(raw.contains("not found"), "{id}: {raw}");
    }
    for spelling in ["C-1", "c-01", "c-1%20", "c-%31"] {
        let reply = get(&teller, &gw.url(&format!("/customers/{spelling}"))).await;
        assert_eq!(reply.error_code(), "invalid_subject", "{spelling}");
    }
    assert_eq!(subject_key_rows(&b.ws).await, keys);
    let reply = get(&teller, &gw.url("/customers/c-1")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", text(&reply));

    // One subject, one id: who-saw 42 lists the one read of customer 42, nothing else
    // names a spelling of it.
    let who = who_saw(&b.config, "42");
    assert!(who.ok, "{}", who.all());
    let allowed = who
        .stdout
        .lines()
        .filter(|l| l.contains("\tallow\t"))
        .count();
    assert_eq!(allowed, 1, "{}", who.stdout);
    // Another spelling is refused (the gateway never recorded one), and asking makes no
    // key row for it.
    let keys = subject_key_rows(&b.ws).await;
    for spelling in ["042", "+42", " 42", "42 ", "\u{ff14}\u{ff12}"] {
        let who = who_saw(&b.config, spelling);
        assert!(
            !who.ok && who.stderr.contains("as the routes spell subject ids"),
            "{spelling}: {}",
            who.all()
        );
        assert!(
            !who.stdout.lines().any(|l| !l.starts_with("time_ms")),
            "{spelling}: {}",
            who.stdout
        );
    }
    assert_eq!(subject_key_rows(&b.ws).await, keys);
}

/// The sample upstream's answer, read directly (bypassing the gateway).
async fn reqwest_like_get(upstream: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(upstream).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

//! Consent-scoped access end to end: registered clients over mutual TLS, the shipped Cedar
//! policies, consent granted and revoked with the CLI, and every replica refusing from the
//! moment a revocation commits.

use crate::harness::*;
use crate::store::postgres_store;
use http::StatusCode;
use std::path::Path;

/// Config: optional mTLS, the shipped policies, client-a a partner of `fintech`, client-b
/// a teller, policy-decided routes under /accounts/customers and /customers (the customer
/// id in the path after each).
fn consent_config(ws: &Workspace, upstream: std::net::SocketAddr, store: &str) -> String {
    let policies = shipped_policies();
    let mtls = optional_mtls(ws);
    let extra = format!(
        r#"
[[route]]
name = "accounts"
path_prefix = "/accounts/customers"
upstream = "main"
action = "accounts:read"
subject = {{ from = "path", id = "integer" }}

[[route]]
name = "customers"
path_prefix = "/customers"
upstream = "main"
body = "buffered"
action = "customers:read"
subject = {{ from = "path", id = "integer" }}

[policy]
dir = "{policies}"

{store}

{fintech_app}
[[client]]
id = "branch-desk"
certificate_sha256 = "{b}"
roles = ["teller"]
purposes = ["customer_service"]
"#,
        policies = policies.display(),
        fintech_app = fintech_app_client(ws),
        b = thumbprint(ws, "certs/client-b.pem"),
    );
    without_plain_routes(config(ws, upstream, &mtls, &extra))
}

/// A `[store]` section turning the revocation window off: every request reads the store.
const NO_WINDOW: &str = "[store]\nrevocation_window = \"0s\"";

fn consent_cli(config: &Path, args: &str) -> String {
    let mut all = vec![
        "consent".to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
    ];
    all.extend(args.split(' ').map(str::to_owned));
    let run = privgate(all);
    assert!(run.ok, "{}", run.all());
    run.stdout.trim().to_owned()
}

async fn code(client: &HttpsClient, url: &str, purpose: Option<&str>) -> (StatusCode, String) {
    let mut req = http::Request::get(url);
    if let Some(p) = purpose {
        req = req.header("x-purpose", p);
    }
    let reply = send(client, req.body(Default::default()).unwrap())
        .await
        .unwrap();
    let code = if reply.status == StatusCode::OK {
        String::new()
    } else {
        reply.error_code()
    };
    (reply.status, code)
}

#[tokio::test]
async fn consent_grants_and_revocations_decide_access_at_once() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    // Window 0: the CLI is another process, and "at once" means the very next request.
    let path = ws.write("privgate.toml", &consent_config(&ws, up.addr, NO_WINDOW));
    let gw = Gateway::start(&path);
    let partner = https_client(&ws, Some("certs/client-a"), false);
    let teller = https_client(&ws, Some("certs/client-b"), false);
    let anonymous = https_client(&ws, None, false);
    let url = gw.url("/accounts/customers/42/balances");

    let reply = get(&anonymous, &url).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::UNAUTHORIZED, "authentication_required")
    );
    assert!(reply.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(
        code(&partner, &url, None).await,
        (StatusCode::FORBIDDEN, "consent_required".into())
    );

    let id = consent_cli(&path, "grant --subject 42 --grantee fintech --purpose account_information --permission ReadAccountsBasic");
    assert_eq!(
        code(&partner, &url, None).await,
        (StatusCode::OK, String::new())
    );
    // Consent is per subject and per purpose.
    assert_eq!(
        code(&partner, &gw.url("/accounts/customers/43/balances"), None)
            .await
            .1,
        "consent_required"
    );
    assert_eq!(
        code(&partner, &url, Some("marketing")).await.1,
        "purpose_not_allowed"
    );
    // Tellers need no consent; they do need their own purpose.
    assert_eq!(
        code(&teller, &gw.url("/customers/42"), None).await.0,
        StatusCode::OK
    );

    consent_cli(&path, &format!("revoke {id}"));
    // The very next request is refused: no cache, no wait.
    assert_eq!(
        code(&partner, &url, None).await,
        (StatusCode::FORBIDDEN, "consent_required".into())
    );
    drop(gw);
}

/// Requests keep arriving, several at a time, while the consent is revoked: every request
/// that starts after the revocation has committed (the CLI returned) is refused, and none
/// fails otherwise.
#[tokio::test]
async fn a_revocation_while_requests_are_in_flight_refuses_every_later_one() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let path = ws.write("privgate.toml", &consent_config(&ws, up.addr, NO_WINDOW));
    let gw = Gateway::start(&path);
    let partner = https_client(&ws, Some("certs/client-a"), false);
    let url = gw.url("/accounts/customers/42/balances");
    let id = consent_cli(&path, "grant --subject 42 --grantee fintech --purpose account_information --permission ReadAccountsBasic");
    assert_eq!(code(&partner, &url, None).await.0, StatusCode::OK);

    let revoked = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (partner, url) = (partner.clone(), url.clone());
            let (revoked, stop) = (revoked.clone(), stop.clone());
            tokio::spawn(async move {
                // (started after the revocation committed, status, code)
                let mut seen = Vec::new();
                for _ in 0..2000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let after = revoked.load(Ordering::SeqCst);
                    let (status, code) = code(&partner, &url, None).await;
                    seen.push((after, status, code));
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let revoke = tokio::task::spawn_blocking({
        let path = path.clone();
        move || consent_cli(&path, &format!("revoke {id}"))
    });
    revoke.await.unwrap();
    revoked.store(true, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut before, mut after) = (0, 0);
    for worker in workers {
        for (started_after, status, code) in worker.await.unwrap() {
            if started_after {
                after += 1;
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::FORBIDDEN, "consent_required")
                );
            } else {
                before += 1;
                assert!(
                    status == StatusCode::OK
                        || (status, code.as_str()) == (StatusCode::FORBIDDEN, "consent_required"),
                    "{status} {code}"
                );
            }
        }
    }
    assert!(
        before > 0 && after > 0,
        "requests on both sides: {before} before, {after} after"
    );
    drop(gw);
}

#[tokio::test]
async fn decisions_are_audited_with_policies_purpose_and_consent() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let audit = "[store]\nrevocation_window = \"0s\"\n[audit]\ndir = \"audit\"\nreplica = \"gw\"\ncheckpoint_sink = \"sink/c.jsonl\"\ncheckpoint_key_file = \"keys/k\"\npseudonym_key_file = \"keys/p\"";
    crate::harness::audit_keys(&ws, &["keys/k", "keys/p"]);
    let path = ws.write("privgate.toml", &consent_config(&ws, up.addr, audit));
    let mut gw = Gateway::start(&path);
    let partner = https_client(&ws, Some("certs/client-a"), false);
    let url = gw.url("/accounts/customers/42/balances");
    assert_eq!(code(&partner, &url, None).await.0, StatusCode::FORBIDDEN);
    let id = consent_cli(&path, "grant --subject 42 --grantee fintech --purpose account_information --permission ReadAccountsBasic");
    assert_eq!(code(&partner, &url, None).await.0, StatusCode::OK);
    gw.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = tokio::task::spawn_blocking(move || gw.child.wait())
        .await
        .unwrap();

    let chain = std::fs::read_to_string(ws.path("audit/gw.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = chain
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (denied, allowed) = (&records[0], &records[1]);
    assert_eq!(
        (denied["decision"].as_str(), denied["principal"].as_str()),
        (Some("deny"), Some("Service:client:fintech-app"))
    );
    assert_eq!(
        denied["policy_ids"],
        serde_json::json!(["partners-need-consent"])
    );
    assert_eq!(allowed["decision"], "allow");
    assert_eq!(allowed["consent_id"], id.as_str());
    assert_eq!(allowed["purpose"], "account_information");
    assert_eq!(
        allowed["policy_ids"],
        serde_json::json!(["partners-read-accounts"])
    );
    assert_eq!(allowed["policy_set_hash"].as_str().unwrap().len(), 64);
    assert!(
        !chain.contains("/accounts/customers/42"),
        "no paths in the audit trail"
    );
    let pseudonym = allowed["subject_pseudonym"].as_str().unwrap();
    assert_eq!(
        (pseudonym.len(), denied["subject_pseudonym"].as_str()),
        (64, Some(pseudonym))
    );

    // Who saw customer 42: both decisions; customer 43: nobody.
    let who = |subject: &str| {
        let config = ws.path("privgate.toml");
        let run = privgate([
            "audit",
            "who-saw",
            "--config",
            config.to_str().unwrap(),
            "--subject",
            subject,
        ]);
        assert!(run.ok, "{}", run.all());
        run.stdout
            .lines()
            .skip(1)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let saw = who("42");
    assert_eq!(saw.len(), 2, "{saw:?}");
    assert!(
        saw[0].contains("fintech-app\taccounts\tGET\t403\tdeny") && saw[1].contains(&id),
        "{saw:?}"
    );
    assert!(who("43").is_empty());

    // The same chain as rotation lays it out, each record in its own segment: who-saw reads
    // every segment.
    let lines: Vec<&str> = chain.lines().collect();
    std::fs::write(ws.path("audit/gw.jsonl"), format!("{}\n", lines[0])).unwrap();
    let rest: String = lines[1..].iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(ws.path("audit/gw@00000000000000000002.jsonl"), rest).unwrap();
    assert_eq!(who("42"), saw);
}

#[tokio::test]
async fn two_gateways_sharing_postgresql_both_enforce_a_revocation_at_once() {
    let Some((_store, url, guard)) = postgres_store().await else {
        return;
    };
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let store = postgres_store_section(&ws, &url) + "\nrevocation_window = \"0s\"";
    let path = ws.write("privgate.toml", &consent_config(&ws, up.addr, &store));
    let (one, two) = (Gateway::start(&path), Gateway::start(&path));
    let partner = https_client(&ws, Some("certs/client-a"), false);

    let id = consent_cli(&path, "grant --subject 7 --grantee fintech --purpose account_information --permission ReadAccountsBasic");
    for gw in [&one, &two] {
        assert_eq!(
            code(&partner, &gw.url("/accounts/customers/7"), None)
                .await
                .0,
            StatusCode::OK
        );
    }
    consent_cli(&path, &format!("revoke {id}"));
    let revoked_at = std::time::Instant::now();
    for gw in [&one, &two] {
        assert_eq!(
            code(&partner, &gw.url("/accounts/customers/7"), None)
                .await
                .1,
            "consent_required"
        );
    }
    assert!(revoked_at.elapsed() < std::time::Duration::from_secs(1));

    // The store gone: consent-dependent access fails closed on both.
    drop(guard);
    for gw in [&one, &two] {
        let (status, code) = code(&partner, &gw.url("/accounts/customers/7"), None).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "consent_unavailable")
        );
    }
}

/// Polls `url` (up to 10 s) until it answers with `expected` (status, error code).
async fn eventually(client: &HttpsClient, url: &str, expected: (StatusCode, &str)) {
    for _ in 0..50 {
        let (status, code) = code(client, url, None).await;
        if (status, code.as_str()) == expected {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{url} never answered {expected:?}");
}

#[tokio::test]
async fn edited_policy_files_reload_without_a_signal_and_invalid_edits_are_rejected() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let shipped = shipped_policies();
    let copy = ws.path("policies");
    crate::harness::copy_shipped_policies(&copy);
    let text = consent_config(&ws, up.addr, "")
        .replace(&shipped.display().to_string(), &copy.display().to_string());
    let path = ws.write("privgate.toml", &text);
    let gw = Gateway::start(&path);
    let teller = https_client(&ws, Some("certs/client-b"), false);
    let url = gw.url("/customers/42");
    // Asked twice: the second answer is the policy set's memoized decision, which the
    // reload below must not outlive.
    for _ in 0..2 {
        assert_eq!(code(&teller, &url, None).await.0, StatusCode::OK);
    }

    // A security team suspends tellers: effective within seconds, no SIGHUP.
    let suspend = "@id(\"suspend-tellers\")\n@reason(\"tellers_suspended\")\nforbid (principal in PrivGate::Role::\"teller\", action, resource);\n";
    std::fs::write(copy.join("suspend.cedar"), suspend).unwrap();
    eventually(&teller, &url, (StatusCode::FORBIDDEN, "forbidden")).await;

    // An edit that does not validate is rejected; the suspension stays in force.
    std::fs::write(
        copy.join("broken.cedar"),
        "@id(\"b\")\npermit (principal, action, resource) when { principal.salary > 1 };\n",
    )
    .unwrap();
    gw.wait_for(|l| {
        l["problems"]
            .as_str()
            .is_some_and(|p| p.contains("broken.cedar: line 2"))
    });
    assert_eq!(code(&teller, &url, None).await.1, "forbidden");

    // Removing both files restores access.
    std::fs::remove_file(copy.join("broken.cedar")).unwrap();
    std::fs::remove_file(copy.join("suspend.cedar")).unwrap();
    eventually(&teller, &url, (StatusCode::OK, "")).await;
}

#[tokio::test]
async fn large_payments_need_step_up_and_the_amount_is_read_from_the_body() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    // client-b is the payments service here.
    let payments = format!(
        r#"
[[route]]
name = "payments"
path_prefix = "/payments"
upstream = "main"
body = "buffered"
action = "payments:create"
amount = "$.amount_minor"

[[client]]
id = "mobile-backend"
certificate_sha256 = "{}"
roles = ["payments"]
purposes = ["payments"]
"#,
        thumbprint(&ws, "certs/client-b.pem")
    );
    let text =
        consent_config(&ws, up.addr, "").replace("[[client]]\nid = \"branch-desk\"", "[[clientx]]");
    let text = text.split("[[clientx]]").next().unwrap().to_owned() + &payments;
    let gw = Gateway::start(&ws.write("privgate.toml", &text));
    let client = https_client(&ws, Some("certs/client-b"), false);
    let pay = |body: &str| {
        http::Request::post(gw.url("/payments"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_owned(),
            )))
            .unwrap()
    };
    // (body, status, error code)
    let cases = [
        (
            r#"{"amount_minor": 50000, "to_iban": "GB33BUKB20201555555555"}"#,
            StatusCode::OK,
            "",
        ),
        (r#"{"amount_minor": 100000}"#, StatusCode::OK, ""),
        (
            r#"{"amount_minor": 100001}"#,
            StatusCode::UNAUTHORIZED,
            "step_up_required",
        ),
        (
            r#"{"to_iban": "GB33BUKB20201555555555"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        (
            r#"{"amount_minor": "250000"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        (
            r#"{"amount_minor": 2500.5}"#,
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        ("not json", StatusCode::BAD_REQUEST, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let reply = send(&client, pay(body)).await.unwrap();
        assert_eq!(reply.status, status, "{body}");
        if !code.is_empty() {
            assert_eq!(reply.error_code(), code, "{body}");
        }
        if code == "step_up_required" {
            let challenge = reply.headers["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.contains("error=\"insufficient_user_authentication\""),
                "{challenge}"
            );
        }
    }
}

/// The revocation window the freshness tests configure: long enough that a cached answer
/// is surely used while it lasts, short enough for a quick test.
const WINDOW: std::time::Duration = std::time::Duration::from_millis(500);

/// Slack for a request's own time on a loaded test machine (not a timing assertion on
/// speed: the bound under test is the window).
const MARGIN: std::time::Duration = std::time::Duration::from_millis(1500);

/// Two replicas on one store with a revocation window: a consent served by both is refused
/// by both no later than the window (plus a request's time) after the CLI revoked it.
/// `postgres`: the test database's URL (else one SQLite file); `listener_down`: terminate
/// the replicas' change listeners first.
async fn both_replicas_refuse_within_the_window(postgres: Option<&str>, listener_down: bool) {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let store = postgres.map_or("[store]".to_owned(), |url| postgres_store_section(&ws, url));
    let store = format!("{store}\nrevocation_window = \"{}ms\"", WINDOW.as_millis());
    let path = ws.write("privgate.toml", &consent_config(&ws, up.addr, &store));
    let (one, two) = (Gateway::start(&path), Gateway::start(&path));
    let partner = https_client(&ws, Some("certs/client-a"), false);
    let id = consent_cli(&path, "grant --subject 9 --grantee fintech --purpose account_information --permission ReadAccountsBasic");
    let urls = [&one, &two].map(|gw| gw.url("/accounts/customers/9"));
    for url in &urls {
        eventually(&partner, url, (StatusCode::OK, "")).await;
    }
    // The first request started each replica's watcher; once it has confirmed the counters,
    // the next answer is cached (what the revocation must get past).
    tokio::time::sleep(WINDOW / 2).await;
    for url in &urls {
        assert_eq!(code(&partner, url, None).await.0, StatusCode::OK);
    }
    if let (Some(url), true) = (postgres, listener_down) {
        terminate_change_listeners(url).await;
    }
    consent_cli(&path, &format!("revoke {id}"));
    let revoked_at = std::time::Instant::now();
    for url in &urls {
        loop {
            let (status, code) = code(&partner, url, None).await;
            if (status, code.as_str()) == (StatusCode::FORBIDDEN, "consent_required") {
                break;
            }
            assert_eq!(status, StatusCode::OK, "{code}");
            assert!(
                revoked_at.elapsed() <= WINDOW + MARGIN,
                "{url} still served the revoked consent {:?} after the CLI returned",
                revoked_at.elapsed()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Ends the PostgreSQL backends of the change listeners on the test database at `url`.
async fn terminate_change_listeners(url: &str) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    // The listeners connect when the first cached read starts the watcher.
    for _ in 0..100 {
        let ended: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND datname = current_database()",
        )
        .bind("privgate-change-listener")
        .fetch_all(&mut admin)
        .await
        .unwrap();
        if ended.len() >= 2 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the gateways' change listeners never connected");
}

#[tokio::test]
async fn two_replicas_on_one_sqlite_file_refuse_a_revoked_consent_within_the_window() {
    both_replicas_refuse_within_the_window(None, false).await;
}

#[tokio::test]
async fn two_replicas_on_postgresql_refuse_a_revoked_consent_within_the_window() {
    let Some((_store, url, _guard)) = postgres_store().await else {
        return;
    };
    both_replicas_refuse_within_the_window(Some(&url), false).await;
}

/// The listener's backend terminated: the polls alone keep the bound.
#[tokio::test]
async fn with_the_change_listener_down_postgresql_replicas_still_refuse_within_the_window() {
    let Some((_store, url, _guard)) = postgres_store().await else {
        return;
    };
    both_replicas_refuse_within_the_window(Some(&url), true).await;
}

//! Risk indicators end to end: two real gateway processes sharing one store (SQLite file,
//! and PostgreSQL when `PRIVGATE_TEST_POSTGRES_URL` is set), one analyst token reading
//! customers on both, a threshold neither replica reaches alone; the responses (suspend,
//! throttle); the other indicators and scopes (`indicators`); the SIEM webhook (`webhook`).

mod indicators;
mod webhook;

use crate::harness::*;
use crate::store::{postgres_store, sqlite_store};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use std::time::{Duration, Instant};

/// Distinct customers above which the analyst must step up.
const THRESHOLD: u32 = 20;

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An HS256 token of the fraud analyst `fred`; `amr` its authentication methods.
fn analyst_token(amr: &[&str]) -> String {
    fraud_analyst_token("fred", amr)
}

/// An HS256 fraud analyst's token for `sub`, signed in 10 s ago with `amr`.
fn fraud_analyst_token(sub: &str, amr: &[&str]) -> String {
    staff_token_with(sub, amr, &["fraud_analyst"], json!({}))
}

/// An HS256 staff token for `sub` with `roles`, purpose fraud prevention, signed in 10 s
/// ago with `amr`, and the `extra` claims (e.g. an organisation).
fn staff_token_with(sub: &str, amr: &[&str], roles: &[&str], extra: serde_json::Value) -> String {
    let mut claims = json!({
        "iss": ISS, "aud": AUD, "sub": sub, "exp": now_s() + 300, "iat": now_s(),
        "auth_time": now_s() - 10, "amr": amr,
        "roles": roles, "purposes": ["fraud_prevention"],
    });
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        claims.extend(extra.clone());
    }
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    encode(
        &header,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The bulk-reading threshold, answered with a step-up.
fn bulk_reading() -> String {
    format!(
        r#"
[[risk.threshold]]
name = "bulk-reading"
indicator = "distinct_subjects"
window = "1h"
above = {THRESHOLD}
response = "step_up"
step_up = {{ amr_any = ["otp"], max_age = "5m" }}
"#
    )
}

/// Customer reads decided by the shipped policies, the analyst issuer, `store` and a
/// `[risk]` with `thresholds` (which may start with `[risk]` keys and end with further
/// sections); one approval executes an admin operation.
fn risk_config(
    ws: &Workspace,
    upstream: std::net::SocketAddr,
    store: &str,
    thresholds: &str,
) -> String {
    risk_config_with_issuer(ws, upstream, store, thresholds, "")
}

/// [`risk_config`] with `issuer_extra` lines in the analyst issuer (an organisation claim).
fn risk_config_with_issuer(
    ws: &Workspace,
    upstream: std::net::SocketAddr,
    store: &str,
    thresholds: &str,
    issuer_extra: &str,
) -> String {
    let secret = ws.write("hmac.secret", SECRET);
    let extra = format!(
        r#"{customers}
{issuer}

{store}

[risk]
windows = ["5m", "1h"]
flush_interval = "100ms"
refresh_interval = "100ms"
{thresholds}
"#,
        customers = decided_customers(""),
        issuer = staff_issuer_section(&secret, issuer_extra),
    );
    let admin = "[admin]\naddress = \"127.0.0.1:0\"";
    without_plain_routes(config(ws, upstream, "", &extra)).replacen(
        admin,
        &format!("{admin}\napprovals_required = 1"),
        1,
    )
}

async fn read(client: &HttpsClient, gw: &Gateway, customer: u32, token: &str) -> Reply {
    let req = Request::get(gw.url(&format!("/customers/{customer}")))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::<Bytes>::default())
        .unwrap();
    send(client, req).await.unwrap()
}

/// One gateway on a fresh SQLite store serving [`risk_config`] with `thresholds`; the
/// workspace, upstream and store live as long as it.
struct OneGateway {
    ws: Workspace,
    path: std::path::PathBuf,
    gw: Gateway,
    client: HttpsClient,
    _upstream: Upstream,
    _store: (privgate::store::Store, crate::store::Guard),
}

impl OneGateway {
    /// Starts it in `ws` (where `thresholds` may have written files), with `issuer_extra`
    /// lines in the analyst issuer.
    async fn start(ws: Workspace, thresholds: &str, issuer_extra: &str) -> Self {
        let (store, url, guard) = sqlite_store().await;
        let upstream = Upstream::start().await;
        let section = format!("[store]\nurl = \"{url}\"");
        let text = risk_config_with_issuer(&ws, upstream.addr, &section, thresholds, issuer_extra);
        let path = ws.write("privgate.toml", &text);
        let gw = Gateway::start(&path);
        let client = https_client(&ws, None, false);
        Self {
            ws,
            path,
            gw,
            client,
            _upstream: upstream,
            _store: (store, guard),
        }
    }

    async fn read(&self, customer: u32, token: &str) -> Reply {
        read(&self.client, &self.gw, customer, token).await
    }

    /// Reads each of `customers` with `token`, each answered 200.
    async fn read_ok(&self, customers: impl IntoIterator<Item = u32>, token: &str) {
        for customer in customers {
            let status = self.read(customer, token).await.status;
            assert_eq!(status, StatusCode::OK, "customer {customer}");
        }
    }

    /// `privgate risk show --output json` for `--principal P` or `--organisation O`, once the
    /// gateway has flushed its counts.
    async fn show(&self, flag: &str, key: &str) -> serde_json::Value {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let config = self.path.to_str().unwrap();
        let run = privgate([
            "risk", "show", "--config", config, flag, key, "--output", "json",
        ]);
        assert!(run.ok, "{}", run.all());
        assert!(
            !run.stdout.contains("\"5\""),
            "no subject ids: {}",
            run.stdout
        );
        serde_json::from_str(&run.stdout).unwrap()
    }
}

async fn bulk_reading_split_over_two_replicas_trips_the_threshold(store: &str) {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let path = ws.write(
        "privgate.toml",
        &risk_config(&ws, up.addr, store, &bulk_reading()),
    );
    let (one, two) = (Gateway::start(&path), Gateway::start(&path));
    let client = https_client(&ws, None, false);
    let password_only = analyst_token(&["pwd"]);
    // 30 distinct customers, alternating replicas: 15 each, under the threshold alone.
    let total = THRESHOLD + 10;
    for customer in 1..=total {
        let gw = if customer % 2 == 0 { &one } else { &two };
        let reply = read(&client, gw, customer, &password_only).await;
        if reply.status != StatusCode::OK {
            // Tripped early only once the replicas together are past the threshold.
            assert!(
                customer > THRESHOLD,
                "customer {customer}: {}",
                reply.status
            );
            break;
        }
    }
    // Within a flush and a refresh, both replicas see the sum and ask for a step-up.
    let deadline = Instant::now() + Duration::from_secs(5);
    for gw in [&one, &two] {
        loop {
            let reply = read(&client, gw, 1, &password_only).await;
            if reply.status == StatusCode::UNAUTHORIZED {
                let challenge = reply.headers["www-authenticate"].to_str().unwrap();
                assert!(
                    challenge.contains("insufficient_user_authentication")
                        && challenge.contains("max_age=300"),
                    "{challenge}"
                );
                break;
            }
            assert_eq!(reply.status, StatusCode::OK);
            assert!(Instant::now() < deadline, "the threshold never tripped");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // A fresh second factor meets the step-up (and the shipped policy's own threshold,
    // 200, is not reached): reading goes on.
    let stepped_up = analyst_token(&["pwd", "otp"]);
    assert_eq!(
        read(&client, &one, 2, &stepped_up).await.status,
        StatusCode::OK
    );
    // The crossing was logged by name, without values or subjects.
    let event = one.wait_for_log("risk threshold exceeded");
    assert_eq!(event["threshold"], "bulk-reading");
    assert_eq!(event["window"], "1h");
    assert!(!event.to_string().contains("\"17\""), "{event}");
    // And counted per indicator and principal class, never per principal.
    let (status, metrics) = one.admin_get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("privgate_risk_threshold_events_total{"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(
        line.contains("indicator=\"distinct_subjects\"")
            && line.contains("principal_class=\"User\"")
            && !line.contains("fred"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_reading_split_over_two_sqlite_replicas_trips_the_threshold() {
    let (_store, url, _guard) = sqlite_store().await;
    bulk_reading_split_over_two_replicas_trips_the_threshold(&format!("[store]\nurl = \"{url}\""))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_reading_split_over_two_postgres_replicas_trips_the_threshold() {
    let Some((_store, url, _guard)) = postgres_store().await else {
        return;
    };
    let ws = Workspace::new();
    let section = postgres_store_section(&ws, &url);
    // The password file lives in this workspace; the config names it absolutely.
    let section = section.replace(
        "password_file = \"pg-password\"",
        &format!("password_file = \"{}\"", ws.path("pg-password").display()),
    );
    bulk_reading_split_over_two_replicas_trips_the_threshold(&section).await;
}

/// A `suspend` threshold refuses the principal on its next request, `risk show` says so,
/// and only an operator's `risk:clear` through the approval flow lets it back in; the same
/// counts do not suspend it again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_suspended_principal_stays_refused_until_an_operator_clears_it() {
    let thresholds = r#"
[[risk.threshold]]
name = "too-many-requests"
indicator = "requests"
window = "5m"
above = 3
response = "suspend"
"#;
    let one = OneGateway::start(Workspace::new(), thresholds, "").await;
    let token = analyst_token(&["pwd"]);
    // The fourth request is counted; the fifth finds four requests, above three.
    one.read_ok(1..=4, &token).await;
    for customer in [5, 1] {
        let reply = one.read(customer, &token).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(reply.error_code(), "risk_suspended");
    }
    // Other principals are not affected.
    one.read_ok([1], &fraud_analyst_token("tina", &["pwd"]))
        .await;

    // Shown once flushed: requests from the store, and the suspension.
    let shown = one.show("--principal", "User:fred").await;
    assert!(
        shown["windows"]["5m"]["requests"].as_f64().unwrap() >= 6.0,
        "{shown}"
    );
    assert_eq!(shown["windows"]["5m"]["distinct_subjects"], 4.0, "{shown}");
    assert_eq!(
        shown["windows"]["5m"]["refusals.risk_suspended"], 2.0,
        "{shown}"
    );
    assert_eq!(
        shown["suspended"]["threshold"], "too-many-requests",
        "{shown}"
    );

    // Cleared through the approval flow (one approval configured): served again, although
    // the counts that caused it are still in the window.
    let clear = privgate([
        "admin",
        "--config",
        one.path.to_str().unwrap(),
        "request",
        "risk-clear",
        "--principal",
        "User:fred",
    ]);
    assert!(
        clear.ok && clear.stdout.contains("risk suspension cleared"),
        "{}",
        clear.all()
    );
    one.read_ok([2], &token).await;
    let shown = one.show("--principal", "User:fred").await;
    assert!(shown["suspended"].is_null(), "{shown}");
}

/// A `throttle` threshold admits the caller at its rate once exceeded and answers the rest
/// with 429 and Retry-After; below the threshold nothing is throttled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttle_threshold_slows_the_caller_once_exceeded() {
    let thresholds = r#"
[[risk.threshold]]
name = "busy"
indicator = "requests"
window = "5m"
above = 2
response = "throttle"
throttle = "1/m"
"#;
    let one = OneGateway::start(Workspace::new(), thresholds, "").await;
    let token = analyst_token(&["pwd"]);
    // Three requests under the threshold, then one admitted at the throttle's rate.
    one.read_ok(1..=4, &token).await;
    let reply = one.read(5, &token).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.error_code(), "rate_limited");
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another principal is not throttled.
    one.read_ok([5], &fraud_analyst_token("tina", &["pwd"]))
        .await;
}

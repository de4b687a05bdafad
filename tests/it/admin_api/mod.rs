//! The admin API end to end: the real gateway serving `/admin/v1` itself, callers
//! identified by HS256 access tokens minted here, the shipped Cedar policies, a partner
//! calling over mutual TLS, a real SQLite store and keyring, and the audit chain.

use crate::harness::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

mod operations;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An access token for user `sub` with these roles and purposes (password only).
fn token(sub: &str, roles: &[&str], purposes: &[&str]) -> String {
    token_with(sub, roles, purposes, &["pwd"])
}

/// An access token whose user authenticated just now with these methods (`amr`).
fn token_with(sub: &str, roles: &[&str], purposes: &[&str], amr: &[&str]) -> String {
    let claims = json!({
        "iss": ISS, "aud": AUD, "sub": sub, "client_id": "admin-console",
        "exp": now() + 300, "iat": now(), "jti": format!("t-{sub}"),
        "roles": roles, "purposes": purposes, "amr": amr, "auth_time": now(),
    });
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    encode(
        &header,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn carol() -> String {
    token("carol", &["consent_admin"], &["consent_administration"])
}

/// A key custodian who used a one-time code just now (key operations ask for one).
fn custodian(name: &str) -> String {
    token_with(
        name,
        &["key_custodian"],
        &["key_management"],
        &["pwd", "otp"],
    )
}

/// The gateway config: the admin API at /admin/v1, a consent-decided partner route, a
/// keyring, an audit chain, and `approvals_required`.
fn admin_config(ws: &Workspace, upstream: std::net::SocketAddr, approvals: u32) -> PathBuf {
    let store = format!(
        "[store]\nurl = \"sqlite://{}/privgate.db\"",
        ws.dir.path().display()
    );
    admin_config_on(ws, upstream, approvals, &store)
}

/// The same, on the store `store` (a `[store]` section).
fn admin_config_on(
    ws: &Workspace,
    upstream: std::net::SocketAddr,
    approvals: u32,
    store: &str,
) -> PathBuf {
    let policies = shipped_policies();
    let secret = ws.write("hmac.secret", SECRET);
    let kek = ws.write("kek.hex", &"5a".repeat(32));
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let extra = format!(
        r#"
[[route]]
name = "admin_api"
path_prefix = "/admin/v1"
serve = "admin_api"

[[route]]
name = "accounts"
path_prefix = "/accounts/customers"
upstream = "main"
action = "accounts:read"
subject = {{ from = "path", id = "integer" }}

[policy]
dir = "{policies}"

{store}

[keys]
kek = {{ source = "key_file", path = "{kek}" }}

{audit}{issuer}
{fintech_app}"#,
        policies = policies.display(),
        kek = kek.display(),
        audit = audit_section_with_pseudonyms(ws),
        issuer = staff_issuer_section(&secret, ""),
        fintech_app = fintech_app_client(ws),
    );
    let mtls = optional_mtls(ws);
    let text = without_plain_routes(config(ws, upstream, &mtls, &extra)).replace(
        "[admin]\naddress = \"127.0.0.1:0\"",
        &format!("[admin]\naddress = \"127.0.0.1:0\"\napprovals_required = {approvals}"),
    );
    assert!(text.contains("approvals_required"));
    let path = ws.write("privgate.toml", &text);
    let init = cli(&path, &["keys", "init"]);
    assert!(init.ok, "{}", init.all());
    path
}

fn cli(config: &Path, args: &[&str]) -> CliRun {
    let mut all = vec![args[0].to_owned(), "--config".to_owned()];
    all.push(config.display().to_string());
    all.extend(args[1..].iter().map(|a| a.to_string()));
    privgate(all)
}

/// Sends a JSON admin call with a bearer token (or none).
async fn call(
    client: &HttpsClient,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Full::new(Bytes::from(v.to_string()))
        }
        None => Full::default(),
    };
    send(client, req.body(body).unwrap()).await.unwrap()
}

fn records(ws: &Workspace) -> Vec<Value> {
    std::fs::read_to_string(ws.path("audit/gw.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn stop(gw: Gateway) {
    gw.signal(nix::sys::signal::Signal::SIGTERM);
    let mut gw = gw;
    let _ = tokio::task::spawn_blocking(move || gw.child.wait())
        .await
        .unwrap();
}

#[tokio::test]
async fn consents_granted_and_revoked_through_the_api_decide_the_next_call() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let path = admin_config(&ws, up.addr, 1);
    let gw = Gateway::start(&path);
    let partner = https_client(&ws, Some("certs/client-a"), false);
    let admin = https_client(&ws, None, false);
    let account = gw.url("/accounts/customers/42/balances");
    let consents = gw.url("/admin/v1/consents");
    assert_eq!(
        get(&partner, &account).await.error_code(),
        "consent_required"
    );

    let grant = json!({
        "subject": "42", "grantee": "fintech", "purposes": ["account_information"],
        "permissions": ["ReadAccountsBasic"], "expires_in": "90days",
    });
    // No token: 401; a teller's token: 403, audited; the consent admin's: 201.
    let reply = call(&admin, "POST", &consents, None, Some(grant.clone())).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let teller = token("tina", &["teller"], &["customer_service"]);
    let reply = call(
        &admin,
        "POST",
        &consents,
        Some(&teller),
        Some(grant.clone()),
    )
    .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let reply = call(
        &admin,
        "POST",
        &consents,
        Some(&carol()),
        Some(grant.clone()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.json()["status"], "Authorised");
    assert_eq!(get(&partner, &account).await.status, StatusCode::OK);

    // Reading: by subject (and grantee), and by id; a listing without a subject is refused.
    let url = gw.url("/admin/v1/consents?subject=42&grantee=fintech");
    let listed = call(&admin, "GET", &url, Some(&carol()), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json()["consents"][0]["id"], id.as_str());
    let one = call(
        &admin,
        "GET",
        &format!("{consents}/{id}"),
        Some(&carol()),
        None,
    )
    .await;
    assert_eq!(one.json()["permissions"], json!(["ReadAccountsBasic"]));
    let reply = call(&admin, "GET", &consents, Some(&carol()), None).await;
    assert_eq!(reply.error_code(), "invalid_request");
    let reply = call(
        &admin,
        "GET",
        &format!("{consents}/{id}"),
        Some(&teller),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let missing = call(
        &admin,
        "GET",
        &format!("{consents}/nope"),
        Some(&carol()),
        None,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Paths the API does not have: 404; a method a path does not take: 405.
    let reply = call(
        &admin,
        "GET",
        &gw.url("/admin/v1/other"),
        Some(&carol()),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = call(&admin, "DELETE", &consents, Some(&carol()), None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.headers["allow"], "GET, POST");
    // The CLI's validation, the same code.
    let mut bad = grant.clone();
    bad["permissions"] = json!(["ReadEverything"]);
    let reply = call(&admin, "POST", &consents, Some(&carol()), Some(bad)).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );

    // Revocation: the very next partner call is refused.
    let revoke = format!("{consents}/{id}/revoke");
    let reply = call(&admin, "POST", &revoke, Some(&carol()), None).await;
    assert_eq!(reply.json()["outcome"], "revoked");
    assert_eq!(
        get(&partner, &account).await.error_code(),
        "consent_required"
    );
    let reply = call(&admin, "POST", &revoke, Some(&carol()), None).await;
    assert_eq!(reply.json()["outcome"], "already_revoked");
    assert_eq!(reply.json()["status"], "Revoked");
    stop(gw).await;

    // Every admin call is audited with its action, principal, decision and policies.
    let all = records(&ws);
    let admin_calls: Vec<&Value> = all.iter().filter(|r| r["route"] == "admin_api").collect();
    let refused = admin_calls
        .iter()
        .find(|r| r["principal"] == "User:tina" && r["action"] == "consent:grant")
        .expect("the refused grant is audited");
    assert_eq!(
        (refused["decision"].as_str(), refused["status"].as_u64()),
        (Some("deny"), Some(403))
    );
    let granted = admin_calls
        .iter()
        .find(|r| {
            r["principal"] == "User:carol" && r["action"] == "consent:grant" && r["status"] == 201
        })
        .unwrap();
    assert_eq!(granted["consent_id"], id.as_str());
    assert_eq!(
        granted["policy_ids"],
        json!(["consent-admins-manage-consents"])
    );
    assert!(granted["subject_pseudonym"].is_string());
    assert!(admin_calls
        .iter()
        .any(|r| r["action"] == "consent:revoke" && r["decision"] == "allow"));
    let chain = std::fs::read_to_string(ws.path("audit/gw.jsonl")).unwrap();
    assert!(
        !chain.contains("\"42\""),
        "the subject id is never in the audit trail"
    );
}

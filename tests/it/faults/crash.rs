//! Crash consistency (issue 16, item 5): the real gateway is killed with SIGKILL at seeded
//! random points while consent grants and revocations, privacy-budget spends and audit
//! appends flow, then restarted, on SQLite and on PostgreSQL. After every kill: nothing
//! acknowledged is lost, nothing is applied twice, the budget is never overspent, and
//! `privgate audit verify` passes on the chain the killed process left.
//!
//! `PRIVGATE_CRASH_POINTS` (default 20) and `PRIVGATE_CRASH_SEED` (default fixed, printed)
//! tune a run; CI runs the default.

use crate::harness::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Each query spends this much of the analyst's budget.
const EPSILON: f64 = 0.5;
/// The analyst's budget per period: 60 spends, about what the load attempts in 20 rounds.
const BUDGET: f64 = 30.0;

/// What the clients were told, across every round.
#[derive(Default, Clone)]
struct Told {
    /// Consent id by subject, for grants answered 201.
    granted: HashMap<String, String>,
    /// Consent ids whose revocation was answered `revoked`.
    revoked: Vec<String>,
    /// Subjects whose grant was sent, answered or not.
    grant_sent: Vec<String>,
    /// Queries answered 200 (each spent EPSILON), and queries sent.
    spends_acknowledged: u64,
    spends_sent: u64,
}

/// `audit_extra` goes into the `[audit]` section (rotation settings).
fn gateway_config(
    ws: &Workspace,
    upstream: std::net::SocketAddr,
    store: &str,
    audit_extra: &str,
) -> PathBuf {
    let secret = ws.write("hmac.secret", SECRET);
    let kek = ws.write("kek.hex", &"7c".repeat(32));
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut csv = String::from("id,customer_id,principal\n");
    for i in 0..60 {
        csv.push_str(&format!("{i},c{i},{}\n", 1000 + i));
    }
    ws.write("loans.csv", &csv);
    let extra = format!(
        r#"
[[route]]
name = "admin_api"
path_prefix = "/admin/v1"
serve = "admin_api"

[[route]]
name = "analytics"
path_prefix = "/analytics/v1"
serve = "analytics"

[policy]
dir = "{policies}"

{store}

[keys]
kek = {{ source = "key_file", path = "{kek}" }}

{audit}{issuer}
[[dataset]]
name = "loan_book"
source = {{ csv = "loans.csv", table = "loans" }}
privacy_unit = "customer_id"
max_rows_per_unit = 2
truncate_order = "id"
analyst_epsilon = {BUDGET}
global_epsilon = 1000.0
budget_period = "30days"

[dataset.column.principal]
type = "integer"
lower = 0
upper = 50000
"#,
        policies = shipped_policies().display(),
        kek = kek.display(),
        audit = audit_section_with_pseudonyms(ws) + audit_extra,
        issuer = staff_issuer_section(&secret, ""),
    );
    let path = ws.write(
        "privgate.toml",
        &without_plain_routes(config(ws, upstream, "", &extra)),
    );
    let init = privgate(["keys", "--config", path.to_str().unwrap(), "init"]);
    assert!(init.ok, "{}", init.all());
    path
}

async fn post(
    client: &HttpsClient,
    url: String,
    token: &str,
    body: serde_json::Value,
) -> Option<Reply> {
    let req = Request::post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    send(client, req).await.ok()
}

/// Grants and revokes consents for fresh subjects until the gateway dies.
async fn consent_load(
    gw_url: String,
    ws_client: HttpsClient,
    told: Arc<Mutex<Told>>,
    prefix: String,
) {
    let carol = staff_token(
        "admin-console",
        "carol",
        &["consent_admin"],
        &["consent_administration"],
    );
    for n in 0.. {
        let subject = format!("{prefix}{n:04}");
        told.lock().unwrap().grant_sent.push(subject.clone());
        let grant = json!({
            "subject": subject, "grantee": "fintech", "purposes": ["account_information"],
            "permissions": ["ReadAccountsBasic"], "expires_in": "90days",
        });
        let Some(reply) = post(
            &ws_client,
            format!("{gw_url}/admin/v1/consents"),
            &carol,
            grant,
        )
        .await
        else {
            return;
        };
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let id = reply.json()["id"].as_str().unwrap().to_owned();
        told.lock().unwrap().granted.insert(subject, id.clone());
        let revoke = format!("{gw_url}/admin/v1/consents/{id}/revoke");
        let Some(reply) = post(&ws_client, revoke, &carol, json!({})).await else {
            return;
        };
        assert_eq!(reply.json()["outcome"], "revoked", "{:?}", reply.body);
        told.lock().unwrap().revoked.push(id);
    }
}

/// Spends the analyst's budget until the gateway dies (refusals once it is spent).
async fn budget_load(gw_url: String, client: HttpsClient, told: Arc<Mutex<Told>>) {
    let ana = staff_token("notebook", "ana", &["analyst"], &["analytics"]);
    loop {
        // A new query each time: a repeated one is answered from the cache, free.
        let n = {
            let mut told = told.lock().unwrap();
            told.spends_sent += 1;
            told.spends_sent
        };
        let sql = format!("SELECT COUNT(*) FROM loan_book WHERE principal > {n}");
        let body = json!({"dataset": "loan_book", "sql": sql, "epsilon": EPSILON});
        let Some(reply) = post(&client, format!("{gw_url}/analytics/v1/query"), &ana, body).await
        else {
            return;
        };
        match reply.status {
            StatusCode::OK => told.lock().unwrap().spends_acknowledged += 1,
            StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("query: {other} {:?}", reply.body),
        }
    }
}

/// Every change a client was told about has its record in the chain: an acknowledged
/// change's record is on disk before its answer leaves.
fn audited(chain: &str, told: &Told, point: usize) {
    let records: Vec<serde_json::Value> = chain
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |action: &str, id: &str, status: u64| {
        records
            .iter()
            .any(|r| r["action"] == action && r["consent_id"] == id && r["status"] == status)
    };
    for id in told.granted.values() {
        assert!(
            has("consent:grant", id, 201),
            "kill point {point}: grant {id} unrecorded"
        );
    }
    for id in &told.revoked {
        assert!(
            has("consent:revoke", id, 200),
            "kill point {point}: revocation {id} unrecorded"
        );
    }
    let spends = records
        .iter()
        .filter(|r| r["status"] == 200 && !r["privacy_spend"].is_null())
        .count() as u64;
    assert!(
        spends >= told.spends_acknowledged,
        "kill point {point}: spends unrecorded"
    );
}

/// What the store holds, read directly once the gateway is dead.
async fn check_store(url: &str, told: &Told) {
    let pool = super::store_pool(url).await;
    let rows: Vec<(String, String, Option<i64>)> =
        sqlx::query_as("SELECT subject, id, revoked_at FROM consents")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut by_subject: HashMap<&str, Vec<(&str, bool)>> = HashMap::new();
    for (subject, id, revoked_at) in &rows {
        by_subject
            .entry(subject)
            .or_default()
            .push((id, revoked_at.is_some()));
    }
    for subject in &told.grant_sent {
        let n = by_subject.get(subject.as_str()).map_or(0, Vec::len);
        assert!(n <= 1, "subject {subject}: consent applied {n} times");
    }
    for (subject, id) in &told.granted {
        let stored = by_subject.get(subject.as_str()).map(|v| v[0].0);
        assert_eq!(
            stored,
            Some(id.as_str()),
            "acknowledged grant of {subject} lost"
        );
    }
    for id in &told.revoked {
        let revoked = rows.iter().any(|(_, i, r)| i == id && r.is_some());
        assert!(revoked, "acknowledged revocation of {id} lost");
    }
    let (spends,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM dp_spends WHERE dataset = 'loan_book'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let spent: Vec<(String, i64)> =
        sqlx::query_as("SELECT scope, spent_nano FROM dp_budget WHERE dataset = 'loan_book'")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    let spends = spends as u64;
    assert!(
        told.spends_acknowledged <= spends && spends <= told.spends_sent,
        "{} acknowledged, {spends} debited, {} sent",
        told.spends_acknowledged,
        told.spends_sent
    );
    let nano = (EPSILON * 1e9) as i64;
    for (scope, spent_nano) in spent {
        assert_eq!(
            spent_nano,
            spends as i64 * nano,
            "{scope}: ledger and debits disagree"
        );
        assert!(
            spent_nano <= (BUDGET * 1e9) as i64 || scope == "global",
            "{scope} overspent"
        );
    }
}

/// `audit_extra`: more of the `[audit]` section; `default_points`: kills unless
/// `PRIVGATE_CRASH_POINTS` says otherwise.
async fn kill_and_restart(
    store_url: String,
    ws: &Workspace,
    audit_extra: &str,
    default_points: usize,
) {
    let points: usize = std::env::var("PRIVGATE_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_points);
    let seed: u64 = std::env::var("PRIVGATE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    eprintln!("crash consistency: {points} kill points, seed {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let up = Upstream::start().await;
    let store = if store_url.starts_with("sqlite:") {
        format!("[store]\nurl = \"{store_url}\"")
    } else {
        postgres_store_section(ws, &store_url)
    };
    let config = gateway_config(ws, up.addr, &store, audit_extra);
    let told = Arc::new(Mutex::new(Told::default()));
    let mut records = 0;
    for point in 0..points {
        let gw = Gateway::start(&config);
        let url = format!("https://localhost:{}", gw.addr.port());
        let client = https_client(ws, None, false);
        let load = [
            tokio::spawn(consent_load(
                url.clone(),
                client.clone(),
                told.clone(),
                format!("{point}0"),
            )),
            tokio::spawn(consent_load(
                url.clone(),
                client.clone(),
                told.clone(),
                format!("{point}1"),
            )),
            tokio::spawn(budget_load(url, client, told.clone())),
        ];
        let delay = Duration::from_millis(rng.gen_range(50..500));
        super::kill_after(gw, delay, load.into()).await;
        super::chain_verifies(&config, point, delay);
        // Every segment, in order (one file unless the chain rotates).
        let chain = crate::audit_ops::chain_lines(ws, "gw").join("\n");
        assert!(chain.lines().count() >= records, "audit records lost");
        records = chain.lines().count();
        // The load has stopped: a copy of what clients were told, checked without the lock.
        let told_now = told.lock().unwrap().clone();
        audited(&chain, &told_now, point);
        check_store(&store_url, &told_now).await;
    }
    let told = told.lock().unwrap();
    assert!(
        told.granted.len() >= points,
        "too little load: {}",
        told.granted.len()
    );
    assert!(told.spends_acknowledged > 0);
    eprintln!(
        "crash consistency: {points} kills; {} grants and {} revocations acknowledged, {} spends acknowledged of {} sent, {records} audit records",
        told.granted.len(),
        told.revoked.len(),
        told.spends_acknowledged,
        told.spends_sent,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_write_on_sqlite_loses_nothing_acknowledged() {
    let ws = Workspace::new();
    let url = format!("sqlite://{}/privgate.db", ws.dir.path().display());
    kill_and_restart(url, &ws, "", 20).await;
}

/// Rotation under the same kills: segments sealed every few records, so kills land before,
/// during and after rotations; after each, verify passes across every segment and nothing
/// acknowledged is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_rotation_keeps_the_chain_whole() {
    let ws = Workspace::new();
    let url = format!("sqlite://{}/privgate.db", ws.dir.path().display());
    kill_and_restart(url, &ws, "rotate_bytes = 4096\n", 8).await;
    let segments = crate::audit_ops::segments(&ws, "gw");
    assert!(
        segments.len() > 8,
        "too few rotations to mean anything: {segments:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_write_on_postgresql_loses_nothing_acknowledged() {
    let Some((url, _guard)) = crate::store::postgres_database().await else {
        return;
    };
    kill_and_restart(url, &Workspace::new(), "", 20).await;
}

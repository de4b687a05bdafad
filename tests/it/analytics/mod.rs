//! Differentially private analytics end to end: the real gateway serving
//! `/analytics/v1/query` over TLS, analysts identified by HS256 tokens minted here, the
//! shipped Cedar policies (`query` on `Dataset`), a dataset in the gateway's SQLite store,
//! the audit chain, and the `privgate query` client.

use crate::harness::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::PathBuf;

mod discovery;
mod engine;
mod grouping;
mod keyed_api;
mod reference;
mod scale;

fn token(sub: &str, roles: &[&str], purposes: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "iss": ISS, "aud": AUD, "sub": sub, "client_id": "notebook",
        "exp": now + 300, "iat": now, "jti": format!("t-{sub}"),
        "roles": roles, "purposes": purposes, "amr": ["pwd"], "auth_time": now,
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

/// The gateway config: the analytics API, one dataset (in the store's database) whose
/// analyst budget allows `budget` epsilon per hour, and the audit chain.
fn analytics_config(ws: &Workspace, upstream: std::net::SocketAddr, budget: f64) -> PathBuf {
    let dir = ws.dir.path().display();
    let policies = shipped_policies();
    let secret = ws.write("hmac.secret", SECRET);
    let extra = format!(
        r#"
[[route]]
name = "analytics"
path_prefix = "/analytics/v1"
serve = "analytics"

[policy]
dir = "{policies}"

[store]
url = "sqlite://{dir}/privgate.db"

{audit}{issuer}
[[dataset]]
name = "transactions"
source = {{ table = "transactions" }}
privacy_unit = "customer_id"
max_rows_per_unit = 4
max_groups_per_unit = 2
max_rows_per_group = 3
truncate_order = "id"
analyst_epsilon = {budget}
global_epsilon = 100.0
analyst_delta = 1e-6
global_delta = 1e-5
budget_period = "1h"
cache_window = "10m"

[dataset.column.amount]
type = "integer"
lower = 0
upper = 10000

[dataset.column.region]
type = "categorical"
categories = ["north", "south", "east", "west"]

[dataset.column.merchant]
type = "key"

[[dataset.budget_tier]]
name = "senior"
analyst_epsilon = {senior}

[[dataset]]
name = "loan_book"
source = {{ csv = "loans.csv", table = "loans" }}
privacy_unit = "customer_id"
max_rows_per_unit = 2
truncate_order = "id"
analyst_epsilon = {budget}
global_epsilon = 100.0

[dataset.column.principal]
type = "integer"
lower = 0
upper = 50000
"#,
        policies = policies.display(),
        audit = audit_section_with_pseudonyms(ws),
        issuer = staff_issuer_section(&secret, ""),
        senior = budget * 3.0,
    );
    ws.write("loans.csv", &loans_csv());
    ws.write("privgate.toml", &config(ws, upstream, "", &extra))
}

/// 60 customers with one loan each, as a CSV file (header first; a quoted column the
/// dataset does not declare).
fn loans_csv() -> String {
    let mut csv = String::from("id,customer_id,principal,note\n");
    for i in 0..60 {
        csv.push_str(&format!("{i},c{i},{},\"branch {i}, desk 2\"\n", 1000 + i));
    }
    csv
}

/// Synthetic transactions in the store's database: 200 customers, 1 to 6 rows each, at
/// three merchants but for one customer alone at a fourth.
async fn seed(ws: &Workspace) {
    let url = format!("sqlite://{}/privgate.db", ws.dir.path().display());
    let store = privgate::store::Store::open(&url).await.unwrap();
    store.close().await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE transactions (id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, region TEXT NOT NULL, amount INTEGER NOT NULL, merchant TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let regions = ["north", "south", "east"];
    let mut tx = pool.begin().await.unwrap();
    let mut id = 0;
    for c in 0..200 {
        for r in 0..(1 + c % 6) {
            id += 1;
            // Customer c0 (one row) is the only one at `solo-shop`.
            let merchant = match c {
                0 => "solo-shop",
                _ => ["grocer", "rail", "cafe"][(c + r) % 3],
            };
            sqlx::query("INSERT INTO transactions (id, customer_id, region, amount, merchant) VALUES ($1, $2, $3, $4, $5)")
                .bind(id as i64)
                .bind(format!("c{c}"))
                .bind(regions[(c + r) % 3])
                .bind(((c * 37 + r * 11) % 500) as i64)
                .bind(merchant)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
    pool.close().await;
}

async fn query(client: &HttpsClient, gw: &Gateway, token: &str, body: Value) -> Reply {
    let mut req =
        Request::post(gw.url("/analytics/v1/query")).header("content-type", "application/json");
    if !token.is_empty() {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    send(client, req).await.unwrap()
}

/// The first column of each row of an answer: the group's label or the released key.
fn row_keys(body: &Value) -> Vec<&str> {
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect()
}

fn records(ws: &Workspace) -> Vec<Value> {
    std::fs::read_to_string(ws.path("audit/gw.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysts_get_noisy_answers_within_their_budget() {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    seed(&ws).await;
    let gw = Gateway::start(&analytics_config(&ws, upstream.addr, 1.0));
    let client = https_client(&ws, None, false);
    let ana = token("ana", &["analyst"], &["analytics"]);

    // A grouped count and sum: every declared region (west has no rows), +/- at 95%.
    let sql = "SELECT region, COUNT(*), SUM(amount) FROM transactions GROUP BY region";
    let reply = query(
        &client,
        &gw,
        &ana,
        json!({"dataset": "transactions", "sql": sql, "epsilon": 0.4}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let body = reply.json();
    assert_eq!(
        body["columns"],
        json!(["region", "COUNT(*)", "SUM(amount)"])
    );
    let regions = row_keys(&body);
    assert_eq!(regions, ["north", "south", "east", "west"]);
    let count = &body["rows"][0][1];
    assert!(
        count["plus_minus_95"].as_f64().unwrap() > 0.0 && count["interval_95"].is_array(),
        "{body}"
    );
    assert!(body["note"].as_str().unwrap().contains("clamping"));
    assert!((body["epsilon_spent"].as_f64().unwrap() - 0.4).abs() < 1e-9);
    assert!(
        (body["budget"]["epsilon_left"].as_f64().unwrap() - 0.6).abs() < 1e-9,
        "{body}"
    );

    // A dry run by target accuracy: the cost, nothing spent.
    let reply = query(&client, &gw, &ana, json!({"dataset": "transactions", "sql": "SELECT COUNT(*) FROM transactions", "accuracy": 50.0, "dry_run": true})).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let dry = reply.json();
    assert!(
        dry["epsilon_cost"].as_f64().unwrap() > 0.0 && dry["rows"].is_null(),
        "{dry}"
    );
    assert!((dry["budget"]["epsilon_left"].as_f64().unwrap() - 0.6).abs() < 1e-9);

    // The same query again: the cached answer, nothing spent.
    let again = query(
        &client,
        &gw,
        &ana,
        json!({"dataset": "transactions", "sql": sql, "epsilon": 0.4}),
    )
    .await
    .json();
    assert_eq!(
        (again["cached"].clone(), again["rows"].clone()),
        (json!(true), body["rows"].clone())
    );

    // Out of budget: 429, what is left, when it refreshes.
    let reply = query(&client, &gw, &ana, json!({"dataset": "transactions", "sql": "SELECT AVG(amount) FROM transactions", "epsilon": 0.7})).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.error_code(), "privacy_budget_exhausted");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("refreshes at") && message.contains("0.6"),
        "{message}"
    );
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry));

    // A senior analyst: the shipped policy grants the dataset's `senior` tier (3x).
    let sam = token("sam", &["analyst", "senior_analyst"], &["analytics"]);
    let reply = query(&client, &gw, &sam, json!({"dataset": "transactions", "sql": "SELECT AVG(amount) FROM transactions", "epsilon": 0.7})).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let left = reply.json()["budget"]["epsilon_left"].as_f64().unwrap();
    assert!((left - 2.3).abs() < 1e-9, "{left}");

    // Spends are audited: the dataset and the loss, never the SQL. (Records are batched:
    // wait for the fifth.)
    let mut recs = records(&ws);
    for _ in 0..100 {
        if recs.len() >= 5 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        recs = records(&ws);
    }
    let spends: Vec<&Value> = recs.iter().filter_map(|r| r.get("privacy_spend")).collect();
    assert_eq!(spends.len(), 4, "{recs:?}");
    assert_eq!(spends[0]["epsilon"], "0.4");
    assert!(spends[0].get("budget_tier").is_none(), "{:?}", spends[0]);
    assert_eq!(spends[3]["budget_tier"], "senior");
    assert!(spends[1]["dry_run"] == true && spends[2]["cached"] == true);
    assert!(!std::fs::read_to_string(ws.path("audit/gw.jsonl"))
        .unwrap()
        .contains("SELECT"));
    let refused = recs.iter().rev().find(|r| r["status"] == 429).unwrap();
    assert_eq!(refused["decision"], "deny_budget_exhausted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_why_and_what_is_allowed() {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    seed(&ws).await;
    let gw = Gateway::start(&analytics_config(&ws, upstream.addr, 1.0));
    let client = https_client(&ws, None, false);
    let ana = token("ana", &["analyst"], &["analytics"]);
    let teller = token("tina", &["teller"], &["customer_service"]);
    // (token, body, status, code, words in the message)
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            &ana,
            json!({"dataset": "transactions", "sql": "SELECT customer_id, amount FROM transactions", "epsilon": 0.1}),
            400,
            "query_not_allowed",
            "allowed: SELECT",
        ),
        (
            &ana,
            json!({"dataset": "transactions", "sql": "SELECT COUNT(*) FROM transactions t JOIN x ON 1=1", "epsilon": 0.1}),
            400,
            "query_not_allowed",
            "JOIN",
        ),
        (
            &ana,
            json!({"dataset": "transactions", "sql": "SELECT COUNT(*) FROM transactions", "epsilon": 0.1, "accuracy": 3.0}),
            400,
            "invalid_request",
            "exactly one of epsilon",
        ),
        (
            &ana,
            json!({"dataset": "transactions", "sql": "SELECT COUNT(*) FROM transactions", "epsilon": -1.0}),
            400,
            "invalid_privacy_parameters",
            "positive",
        ),
        (
            &ana,
            json!({"dataset": "transactions", "sql": 7}),
            400,
            "invalid_request",
            "must be JSON",
        ),
        (
            &ana,
            json!({"dataset": "loans", "sql": "SELECT COUNT(*) FROM loans", "epsilon": 0.1}),
            404,
            "dataset_not_found",
            "loans",
        ),
        (
            &teller,
            json!({"dataset": "transactions", "sql": "SELECT COUNT(*) FROM transactions", "epsilon": 0.1}),
            403,
            "forbidden",
            "",
        ),
        (
            "",
            json!({"dataset": "transactions", "sql": "SELECT COUNT(*) FROM transactions", "epsilon": 0.1}),
            401,
            "authentication_required",
            "",
        ),
    ];
    for (token, body, status, code, words) in cases {
        let reply = query(&client, &gw, token, body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {:?}", reply.body);
        assert_eq!(reply.error_code(), code, "{body}");
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(words), "{body}: {message}");
    }
    let get = send(
        &client,
        Request::get(gw.url("/analytics/v1/query"))
            .header("authorization", format!("Bearer {ana}"))
            .body(Full::default())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    // Nothing above spent anything.
    let dry = query(&client, &gw, &ana, json!({"dataset": "transactions", "sql": "SELECT COUNT(*) FROM transactions", "epsilon": 0.1, "dry_run": true})).await.json();
    assert_eq!(dry["budget"]["epsilon_left"], 1.0);
}

/// An answer is cached under the dataset's definition as it was: after a reload changes
/// what an answer means (a column's bounds, the consent purpose filtering the rows), the
/// same query is computed and spent afresh; an unchanged reload keeps the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_dataset_definition_is_never_answered_from_the_cache() {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    seed(&ws).await;
    let path = analytics_config(&ws, upstream.addr, 5.0);
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let ana = token("ana", &["analyst"], &["analytics"]);
    let ask = || {
        let body = json!({"dataset": "transactions", "sql": "SELECT SUM(amount) FROM transactions", "epsilon": 0.2});
        let (client, gw, ana) = (&client, &gw, &ana);
        async move {
            let reply = query(client, gw, ana, body).await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            reply.json()["cached"].as_bool().unwrap()
        }
    };
    assert!(!ask().await);
    assert!(ask().await, "an identical query is answered from the cache");

    let original = std::fs::read_to_string(&path).unwrap();
    let edits = [
        // The same definition, reloaded: still cached.
        (original.clone(), true),
        (original.replacen("upper = 10000", "upper = 500", 1), false),
        (
            original.replacen(
                "cache_window = \"10m\"",
                "cache_window = \"10m\"\nrequire_consent_purpose = \"analytics\"",
                1,
            ),
            false,
        ),
    ];
    for (text, cached) in edits {
        std::fs::write(&path, &text).unwrap();
        gw.reload();
        assert_eq!(ask().await, cached, "{text}");
        assert!(ask().await, "then cached under the new definition");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_command_prints_a_table_with_intervals() {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    seed(&ws).await;
    let gw = Gateway::start(&analytics_config(&ws, upstream.addr, 5.0));
    let token_file = ws.write("ana.token", &token("ana", &["analyst"], &["analytics"]));
    let url = gw.url("/analytics/v1");
    let ca = ws.path("certs/ca.pem");
    let run = |args: &[&str]| {
        let mut all: Vec<String> = vec![
            "query".into(),
            "--url".into(),
            url.clone(),
            "--ca".into(),
            ca.display().to_string(),
            "--token-file".into(),
            token_file.display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        tokio::task::block_in_place(|| privgate(all))
    };
    let out = run(&[
        "--dataset",
        "transactions",
        "--epsilon",
        "1",
        "SELECT region, COUNT(*), AVG(amount) FROM transactions GROUP BY region",
    ]);
    assert!(out.ok, "{}", out.all());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("region") && lines[0].contains("COUNT(*)"),
        "{}",
        out.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("north") && l.contains("+/-")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("budget left: epsilon 4"),
        "{}",
        out.stdout
    );
    // CSV: estimate and interval columns per aggregate on stdout, the spend on stderr.
    let csv = run(&[
        "--dataset",
        "transactions",
        "--epsilon",
        "0.5",
        "--output",
        "csv",
        "SELECT region, COUNT(*) FROM transactions GROUP BY region",
    ]);
    assert!(csv.ok, "{}", csv.all());
    let mut lines = csv.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("region,COUNT(*),COUNT(*)_plus_minus_95,COUNT(*)_lower_95,COUNT(*)_upper_95")
    );
    assert_eq!(lines.count(), 4, "{}", csv.stdout);
    assert!(csv.stderr.contains("epsilon spent 0.5"), "{}", csv.all());
    let json = run(&[
        "--dataset",
        "transactions",
        "--epsilon",
        "0.5",
        "--output",
        "json",
        "SELECT region, COUNT(*) FROM transactions GROUP BY region",
    ]);
    let answer: Value =
        serde_json::from_str(&json.stdout).unwrap_or_else(|_| panic!("{}", json.all()));
    assert_eq!(
        answer["cached"], true,
        "the CSV query's answer, from the cache"
    );
    let dry = run(&[
        "--dataset",
        "transactions",
        "--accuracy",
        "20",
        "--dry-run",
        "SELECT SUM(amount) FROM transactions",
    ]);
    assert!(
        dry.ok
            && dry
                .stdout
                .contains("dry run: this query would cost epsilon"),
        "{}",
        dry.all()
    );
    let keyed = run(&[
        "--dataset",
        "transactions",
        "--epsilon",
        "1",
        "--delta",
        "1e-7",
        "SELECT merchant, COUNT(*) FROM transactions GROUP BY merchant",
    ]);
    assert!(keyed.ok, "{}", keyed.all());
    assert!(
        keyed
            .stdout
            .contains("keys released: only those whose noisy count reached")
            && keyed.stdout.contains("epsilon spent 1, delta spent ")
            && keyed.stdout.contains(", delta 9."),
        "{}",
        keyed.stdout
    );
    assert!(!keyed.stdout.contains("solo-shop"), "{}", keyed.stdout);
    // A CSV source answers like a table (scale 2: 60 +/- 40 fails with odds below e^-20).
    let loans = run(&[
        "--dataset",
        "loan_book",
        "--epsilon",
        "1",
        "SELECT COUNT(*) FROM loan_book",
    ]);
    assert!(loans.ok, "{}", loans.all());
    let count: i64 = loans
        .stdout
        .lines()
        .nth(2)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}", loans.stdout));
    assert!((20..=100).contains(&count), "{}", loans.stdout);
    // A damaged CSV file refuses the configuration, saying where, not what.
    ws.write("loans.csv", "id,customer_id,principal\n1,c1,secret-9\n");
    let check = privgate([
        "check".as_ref(),
        "--config".as_ref(),
        ws.path("privgate.toml").as_os_str(),
    ]);
    assert!(
        !check.ok
            && check
                .all()
                .contains("row 2: column `principal` is not an integer")
            && !check.all().contains("secret"),
        "{}",
        check.all()
    );
    let refused = run(&[
        "--dataset",
        "transactions",
        "--epsilon",
        "1",
        "SELECT * FROM transactions",
    ]);
    assert!(
        !refused.ok && refused.all().contains("query_not_allowed"),
        "{}",
        refused.all()
    );
}

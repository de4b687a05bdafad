//! What analysts may learn without spending (`GET /datasets`, `GET /budget`), answers as
//! CSV under content negotiation, and a query cancelled by its caller: all against the
//! real gateway, the shipped policies, the SQLite store and the audit chain.

use super::{analytics_config, query, records, seed, token};
use crate::harness::*;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use std::time::Duration;

async fn call(client: &HttpsClient, gw: &Gateway, token: &str, path: &str, accept: &str) -> Reply {
    call_as(client, gw, Method::GET, token, path, accept).await
}

async fn call_as(
    client: &HttpsClient,
    gw: &Gateway,
    method: Method,
    token: &str,
    path: &str,
    accept: &str,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(gw.url(path))
        .header("authorization", format!("Bearer {token}"));
    if !accept.is_empty() {
        req = req.header("accept", accept);
    }
    send(client, req.body(Full::default()).unwrap())
        .await
        .unwrap()
}

/// The caller's epsilon left on `dataset`, as `GET /budget?dataset=` says.
async fn epsilon_left(client: &HttpsClient, gw: &Gateway, token: &str, dataset: &str) -> f64 {
    let path = format!("/analytics/v1/budget?dataset={dataset}");
    let reply = call(client, gw, token, &path, "").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json()["budgets"][0]["epsilon_left"].as_f64().unwrap()
}

/// Waits until the audit trail holds at least `n` records.
fn records_at_least(ws: &Workspace, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let recs = records(ws);
        if recs.len() >= n {
            return recs;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    records(ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysts_see_what_they_may_ask_and_their_budget_without_spending() {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    seed(&ws).await;
    let config = analytics_config(&ws, upstream.addr, 1.0);
    // A third dataset only the senior analysts' policy lets anyone see or query.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        r#"
[[dataset]]
name = "restricted"
source = { table = "transactions" }
privacy_unit = "customer_id"
max_rows_per_unit = 4
truncate_order = "id"
analyst_epsilon = 1.0
global_epsilon = 2.0

[dataset.column.amount]
type = "integer"
lower = 0
upper = 10000
"#,
    );
    std::fs::write(&config, text).unwrap();
    let policies = ws.path("policies");
    copy_shipped_policies(&policies);
    let analytics = std::fs::read_to_string(policies.join("analytics.cedar")).unwrap();
    std::fs::write(
        policies.join("analytics.cedar"),
        format!(
            "{analytics}\n@id(\"restricted-is-senior-only\")\n@reason(\"senior_only\")\nforbid (principal, action in [PrivGate::Action::\"query\", PrivGate::Action::\"dataset:describe\", PrivGate::Action::\"budget:read\"], resource == PrivGate::Dataset::\"restricted\")\nunless {{ principal in PrivGate::Role::\"senior_analyst\" }};\n"
        ),
    )
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &shipped_policies().display().to_string(),
        &policies.display().to_string(),
    );
    std::fs::write(&config, text).unwrap();
    let gw = Gateway::start(&config);
    let client = https_client(&ws, None, false);
    let ana = token("ana", &["analyst"], &["analytics"]);
    let sam = token("sam", &["analyst", "senior_analyst"], &["analytics"]);
    let teller = token("tina", &["teller"], &["customer_service"]);

    // Discovery: only the datasets the policy allows, each as declared, never its source.
    let reply = call(&client, &gw, &ana, "/analytics/v1/datasets", "").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let listed = reply.json();
    let names: Vec<&str> = listed["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["loan_book", "transactions"]);
    let tx = &listed["datasets"][1];
    assert_eq!(tx["privacy_unit"], "customer_id");
    assert_eq!(
        (
            tx["max_rows_per_unit"].clone(),
            tx["max_groups_per_unit"].clone()
        ),
        (json!(4), json!(2))
    );
    let columns = tx["columns"].as_array().unwrap();
    assert!(
        columns.contains(&json!({"name": "amount", "type": "integer", "lower": 0, "upper": 10000}))
    );
    assert!(columns.contains(&json!({"name": "region", "type": "categorical", "categories": ["north", "south", "east", "west"]})));
    assert!(columns.contains(&json!({"name": "merchant", "type": "key"})));
    assert_eq!(tx["budget"]["tiers"][0]["name"], "senior");
    assert_eq!(tx["budget"]["analyst_delta"], 1e-6);
    assert!(
        !reply.body.windows(5).any(|w| w == b"loans"),
        "the CSV source's file or table name leaked"
    );
    let senior = call(&client, &gw, &sam, "/analytics/v1/datasets", "")
        .await
        .json();
    assert_eq!(senior["datasets"].as_array().unwrap().len(), 3, "{senior}");
    // One dataset by name; a forbidden one is refused as a query would be.
    let one = call(
        &client,
        &gw,
        &ana,
        "/analytics/v1/datasets/transactions",
        "",
    )
    .await;
    assert_eq!(
        (one.status, one.json()["name"].clone()),
        (StatusCode::OK, json!("transactions"))
    );
    let hidden = call(&client, &gw, &ana, "/analytics/v1/datasets/restricted", "").await;
    assert_eq!(hidden.status, StatusCode::FORBIDDEN);

    // Budgets: per dataset, the caller's and everyone's, the tier policy grants, the refresh.
    let budgets = call(&client, &gw, &sam, "/analytics/v1/budget", "")
        .await
        .json();
    let tx_budget = budgets["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["dataset"] == "transactions")
        .unwrap()
        .clone();
    assert_eq!(tx_budget["budget_tier"], "senior");
    assert_eq!(tx_budget["epsilon_left"], 3.0);
    assert_eq!(tx_budget["global_epsilon_left"], 100.0);
    assert_eq!(tx_budget["delta_left"], 1e-6);
    assert!(
        tx_budget["refreshes_at"].as_str().unwrap().ends_with('Z'),
        "{tx_budget}"
    );

    // Looking spends nothing; a query moves the budget, and the next look shows it.
    assert_eq!(epsilon_left(&client, &gw, &ana, "transactions").await, 1.0);
    assert_eq!(epsilon_left(&client, &gw, &ana, "transactions").await, 1.0);
    let reply = query(&client, &gw, &ana, json!({"dataset": "transactions", "sql": "SELECT COUNT(*) FROM transactions", "epsilon": 0.25})).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(epsilon_left(&client, &gw, &ana, "transactions").await, 0.75);
    assert_eq!(epsilon_left(&client, &gw, &sam, "transactions").await, 3.0);

    // Refused: callers the policy allows nothing, a forbidden dataset, bad parameters.
    let cases = [
        (
            &teller,
            "/analytics/v1/datasets",
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            &teller,
            "/analytics/v1/budget",
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            &ana,
            "/analytics/v1/budget?dataset=restricted",
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            &ana,
            "/analytics/v1/budget?dataset=nope",
            StatusCode::NOT_FOUND,
            "dataset_not_found",
        ),
        (
            &ana,
            "/analytics/v1/datasets/nope",
            StatusCode::NOT_FOUND,
            "dataset_not_found",
        ),
        (
            &ana,
            "/analytics/v1/budget?dataset=transactions&x=1",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            &ana,
            "/analytics/v1/nothing",
            StatusCode::NOT_FOUND,
            "route_not_found",
        ),
    ];
    for (who, path, status, code) in cases {
        let reply = call(&client, &gw, who, path, "").await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (status, code.to_owned()),
            "{path}"
        );
    }
    let post = call_as(&client, &gw, Method::POST, &ana, "/analytics/v1/budget", "").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);

    // Every call is audited: the action, the deciding policies, a refusal as a denial.
    let recs = records_at_least(&ws, 17);
    let describe: Vec<&Value> = recs
        .iter()
        .filter(|r| r["action"] == "dataset:describe")
        .collect();
    assert!(
        describe.iter().any(|r| r["decision"] == "allow"
            && r["policy_ids"]
                .as_array()
                .unwrap()
                .contains(&json!("analysts-discover-datasets"))),
        "{describe:?}"
    );
    assert!(
        describe
            .iter()
            .any(|r| r["decision"] == "deny" && r["status"] == 403),
        "{describe:?}"
    );
    let budget_reads = recs.iter().filter(|r| r["action"] == "budget:read").count();
    assert!(budget_reads >= 6, "{recs:?}");
    assert!(recs
        .iter()
        .filter(|r| r["action"] == "budget:read" || r["action"] == "dataset:describe")
        .all(|r| r.get("privacy_spend").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_come_as_csv_when_asked_and_406_costs_nothing() {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    seed(&ws).await;
    let gw = Gateway::start(&analytics_config(&ws, upstream.addr, 1.0));
    let client = https_client(&ws, None, false);
    let ana = token("ana", &["analyst"], &["analytics"]);
    let ask = |accept: &'static str, sql: &'static str| {
        let req = Request::post(gw.url("/analytics/v1/query"))
            .header("authorization", format!("Bearer {ana}"))
            .header("content-type", "application/json")
            .header("accept", accept)
            .body(Full::new(Bytes::from(
                json!({"dataset": "transactions", "sql": sql, "epsilon": 0.2}).to_string(),
            )))
            .unwrap();
        send(&client, req)
    };
    let sql = "SELECT region, COUNT(*), AVG(amount) FROM transactions GROUP BY region";
    let reply = ask("application/json;q=0.5, text/csv", sql).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let header = |name: &str| -> f64 { reply.headers[name].to_str().unwrap().parse().unwrap() };
    assert!((header("privgate-epsilon-spent") - 0.2).abs() < 1e-9);
    assert!((header("privgate-epsilon-left") - 0.8).abs() < 1e-9);
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "region",
            "COUNT(*)",
            "COUNT(*)_plus_minus_95",
            "COUNT(*)_lower_95",
            "COUNT(*)_upper_95",
            "AVG(amount)",
            "AVG(amount)_plus_minus_95",
            "AVG(amount)_lower_95",
            "AVG(amount)_upper_95",
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(
        rows.iter().map(|r| r[0].to_owned()).collect::<Vec<_>>(),
        ["north", "south", "east", "west"]
    );
    for row in &rows {
        let (estimate, pm, lower, upper): (f64, f64, f64, f64) = (
            row[1].parse().unwrap(),
            row[2].parse().unwrap(),
            row[3].parse().unwrap(),
            row[4].parse().unwrap(),
        );
        assert!(
            pm > 0.0
                && (lower - (estimate - pm)).abs() < 1e-9
                && (upper - (estimate + pm)).abs() < 1e-9,
            "{row:?}"
        );
        assert_eq!(&row[6], "", "AVG has no interval: {row:?}");
    }
    // The same query as JSON is the cached answer: the same estimates, nothing spent.
    let json_reply = ask("application/json", sql).await.unwrap();
    let body = json_reply.json();
    assert_eq!(body["cached"], true);
    assert_eq!(
        body["rows"][0][1]["estimate"].to_string(),
        rows[0][1].to_owned()
    );

    // Nothing acceptable: 406, before anything is read or spent.
    for accept in [
        "text/html",
        "application/json;q=0, text/csv;q=0",
        "text/csv;q=2",
    ] {
        let reply = ask(accept, "SELECT SUM(amount) FROM transactions")
            .await
            .unwrap();
        assert_eq!(
            (reply.status, reply.error_code()),
            (StatusCode::NOT_ACCEPTABLE, "not_acceptable".to_owned()),
            "{accept}"
        );
    }
    let left = query(&client, &gw, &ana, json!({"dataset": "transactions", "sql": "SELECT SUM(amount) FROM transactions", "epsilon": 0.2, "dry_run": true})).await.json();
    assert!(
        (left["budget"]["epsilon_left"].as_f64().unwrap() - 0.8).abs() < 1e-9,
        "{left}"
    );
}

/// A dataset whose reads take seconds: a view over the transactions that first counts
/// to `steps` (SQLite evaluates the uncorrelated subquery once per read).
async fn slow_view(ws: &Workspace, steps: u64) {
    let url = format!("sqlite://{}/privgate.db", ws.dir.path().display());
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    sqlx::query(&format!(
        "CREATE VIEW slow_transactions AS SELECT t.* FROM transactions t WHERE \
         (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {steps}) \
          SELECT count(*) FROM c) > 0"
    ))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_its_caller_abandons_spends_nothing() {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    seed(&ws).await;
    slow_view(&ws, 6_000_000).await;
    let config = analytics_config(&ws, upstream.addr, 1.0);
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "source = { table = \"transactions\" }",
        "source = { table = \"slow_transactions\" }",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let gw = Gateway::start(&config);
    let client = https_client(&ws, None, false);
    let ana = token("ana", &["analyst"], &["analytics"]);
    let body = json!({"dataset": "transactions", "sql": "SELECT COUNT(*) FROM transactions", "epsilon": 0.5}).to_string();

    // The caller sends the query and goes away while the source is still reading.
    let started = std::time::Instant::now();
    let mut tls = raw_tls(&ws, gw.addr).await;
    let head = format!(
        "POST /analytics/v1/query HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {ana}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut tls, head.as_bytes())
        .await
        .unwrap();
    let (early, closed) = read_until_closed(&mut tls, Duration::from_millis(400)).await;
    assert!(
        early.is_empty() && !closed,
        "answered before it was abandoned: {}",
        String::from_utf8_lossy(&early)
    );
    tokio::io::AsyncWriteExt::shutdown(&mut tls).await.unwrap();
    drop(tls);

    // Nothing spent, then or once the read would have finished.
    assert_eq!(epsilon_left(&client, &gw, &ana, "transactions").await, 1.0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(epsilon_left(&client, &gw, &ana, "transactions").await, 1.0);

    // `privgate query` interrupted by Ctrl-C while the source reads: it says so, nothing spent.
    let token_file = ws.write("ana.token", &ana);
    let cli = std::process::Command::new(BIN)
        .args(["query", "--url", &gw.url("/analytics/v1"), "--ca"])
        .arg(ws.path("certs/ca.pem"))
        .arg("--token-file")
        .arg(&token_file)
        .args(["--dataset", "transactions", "--epsilon", "0.25"])
        .arg("SELECT SUM(amount) FROM transactions")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Ctrl-C is the CLI's to handle once it is waiting on the gateway: its handler is in
    // place before it opens any socket, so wait for one (a loaded machine can take seconds
    // to get there), then give the request time to reach the gateway.
    let fds = format!("/proc/{}/fd", cli.id());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_dir(&fds).unwrap().any(|fd| {
        std::fs::read_link(fd.unwrap().path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the CLI never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(cli.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| cli.wait_with_output()).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cancelled"),
        "{stderr}"
    );
    assert_eq!(epsilon_left(&client, &gw, &ana, "transactions").await, 1.0);

    // The same query asked and awaited: answered afresh (the abandoned one let its cache
    // claim go rather than leave it waiting), and this one spends.
    let reply = query(&client, &gw, &ana, serde_json::from_str(&body).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json()["cached"], false);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "waited on a stale claim: {:?}",
        started.elapsed()
    );
    assert_eq!(epsilon_left(&client, &gw, &ana, "transactions").await, 0.5);
}

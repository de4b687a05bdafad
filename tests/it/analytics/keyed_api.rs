//! GROUP BY a key column end to end: the real gateway over TLS, the threshold keeping a
//! key one customer alone has out of the answer, delta spent, left and exhausted (429),
//! the cache and the audit record (see mod.rs for the gateway set-up).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_found_in_the_data_are_released_above_a_threshold_for_delta() {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    seed(&ws).await;
    let gw = Gateway::start(&analytics_config(&ws, upstream.addr, 10.0));
    let client = https_client(&ws, None, false);
    let ana = token("ana", &["analyst"], &["analytics"]);
    let keyed = |i: i64, delta: Option<f64>| {
        let mut body = json!({"dataset": "transactions", "epsilon": 1.0, "sql": format!(
            "SELECT merchant, COUNT(*) FROM transactions WHERE amount >= {i} GROUP BY merchant"
        )});
        if let Some(delta) = delta {
            body["delta"] = json!(delta);
        }
        body
    };

    // No delta given (and no default configured): refused, saying delta is needed.
    let reply = query(&client, &gw, &ana, keyed(0, None)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("needs delta > 0"), "{message}");

    // The three shared merchants come out; the one customer's own merchant does not.
    let reply = query(&client, &gw, &ana, keyed(0, Some(4e-7))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let body = reply.json();
    let keys = row_keys(&body);
    assert_eq!(keys, ["cafe", "grocer", "rail"], "{body}");
    let delta = body["delta_spent"].as_f64().unwrap();
    assert!(delta > 0.0 && delta <= 4e-7, "{body}");
    assert!(body["key_threshold"].as_i64().unwrap() > 3, "{body}");
    let left = body["budget"]["delta_left"].as_f64().unwrap();
    assert!((left - (1e-6 - delta)).abs() < 1e-15, "{body}");

    // Sums and means by key come over the same released keys (a small delta: 1e-8).
    let reply = query(&client, &gw, &ana, json!({"dataset": "transactions", "epsilon": 3.0, "delta": 1e-8,
        "sql": "SELECT merchant, COUNT(*), SUM(amount), AVG(amount) FROM transactions GROUP BY merchant"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let sums = reply.json();
    assert_eq!(
        sums["columns"],
        json!(["merchant", "COUNT(*)", "SUM(amount)", "AVG(amount)"])
    );
    let keys = row_keys(&sums);
    assert_eq!(keys, ["cafe", "grocer", "rail"], "{sums}");
    assert!(
        sums["rows"][0][2]["plus_minus_95"].as_f64().unwrap() > 0.0,
        "{sums}"
    );
    assert!(
        (sums["epsilon_spent"].as_f64().unwrap() - 3.0).abs() < 1e-9,
        "{sums}"
    );

    // A second 4e-7 query fits the analyst's delta (1e-6); a third does not: 429.
    let reply = query(&client, &gw, &ana, keyed(1, Some(4e-7))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply = query(&client, &gw, &ana, keyed(2, Some(4e-7))).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        reply.body
    );
    assert_eq!(reply.error_code(), "privacy_budget_exhausted");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("delta"), "{message}");
    // Cached: the first keyed query again spends nothing.
    let again = query(&client, &gw, &ana, keyed(0, Some(4e-7))).await.json();
    assert_eq!(
        (again["cached"].clone(), again["rows"].clone()),
        (json!(true), body["rows"].clone())
    );

    // The audit records carry the delta spent.
    let mut recs = records(&ws);
    for _ in 0..100 {
        if recs
            .iter()
            .filter(|r| r.get("privacy_spend").is_some())
            .count()
            >= 3
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        recs = records(&ws);
    }
    let spends: Vec<&Value> = recs.iter().filter_map(|r| r.get("privacy_spend")).collect();
    assert!(spends.len() >= 3, "{recs:?}");
    assert!(
        spends[0]["delta"].as_str().unwrap().parse::<f64>().unwrap() > 0.0,
        "{recs:?}"
    );
    assert!(!std::fs::read_to_string(ws.path("audit/gw.jsonl"))
        .unwrap()
        .contains("solo-shop"));
}

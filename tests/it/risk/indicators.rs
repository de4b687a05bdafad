//! The indicators other than distinct subjects, through the real gateway: clear reveals per
//! field class (and the crossing in the audit chain), refusals, off-hours requests with the
//! usual hours and a role's own hours, thresholds scoped to an organisation, and epsilon
//! spent on differentially private queries.

use super::*;

/// The current UTC hour.
fn hour_now() -> u32 {
    ((now_s() / 3600) % 24) as u32
}

/// `principal`'s indicators over the last 5 minutes, from the store.
async fn last_5m(one: &OneGateway, principal: &str) -> serde_json::Value {
    one.show("--principal", principal).await["windows"]["5m"].clone()
}

/// The `threshold` log lines seen so far for `principal`.
fn crossings(gw: &Gateway, threshold: &str, principal: &str) -> usize {
    gw.logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l["threshold"] == threshold && l["principal"] == principal)
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("risk threshold exceeded"))
        })
        .count()
}

/// Clear card numbers past the threshold raise one event, on the request that crossed, and
/// the audit chain records it there by name (no value, no subject); masked views do not
/// count as clear reveals.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clear_reveals_of_a_class_trip_a_threshold_and_the_audit_record_names_it() {
    let ws = Workspace::new();
    let thresholds = format!(
        r#"
[[risk.threshold]]
name = "pan-reveals"
indicator = "clear_reveals"
class = "pan"
window = "5m"
above = 2
response = "alert"
{}"#,
        crate::audit::audit_section(&ws)
    );
    let one = OneGateway::start(ws, &thresholds, "").await;
    // Without a fresh second factor the analyst sees card numbers masked: never counted.
    one.read_ok(1..=4, &analyst_token(&["pwd"])).await;
    // With one, in clear: the fourth such request finds three, above two.
    one.read_ok(1..=5, &analyst_token(&["pwd", "otp"])).await;
    let OneGateway { ws, gw, .. } = one;
    let event = gw.wait_for(|l| l["threshold"] == "pan-reveals");
    assert_eq!(event["indicator"], "clear_reveals");
    crate::audit::stop(gw).await;

    let chain = std::fs::read_to_string(ws.path("audit/gw-test.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = chain
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reads: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["route"] == "customers")
        .collect();
    assert_eq!(reads.len(), 9, "{chain}");
    let crossed: Vec<usize> = reads
        .iter()
        .enumerate()
        .filter(|(_, r)| r.get("risk_events").is_some())
        .map(|(i, _)| i)
        .collect();
    // Requests 5 to 9 revealed the card number in clear; the 8th read crossed.
    assert_eq!(crossed, vec![7], "{chain}");
    assert_eq!(
        reads[7]["risk_events"],
        json!([{
            "threshold": "pan-reveals", "indicator": "clear_reveals", "window": "5m",
            "scope": "principal", "response": "alert"
        }])
    );
    assert!(
        reads[7]["revealed_clear"]
            .as_array()
            .unwrap()
            .contains(&json!("pan")),
        "{}",
        reads[7]
    );
    let (ok, out) = crate::audit::verify(&ws);
    assert!(ok, "{out}");
}

/// Refusals (any reason) and off-hours requests trip their thresholds for the callers that
/// make them; a caller whose role has its own usual hours (`[[risk.role_hours]]`) covering
/// now is not off-hours, although the global usual hours exclude now.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_and_off_hours_trip_thresholds_and_a_roles_own_hours_count_as_usual() {
    // The working day is two hours that start two hours from now (the test runs in
    // seconds); the night desk works this hour and the next.
    let h = hour_now();
    let thresholds = format!(
        r#"usual_hours = {{ from = {from}, to = {to} }}

[[risk.role_hours]]
role = "night_desk"
from = {h}
to = {night_to}

[[risk.threshold]]
name = "probing"
indicator = "refusals"
window = "5m"
above = 2
response = "alert"

[[risk.threshold]]
name = "odd-hours"
indicator = "off_hours"
window = "5m"
above = 2
response = "alert"
"#,
        from = (h + 2) % 24,
        to = (h + 4) % 24,
        night_to = (h + 2) % 24,
    );
    let one = OneGateway::start(Workspace::new(), &thresholds, "").await;
    let nina = staff_token_with(
        "nina",
        &["pwd"],
        &["fraud_analyst", "night_desk"],
        json!({}),
    );
    let fred = analyst_token(&["pwd"]);
    // No policy lets an intern read customers: every request refused.
    let ivan = staff_token_with("ivan", &["pwd"], &["intern"], json!({}));
    for customer in 1..=4 {
        one.read_ok([customer], &nina).await;
        one.read_ok([customer], &fred).await;
        let status = one.read(customer, &ivan).await.status;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let gw = &one.gw;
    gw.wait_for(|l| l["threshold"] == "odd-hours" && l["principal"] == "User:fred");
    gw.wait_for(|l| l["threshold"] == "probing" && l["principal"] == "User:ivan");
    assert_eq!(crossings(gw, "probing", "User:fred"), 0);
    assert_eq!(crossings(gw, "probing", "User:nina"), 0);
    assert_eq!(crossings(gw, "odd-hours", "User:nina"), 0);
    assert_eq!(crossings(gw, "odd-hours", "User:fred"), 1);

    // The counts behind it, from the store once flushed.
    let (fred, nina, ivan) = (
        last_5m(&one, "User:fred").await,
        last_5m(&one, "User:nina").await,
        last_5m(&one, "User:ivan").await,
    );
    assert_eq!(fred["off_hours"], 4.0, "{fred}");
    assert_eq!(nina["off_hours"], 0.0, "{nina}");
    assert_eq!(nina["requests"], 4.0, "{nina}");
    assert_eq!(ivan["refusals"], 4.0, "{ivan}");
    assert_eq!(fred["refusals"], 0.0, "{fred}");
    // A refused caller accessed no data subject.
    assert_eq!(ivan["distinct_subjects"], 0.0, "{ivan}");
}

/// An organisation-scoped threshold sums its principals: two analysts of one bank, each
/// under the threshold, together past it, are both asked to step up; an analyst of another
/// organisation is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organisation_threshold_sums_its_principals() {
    let thresholds = r#"
[[risk.threshold]]
name = "bank-bulk-reading"
indicator = "distinct_subjects"
window = "1h"
above = 5
scope = "organisation"
response = "step_up"
step_up = { amr_any = ["otp"], max_age = "5m" }
"#;
    let issuer = "organisation_claim = \"org\"";
    let one = OneGateway::start(Workspace::new(), thresholds, issuer).await;
    let of = |sub: &str, org: &str| {
        staff_token_with(sub, &["pwd"], &["fraud_analyst"], json!({ "org": org }))
    };
    let (fred, tina, olga) = (of("fred", "bank"), of("tina", "bank"), of("olga", "other"));
    // Three distinct customers each (1-3 and 4-6): six for the bank, above five.
    one.read_ok(1..=3, &fred).await;
    one.read_ok(4..=6, &tina).await;
    for token in [&fred, &tina] {
        let reply = one.read(1, token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let challenge = reply.headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("insufficient_user_authentication"),
            "{challenge}"
        );
    }
    // Another organisation reads the same customers unhindered.
    one.read_ok(1..=6, &olga).await;
    let event = one.gw.wait_for(|l| l["threshold"] == "bank-bulk-reading");
    assert_eq!(event["scope"], "organisation");
    // The organisation's indicators, from the store.
    let shown = one.show("--organisation", "bank").await;
    assert_eq!(shown["windows"]["1h"]["distinct_subjects"], 6.0, "{shown}");
}

/// Epsilon an analyst spends on differentially private queries is counted (thousandths in
/// the policy context), and past the threshold raises one event; a query
/// answered from the cache spends nothing and adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn epsilon_spent_on_queries_trips_a_dp_threshold() {
    let ws = Workspace::new();
    let sections = format!(
        r#"
[[risk.threshold]]
name = "fast-spending"
indicator = "dp_epsilon"
window = "5m"
above = 0.8
response = "alert"
{}"#,
        loan_book(&ws)
    );
    let one = OneGateway::start(ws, &sections, "").await;
    let analyst = staff_token_with(
        "ana",
        &["pwd"],
        &["analyst"],
        json!({ "purposes": ["analytics"] }),
    );
    let query = |sql: &'static str| {
        let body = json!({ "dataset": "loan_book", "sql": sql, "epsilon": 0.5 }).to_string();
        Request::post(one.gw.url("/analytics/v1/query"))
            .header("authorization", format!("Bearer {analyst}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    for sql in [
        "SELECT SUM(principal) FROM loan_book",
        "SELECT SUM(principal) FROM loan_book", // the cache answers: nothing spent
        "SELECT COUNT(*) FROM loan_book",
    ] {
        let reply = send(&one.client, query(sql)).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{sql}: {:?}", reply.body);
    }
    let shown = one.show("--principal", "User:ana").await;
    // 0.5 twice; the cached answer spent nothing (`privgate risk show` states epsilon).
    assert_eq!(shown["windows"]["5m"]["dp_epsilon"], 1.0, "{shown}");
    assert_eq!(shown["windows"]["5m"]["requests"], 3.0, "{shown}");
    // Indicators are assessed before each request: the next one (spending nothing) finds
    // 1.0 spent, above 0.8.
    let budget = Request::get(one.gw.url("/analytics/v1/budget"))
        .header("authorization", format!("Bearer {analyst}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        send(&one.client, budget).await.unwrap().status,
        StatusCode::OK
    );
    let event = one
        .gw
        .wait_for(|l| l["threshold"] == "fast-spending" && l["principal"] == "User:ana");
    assert_eq!(event["indicator"], "dp_epsilon");
    assert_eq!(crossings(&one.gw, "fast-spending", "User:ana"), 1);
}

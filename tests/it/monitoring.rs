//! What an operator monitors: the dashboard (docs/grafana-dashboard.json) and the alert
//! rules (docs/alerts.yml) name only metrics a running gateway exports, and the state
//! gauges say what the gateway is doing (build, readiness, serving configuration and policy
//! set, audit writer, certificate expiry, key-use bound, reloads, PII-guard findings).

use crate::harness::*;
use http::StatusCode;
use std::collections::BTreeSet;

/// Every sample name `/metrics` can produce: gauges by name, counters with `_total`,
/// histograms with `_bucket`, `_sum` and `_count` (read from the `# TYPE` lines, so families
/// without a series yet count too).
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#") || words.next() != Some("TYPE") {
            continue;
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// The `privgate_...` names a monitoring file mentions.
fn mentioned(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap();
    let names = regex::Regex::new(r"privgate_[a-z0-9_]+").unwrap();
    names
        .find_iter(&text)
        .map(|m| m.as_str().to_owned())
        .collect()
}

/// The value of the one sample whose line starts with `prefix` (name and labels).
fn sample(metrics: &str, prefix: &str) -> f64 {
    let lines: Vec<&str> = metrics.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "{prefix}: {lines:?}\n{metrics}");
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn dashboard_and_alerts_use_exported_metrics_and_gauges_tell_the_state() {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    let extra = protected_customers(&ws, "5a", "[a-z0-9-]+");
    let text = without_plain_routes(config(&ws, upstream.addr, &optional_mtls(&ws), &extra));
    let path = ws.write("privgate.toml", &text);
    let init = crate::protect::cli(&path, &["keys", "init"]);
    assert!(init.ok, "{}", init.all());
    let gw = Gateway::start(&path);

    // A card number where no rule binds a class: the route's guard blocks it (and counts).
    let teller = https_client(&ws, Some("certs/client-b"), false);
    let create = |body: &'static str| {
        http::Request::post(gw.url("/customers"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap()
    };
    let reply = send(
        &teller,
        create(r#"{"id":"c-1","note":"card 4000001234567899"}"#),
    )
    .await
    .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        reply.body
    );

    let (status, metrics) = gw.admin_get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let names = exported(&metrics);
    for file in ["docs/alerts.yml", "docs/grafana-dashboard.json"] {
        let unknown: Vec<_> = mentioned(file).difference(&names).cloned().collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics nobody exports: {unknown:?}"
        );
    }

    let version = env!("CARGO_PKG_VERSION");
    let fhe = cfg!(feature = "fhe");
    assert_eq!(
        sample(
            &metrics,
            &format!("privgate_build_info{{version=\"{version}\",fhe=\"{fhe}\"}}")
        ),
        1.0
    );
    assert_eq!(sample(&metrics, "privgate_ready "), 1.0);
    let sha = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let sha: String = sha.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let config_info = metrics
        .lines()
        .find(|l| l.starts_with("privgate_config_info{"))
        .unwrap();
    assert!(
        config_info.contains(&format!("config_sha256=\"{sha}\""))
            && !config_info.contains("policy_set_hash=\"\"")
            && config_info.ends_with(" 1"),
        "{config_info}"
    );
    assert_eq!(
        sample(&metrics, "privgate_config_last_reload_successful "),
        1.0
    );
    assert_eq!(sample(&metrics, "privgate_audit_healthy "), 1.0);
    assert!(sample(&metrics, "privgate_audit_queue_records ") >= 0.0);
    // `privgate certs dev` makes one-year certificates.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let expiry = sample(
        &metrics,
        "privgate_certificate_expiry_timestamp_seconds{kind=\"listener\",name=\"public\"}",
    );
    let days = (expiry - now) / 86400.0;
    assert!((360.0..367.0).contains(&days), "{days}");
    assert!(sample(&metrics, "privgate_aead_key_use_limit ") > 0.0);
    assert!(
        sample(
            &metrics,
            "privgate_pii_guard_findings_total{route=\"customer_create\",detector=\"card\",action=\"block\"}"
        ) >= 1.0
    );
    // The guard's finding names the route and detector, never the value.
    assert!(!metrics.contains("4000001234567899"));
    // A card number as a member name (a map keyed by card): refused, and reported at a
    // path with the name masked, in the log line as anywhere else.
    let keyed = create(r#"{"id":"c-1","cards":{"4000001234567899":"on file"}}"#);
    let keyed = send(&teller, keyed).await.unwrap();
    assert_eq!(
        keyed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        keyed.body
    );
    let in_name = gw.wait_for(|l| {
        l["fields"]["in_name"].as_bool() == Some(true) || l["in_name"].as_bool() == Some(true)
    });
    assert!(
        in_name
            .to_string()
            .contains("$['cards']['****************']"),
        "{in_name}"
    );
    let logged = serde_json::to_string(&*gw.logs.lock().unwrap()).unwrap();
    assert!(!logged.contains("4000001234567899"), "{logged}");
    // Its log line carries the request's id (the request span), like every line of a request.
    let finding = gw.wait_for_log("personal data outside protected fields");
    assert_eq!(
        finding["span"]["request_id"].as_str(),
        reply
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        "{finding}"
    );

    // A rejected reload shows until a good one applies.
    ws.write("privgate.toml", &text.replace("[admin]", "[admin\n"));
    gw.signal(nix::sys::signal::Signal::SIGHUP);
    gw.wait_for_log("new configuration rejected");
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert_eq!(
        sample(&metrics, "privgate_config_last_reload_successful "),
        0.0
    );
    assert!(
        metrics.contains(&format!("config_sha256=\"{sha}\"")),
        "still serving"
    );
}

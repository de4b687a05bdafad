//! Process lifecycle: graceful drain on SIGTERM, reload on SIGHUP, health and readiness.

use crate::harness::*;
use http::StatusCode;
use nix::sys::signal::Signal;
use std::time::Duration;

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let mut gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, "", "")));
    assert_eq!(gw.admin_get("/readyz").await.0, StatusCode::OK);
    assert_eq!(gw.admin_get("/healthz").await.0, StatusCode::OK);

    let client = https_client(&ws, None, false);
    let url = gw.url("/slow?ms=1500");
    let in_flight = tokio::spawn(async move { get(&client, &url).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    gw.signal(Signal::SIGTERM);
    gw.wait_for_log("shutting down");

    // New connections are refused while the in-flight request finishes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "still accepting after SIGTERM"
    );

    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["slow"], true);

    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..100 {
            if let Some(status) = gw.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    })
    .await
    .unwrap();
    assert!(status
        .expect("gateway did not exit after draining")
        .success());
}

#[tokio::test]
async fn sighup_applies_a_valid_config_and_keeps_the_old_one_when_invalid() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let path = ws.write("privgate.toml", &config(&ws, up.addr, "", ""));
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    assert_eq!(get(&client, &gw.url("/echo")).await.status, StatusCode::OK);

    // A valid change: the catch-all route now only answers under /v2.
    let valid =
        config(&ws, up.addr, "", "").replacen("path_prefix = \"/\"", "path_prefix = \"/v2\"", 1);
    std::fs::write(&path, valid).unwrap();
    gw.signal(Signal::SIGHUP);
    gw.wait_for_log("configuration reloaded");
    assert_eq!(
        get(&client, &gw.url("/echo")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&client, &gw.url("/v2/echo")).await.status,
        StatusCode::OK
    );

    // An invalid one (route to an undefined upstream): rejected, the /v2 config keeps serving.
    let invalid =
        config(&ws, up.addr, "", "").replacen("upstream = \"main\"", "upstream = \"missing\"", 1);
    std::fs::write(&path, invalid).unwrap();
    gw.signal(Signal::SIGHUP);
    let rejected = gw.wait_for_log("rejected");
    assert!(
        rejected["problems"]
            .as_str()
            .unwrap()
            .contains("upstream `missing` is not defined"),
        "{rejected}"
    );
    assert_eq!(
        get(&client, &gw.url("/v2/echo")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&client, &gw.url("/echo")).await.status,
        StatusCode::NOT_FOUND
    );

    // Listeners are bound once: a config that moves one is rejected too.
    let moved = config(&ws, up.addr, "", "").replacen("127.0.0.1:0", "127.0.0.1:1", 1);
    std::fs::write(&path, moved).unwrap();
    gw.signal(Signal::SIGHUP);
    gw.wait_for(|l| {
        l["problems"]
            .as_str()
            .is_some_and(|p| p.contains("change only on restart"))
    });
    assert_eq!(
        get(&client, &gw.url("/v2/echo")).await.status,
        StatusCode::OK
    );

    let (_, metrics) = gw.admin_get("/metrics").await;
    // The file watcher may also pick an edit up before the signal does: at least as many.
    let count = |outcome: &str| -> u64 {
        let prefix = format!("privgate_config_reloads_total{{outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("applied") >= 1 && count("rejected") >= 2, "{metrics}");
}

#[tokio::test]
async fn request_logs_carry_no_paths_queries_or_credentials() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, "", "")));
    let client = https_client(&ws, None, false);
    let req = http::Request::get(gw.url("/echo/customers/918-84-5525?email=alice%40example.com"))
        .header("authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.secret-token")
        .header("x-otp", "402913")
        .body(http_body_util::Full::default())
        .unwrap();
    assert_eq!(send(&client, req).await.unwrap().status, StatusCode::OK);
    let line = gw.wait_for(|l| l["message"] == "request");
    assert_eq!(line["route"], "echo");
    assert_eq!(line["status"], 200);
    assert!(
        line["request_id"].is_string() && line["latency_ms"].is_number(),
        "{line}"
    );
    let all = format!("{:?}", gw.logs.lock().unwrap());
    for secret in ["918-84-5525", "alice", "secret-token", "402913"] {
        assert!(!all.contains(secret), "{secret} appeared in logs");
    }
}

#[tokio::test]
async fn sighup_reloads_certificates() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let path = ws.write("privgate.toml", &config(&ws, up.addr, "", ""));
    let gw = Gateway::start(&path);
    assert_eq!(
        get(&https_client(&ws, None, false), &gw.url("/echo"))
            .await
            .status,
        StatusCode::OK
    );

    // Rotate to the server certificate of the other CA.
    let rotated = std::fs::read_to_string(&path)
        .unwrap()
        .replace("/certs/server", "/other/server");
    std::fs::write(&path, rotated).unwrap();
    gw.signal(Signal::SIGHUP);
    gw.wait_for_log("configuration reloaded");

    let old_trust = https_client(&ws, None, false);
    let refused = send(
        &old_trust,
        http::Request::get(gw.url("/echo"))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert!(
        refused.is_err(),
        "new connections still get the old certificate"
    );
    let new_trust = https_client_trusting(&ws, "other/ca.pem");
    assert_eq!(
        get(&new_trust, &gw.url("/echo")).await.status,
        StatusCode::OK
    );
}

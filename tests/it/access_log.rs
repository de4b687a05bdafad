//! The access log: one JSON line per request with the upstream's name, status and latency,
//! byte counts, the error code and the trace id field, in its own file (`--access-log`,
//! here through `PRIVGATE_ACCESS_LOG`); and every other line logged while a request is
//! handled carries the request's id.

use crate::harness::*;
use http::StatusCode;
use serde_json::Value;

/// The access log's lines once it has `n` of them (up to 10 s).
fn access_lines(path: &std::path::Path, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= n {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("fewer than {n} access log lines in {}", path.display());
}

#[tokio::test]
async fn access_log_has_upstream_bytes_and_error_fields_in_its_own_file() {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    let extra = "\n[upstream.down]\nurl = \"http://127.0.0.1:9\"\nconnect_timeout = \"1s\"\n\n\
                 [[route]]\nname = \"down\"\npath_prefix = \"/down\"\nupstream = \"down\"\n";
    let path = ws.write("privgate.toml", &config(&ws, upstream.addr, "", extra));
    let access = ws.path("access.jsonl");
    let gw = Gateway::start_with_env(&path, &[("PRIVGATE_ACCESS_LOG", access.as_os_str())]);
    let client = https_client(&ws, None, false);

    // Buffered routes take JSON only (SECURITY.md, class 7).
    let request = http::Request::post(gw.url("/buffered/x"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"{\"a\":1}",
        )))
        .unwrap();
    let ok = send(&client, request).await.unwrap();
    assert_eq!(ok.status, StatusCode::OK);
    let down = get(&client, &gw.url("/down")).await;
    assert_eq!(down.status, StatusCode::BAD_GATEWAY);

    let lines = access_lines(&access, 2);
    let (served, failed) = (&lines[0], &lines[1]);
    assert_eq!(served["message"], "request", "{served}");
    assert_eq!(served["route"], "buffered");
    assert_eq!(served["status"], 200);
    assert_eq!(served["upstream"], "main");
    assert_eq!(served["upstream_status"], 200);
    assert!(
        served["upstream_latency_ms"].as_f64().unwrap() > 0.0,
        "{served}"
    );
    assert_eq!(served["request_bytes"], 7);
    assert_eq!(served["response_bytes"], ok.body.len(), "{served}");
    assert_eq!(served["trace_id"], "");
    assert!(served.get("error_code").is_none(), "{served}");
    assert_eq!(
        served["request_id"].as_str().unwrap(),
        ok.headers["x-request-id"].to_str().unwrap()
    );

    assert_eq!(failed["route"], "down");
    assert_eq!(failed["status"], 502);
    assert_eq!(failed["upstream"], "down");
    assert!(failed.get("upstream_status").is_none(), "{failed}");
    assert_eq!(failed["error_code"].as_str().unwrap(), down.error_code());
    assert_eq!(failed["response_bytes"], down.body.len());

    // Not also in the main log; the failure's own line there carries the request's id.
    let failed_id = failed["request_id"].as_str().unwrap();
    let failure = gw.wait_for_log("request failed");
    assert_eq!(failure["span"]["request_id"], failed_id, "{failure}");
    assert!(
        !gw.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "request"),
        "access lines leaked into the main log"
    );
}

//! The audit trail's disk fills up under the running gateway and frees again: requests are
//! refused meanwhile, the trail recovers by itself with its chain intact, and every request
//! the upstream saw has its record.

use super::disk::SmallDisk;
use crate::audit::{audit_section, stop, verify};
use crate::harness::*;
use http::StatusCode;

#[tokio::test]
async fn a_full_audit_disk_refuses_requests_then_recovers_with_the_chain_intact() {
    let ws = Workspace::new();
    let Some(disk) = SmallDisk::mount(&ws.path("audit"), "1m") else {
        return;
    };
    let up = Upstream::start().await;
    let extra = audit_section(&ws);
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, "", &extra)));
    let client = https_client(&ws, None, false);
    for i in 0..5 {
        let reply = get(&client, &gw.url(&format!("/echo/{i}"))).await;
        assert_eq!(reply.status, StatusCode::OK);
    }

    disk.fill();
    // Requests already past the audit check are served and their records held; once the
    // writer has failed, every request is refused.
    let mut refused = 0;
    for i in 0..200 {
        let reply = get(&client, &gw.url(&format!("/echo/full-{i}"))).await;
        match reply.status {
            StatusCode::OK => assert_eq!(refused, 0, "served after a refusal"),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(reply.error_code(), "audit_unavailable");
                refused += 1;
                if refused == 5 {
                    break;
                }
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(refused, 5, "the full disk never refused a request");
    let served_before_recovery = up.requests();
    assert_eq!(
        gw.admin_get("/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    disk.free();
    gw.wait_for_log("audit log writable again");
    assert_eq!(gw.admin_get("/readyz").await.0, StatusCode::OK);
    let reply = get(&client, &gw.url("/echo/after")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(up.requests(), served_before_recovery + 1);
    stop(gw).await;

    // The chain verifies, and holds exactly one `allow` record per request the upstream
    // saw: none served unaudited, none recorded twice.
    let (ok, out) = verify(&ws);
    assert!(ok, "{out}");
    let chain = std::fs::read_to_string(ws.path("audit/gw-test.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = chain
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let allowed = records.iter().filter(|r| r["status"] == 200).count();
    assert_eq!(allowed, up.requests(), "{chain}");
    assert!(records.iter().all(|r| r["status"] == 200), "{chain}");
    let ids: std::collections::HashSet<_> = records.iter().map(|r| &r["request_id"]).collect();
    assert_eq!(ids.len(), records.len(), "a record written twice");
}

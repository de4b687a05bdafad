//! The audit trail through the real gateway: every request recorded, the chain verifiable
//! after shutdown, tampering found, and a failed trail refusing requests.

use crate::harness::*;
use http::StatusCode;
use nix::sys::signal::Signal;
use std::process::Command;

pub(crate) fn audit_section(ws: &Workspace) -> String {
    let out = Command::new(BIN)
        .args(["audit", "keygen", "--out"])
        .arg(ws.path("keys/checkpoint.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    "\n[audit]\ndir = \"audit\"\nreplica = \"gw-test\"\ncheckpoint_sink = \"sink/checkpoints.jsonl\"\ncheckpoint_key_file = \"keys/checkpoint.key\"\ncheckpoint_every = 2\n".to_owned()
}

pub(crate) fn verify(ws: &Workspace) -> (bool, String) {
    let config = ws.path("privgate.toml");
    let run = privgate([
        "audit".as_ref(),
        "verify".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    (run.ok, run.all())
}

pub(crate) async fn stop(mut gw: Gateway) {
    gw.signal(Signal::SIGTERM);
    tokio::task::spawn_blocking(move || {
        let status = gw.child.wait().unwrap();
        assert!(status.success(), "{status}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn every_request_is_recorded_and_the_chain_verifies_until_edited() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let extra = audit_section(&ws);
    let mtls = optional_mtls(&ws);
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, &mtls, &extra)));
    let client = https_client(&ws, Some("certs/client-a"), false);
    for path in [
        "/echo/1?email=alice%40example.com",
        "/echo/2",
        "/echo/3",
        "/buffered/x",
    ] {
        get(&client, &gw.url(path)).await;
    }
    let invalid = http::Request::post(gw.url("/buffered/x"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from("not json")))
        .unwrap();
    assert_eq!(
        send(&client, invalid).await.unwrap().status,
        StatusCode::BAD_REQUEST
    );
    stop(gw).await;

    let (ok, out) = verify(&ws);
    assert!(ok, "{out}");
    assert!(out.contains("ok, 5 records"), "{out}");
    let chain = std::fs::read_to_string(ws.path("audit/gw-test.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = chain
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["route"], "echo");
    assert!(records[0]["principal"]
        .as_str()
        .unwrap()
        .starts_with("cert-sha256:"));
    assert_eq!(records[4]["decision"], "deny");
    assert_eq!(records[4]["status"], 400);
    assert!(
        !chain.contains("alice") && !chain.contains("/echo/1"),
        "paths and queries never reach the audit trail"
    );

    // Edit one record: verify fails and says where.
    let edited = chain.replacen("\"status\":400", "\"status\":200", 1);
    std::fs::write(ws.path("audit/gw-test.jsonl"), edited).unwrap();
    let (ok, out) = verify(&ws);
    assert!(!ok && out.contains("line 5: record edited"), "{out}");
}

#[tokio::test]
async fn a_failed_audit_trail_refuses_requests() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let extra = audit_section(&ws);
    // The chain file is /dev/full: opening works, every write fails with ENOSPC.
    std::fs::create_dir_all(ws.path("audit")).unwrap();
    std::os::unix::fs::symlink("/dev/full", ws.path("audit/gw-test.jsonl")).unwrap();
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, "", &extra)));
    let client = https_client(&ws, None, false);
    assert_eq!(get(&client, &gw.url("/echo")).await.status, StatusCode::OK);
    gw.wait_for(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("audit log write failed"))
    });
    let reply = get(&client, &gw.url("/echo")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error_code(), "audit_unavailable");
    assert_eq!(
        gw.admin_get("/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// Every record of `chain` relabelled as `replica`, re-hashed and re-linked: as consistent
/// as an attacker without the checkpoint key can make it.
fn relabelled(chain: &str, replica: &str) -> String {
    let mut prev = privgate::audit::GENESIS.to_owned();
    chain
        .lines()
        .map(|line| {
            let mut record: privgate::audit::AuditRecord = serde_json::from_str(line).unwrap();
            record.body.replica = replica.into();
            record.body.prev = prev.clone();
            let sealed = record.body.seal();
            prev = sealed.hash.clone();
            serde_json::to_string(&sealed).unwrap() + "\n"
        })
        .collect()
}

#[tokio::test]
async fn verify_trusts_the_configured_replica_and_the_sink_not_the_chain() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let extra = audit_section(&ws);
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, "", &extra)));
    let client = https_client(&ws, None, false);
    for path in ["/echo/1", "/echo/2", "/echo/3"] {
        get(&client, &gw.url(path)).await;
    }
    stop(gw).await;
    let chain_path = ws.path("audit/gw-test.jsonl");
    let genuine = std::fs::read_to_string(&chain_path).unwrap();
    let (ok, out) = verify(&ws);
    assert!(
        ok && out.contains("ok, 3 records of replica `gw-test`"),
        "{out}"
    );

    // (what the attacker leaves in the chain file, what verify must say)
    let half: String = relabelled(&genuine, "gw-other")
        .lines()
        .take(2)
        .map(|l| l.to_owned() + "\n")
        .collect();
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        (
            "emptied",
            Some(String::new()),
            "but the verified chain ends at record 0",
        ),
        ("deleted", None, "the chain file does not exist"),
        (
            "relabelled",
            Some(relabelled(&genuine, "gw-other")),
            "line 1: record of replica `gw-other`",
        ),
        (
            "relabelled and cut",
            Some(half),
            "line 1: record of replica `gw-other`",
        ),
        (
            "relabelled in case",
            Some(relabelled(&genuine, "GW-TEST")),
            "record of replica `GW-TEST`",
        ),
    ];
    for (name, content, expected) in cases {
        match &content {
            Some(text) => std::fs::write(&chain_path, text).unwrap(),
            None => std::fs::remove_file(&chain_path).unwrap(),
        }
        let (ok, out) = verify(&ws);
        assert!(!ok && out.contains(expected), "{name}: {out}");
        assert!(out.contains("checkpoint pins record 3"), "{name}: {out}");
    }
    std::fs::write(&chain_path, &genuine).unwrap();
    assert!(verify(&ws).0);

    // The replica comes from the configuration or the flag: the genuine chain checked as
    // another replica's fails, as does any chain once its sink is gone.
    let config = ws.path("privgate.toml");
    let log = chain_path.to_str().unwrap();
    let run = privgate([
        "audit",
        "verify",
        "--config",
        config.to_str().unwrap(),
        "--replica",
        "gw-other",
        "--log",
        log,
    ]);
    assert!(
        !run.ok && run.all().contains("record of replica `gw-test`"),
        "{}",
        run.all()
    );
    std::fs::remove_file(ws.path("sink/checkpoints.jsonl")).unwrap();
    let (ok, out) = verify(&ws);
    assert!(!ok && out.contains("does not exist"), "{out}");
}

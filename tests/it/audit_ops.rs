//! Audit operations through the real binary: a chain rotated into segments by size while
//! the gateway serves, verified across them; a missing or edited middle segment found;
//! retention (deleting the oldest segments) still verifying; `audit search` by request id
//! and time streaming every segment.

use crate::audit::{audit_section, stop, verify};
use crate::harness::*;
use std::path::PathBuf;

/// The chain's segment files, oldest first.
pub(crate) fn segments(ws: &Workspace, replica: &str) -> Vec<PathBuf> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(ws.path("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let first = match name.strip_prefix(replica)? {
                ".jsonl" => 1,
                rest => rest
                    .strip_prefix('@')?
                    .strip_suffix(".jsonl")?
                    .parse()
                    .ok()?,
            };
            Some((first, p))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// Every record line of the chain, across its segments: whole lines only. A gateway killed
/// mid-write can leave the newest segment ending in part of a batch no caller was told of
/// (its torn tail: `audit verify` reports it apart, the next start cuts it), which is not a
/// record.
pub(crate) fn chain_lines(ws: &Workspace, replica: &str) -> Vec<String> {
    segments(ws, replica)
        .iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let whole = text.rfind('\n').map_or("", |end| &text[..=end]);
            whole.lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

fn search(ws: &Workspace, args: &[&str]) -> CliRun {
    let config = ws.path("privgate.toml");
    let mut all = vec!["audit", "search", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    privgate(all)
}

/// `audit verify` draws no progress when stderr is not a terminal (the output `plain` is
/// unchanged), and a bar over the chain's bytes when `PRIVGATE_PROGRESS=always` forces it.
fn progress_shows_only_when_asked(ws: &Workspace, plain: &str) {
    assert!(!plain.contains("verifying"), "{plain}");
    let config = ws.path("privgate.toml");
    let forced = privgate_with_env(
        ["audit", "verify", "--config", config.to_str().unwrap()],
        &[("PRIVGATE_PROGRESS", "always")],
    );
    let (stdout, stderr) = (&forced.stdout, &forced.stderr);
    assert!(forced.ok, "{stderr}");
    assert!(plain.contains(stdout.trim()), "{stdout} vs {plain}");
    assert!(
        stderr.contains("verifying gw-test [") && stderr.contains(" left)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_rotated_chain_verifies_searches_and_survives_retention() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    // About three records per segment.
    let extra = audit_section(&ws) + "rotate_bytes = 1000\n";
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, "", &extra)));
    let client = https_client(&ws, None, false);
    let mut request_ids = Vec::new();
    for i in 0..18 {
        let reply = get(&client, &gw.url(&format!("/echo/{i}"))).await;
        request_ids.push(reply.headers["x-request-id"].to_str().unwrap().to_owned());
        // Records that queue while the writer is busy go out as one batch, and a segment
        // is sealed between batches: a pause makes each record its own batch.
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    stop(gw).await;

    let files = segments(&ws, "gw-test");
    assert!(files.len() >= 4, "{files:?}");
    let (ok, out) = verify(&ws);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "ok, 18 records of replica `gw-test` in {} segment(s)",
            files.len()
        )),
        "{out}"
    );

    progress_shows_only_when_asked(&ws, &out);

    // Search finds one record by its request id, in whichever segment it sits.
    for id in [&request_ids[0], &request_ids[10], &request_ids[17]] {
        let run = search(&ws, &["--request-id", id]);
        assert!(run.ok, "{}", run.all());
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{}", run.all());
        let record: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(record["request_id"], id.as_str());
        // Printed as written: the line is the chain's own.
        assert!(chain_lines(&ws, "gw-test").contains(&lines[0].to_owned()));
    }
    assert_eq!(search(&ws, &["--request-id", "no-such-request"]).stdout, "");
    // Time windows: all of it since an hour ago, none of it until then, none in the future.
    assert_eq!(search(&ws, &["--since", "1h"]).stdout.lines().count(), 18);
    assert_eq!(search(&ws, &["--until", "1h"]).stdout.lines().count(), 0);
    assert_eq!(
        search(&ws, &["--since", "2999-01-01T00:00:00Z"])
            .stdout
            .lines()
            .count(),
        0
    );
    // The same records as rows: a CSV header, then one line per record, oldest first.
    let csv = search(&ws, &["--since", "1h", "--output", "csv"]);
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "time_ms,replica,seq,request_id,principal,route,method,status,decision"
    );
    assert_eq!(lines.len(), 19, "{}", csv.all());
    assert!(
        lines[1].contains(&format!(",gw-test,1,{},", request_ids[0])),
        "{}",
        lines[1]
    );
    let bad = search(&ws, &["--since", "yesterday-ish"]);
    assert!(
        !bad.ok && bad.all().contains("neither an RFC 3339 time"),
        "{}",
        bad.all()
    );

    // Retention: the two oldest segments deleted, the rest still verifies.
    let originals: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for file in &files[..2] {
        std::fs::remove_file(file).unwrap();
    }
    let (ok, out) = verify(&ws);
    assert!(ok && out.contains("deleted under retention"), "{out}");

    // A middle segment missing, or edited, fails.
    std::fs::remove_file(&files[3]).unwrap();
    let (ok, out) = verify(&ws);
    assert!(!ok && out.contains("a segment missing"), "{out}");
    std::fs::write(
        &files[3],
        originals[3].replacen("\"status\":200", "\"status\":403", 1),
    )
    .unwrap();
    let (ok, out) = verify(&ws);
    assert!(!ok && out.contains("line 1: record edited"), "{out}");
}

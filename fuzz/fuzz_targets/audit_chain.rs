//! The audit chain reader (`privgate audit verify`). The target writes an honest chain of
//! records (their fields from the input) with a checkpoint on its last record, checks that
//! it verifies, then applies the input's edit to the file: the edited chain verifies only
//! if its lines are still exactly the records written (a line ending changed, say). With
//! an odd first byte the rest of the input is the chain file itself: a report, never a
//! panic, and a clean report counts every whole line and reports the bytes after the last
//! newline as a torn batch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privgate::audit::{verify, AuditEvent, AuditKey, RecordBody, GENESIS};
use std::path::PathBuf;
use std::sync::OnceLock;

const REPLICA: &str = "r1";

fn files() -> &'static (PathBuf, PathBuf, AuditKey) {
    static FILES: OnceLock<(PathBuf, PathBuf, AuditKey)> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = privgate::fuzzing::scratch_dir("audit");
        let key = AuditKey::from_bytes(&[7; 32]).expect("key");
        (dir.join("audit.jsonl"), dir.join("checkpoints.jsonl"), key)
    })
}

fuzz_target!(|data: &[u8]| {
    let (log, sink, key) = files();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        std::fs::write(log, rest).expect("write log");
        std::fs::write(sink, b"").expect("write sink");
        // An error (a line that is not UTF-8) fails the check as a report would.
        let Ok(report) = verify(log, sink, REPLICA, key) else {
            return;
        };
        if report.problems.is_empty() {
            // Whole lines are records; what follows the last newline is a torn batch,
            // reported apart and never read as a record.
            let whole = rest
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |at| at + 1);
            let lines = String::from_utf8_lossy(&rest[..whole]).lines().count() as u64;
            assert_eq!(report.records, lines, "a clean report skipped lines");
            assert_eq!(
                report.torn_bytes,
                (rest.len() - whole) as u64,
                "torn bytes miscounted"
            );
        }
        return;
    }
    // Records: one per input line (at most 8), its text as the route; then the edit.
    let (records, edit) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let mut chain = Vec::new();
    let mut prev = GENESIS.to_owned();
    for (i, route) in String::from_utf8_lossy(records).lines().take(8).enumerate() {
        let record = RecordBody {
            replica: REPLICA.into(),
            seq: i as u64 + 1,
            time_ms: 1_700_000_000_000 + i as i64,
            prev: prev.clone(),
            event: AuditEvent {
                route: route.into(),
                status: 200,
                ..Default::default()
            },
        }
        .seal();
        prev.clone_from(&record.hash);
        chain.extend_from_slice(serde_json::to_string(&record).expect("record").as_bytes());
        chain.push(b'\n');
    }
    let count = chain.iter().filter(|b| **b == b'\n').count() as u64;
    let checkpoint = key.checkpoint(REPLICA, count, &prev, 1_700_000_001_000);
    std::fs::write(
        sink,
        serde_json::to_string(&checkpoint).expect("checkpoint") + "\n",
    )
    .expect("write sink");
    std::fs::write(log, &chain).expect("write log");
    if count > 0 {
        let report = verify(log, sink, REPLICA, key).expect("report");
        assert!(
            report.problems.is_empty(),
            "honest chain refused: {:?}",
            report.problems
        );
        assert_eq!(report.records, count);
    }
    // The edit: pairs of (position, byte); a position past the end truncates there.
    let mut edited = chain.clone();
    for pair in edit.chunks(3) {
        let [hi, lo, byte] = pair else { break };
        let at = usize::from(*hi) << 8 | usize::from(*lo);
        match at < edited.len() {
            true => edited[at] = *byte,
            false => edited.truncate(at % (edited.len() + 1)),
        }
    }
    std::fs::write(log, &edited).expect("write log");
    let Ok(report) = verify(log, sink, REPLICA, key) else {
        return;
    };
    if report.problems.is_empty() && count > 0 {
        let written = String::from_utf8_lossy(&chain);
        let read = String::from_utf8_lossy(&edited);
        assert!(
            written.lines().eq(read.lines()),
            "an edited chain verified clean"
        );
    }
});

//! Checking a chain against its checkpoints.
//!
//! Trust comes from outside the chain: the replica whose chain it is comes from the caller
//! (configuration or `--replica`), never from the records; the checkpoints come from the
//! sink, MAC'd under a key the chain's writer does not need to hold. So the rules are:
//!
//! - every record names the expected replica (a relabelled chain fails on its first line);
//! - the chain and the sink both exist (the gateway creates both when it opens the log);
//! - every valid checkpoint the sink holds for that replica is reached by the verified
//!   chain, with the same hash: an emptied, deleted, truncated, relabelled or re-chained
//!   log fails as soon as one checkpoint pins a record of it.
//!
//! What stays possible for whoever can write the chain but not the sink is in SECURITY.md
//! ("The audit trail").

use super::checkpoint::{AuditKey, Checkpoint};
use super::record::{AuditRecord, GENESIS};
use super::AuditError;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records read and verified (the chain's length up to the first problem).
    pub records: u64,
    /// Valid checkpoints of this replica in the sink.
    pub checkpoints: usize,
    /// Highest sequence number pinned by a valid checkpoint of this replica.
    pub last_checkpoint_seq: u64,
    /// Every problem, each saying where; empty when the chain is intact.
    pub problems: Vec<String>,
}

/// Verifies `replica`'s chain in `log` against that replica's checkpoints in `sink`.
pub fn verify(
    log: &Path,
    sink: &Path,
    replica: &str,
    key: &AuditKey,
) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport::default();
    let checkpoints: Vec<Checkpoint> = read_checkpoints(sink, key, &mut report)?
        .into_iter()
        .filter(|c| c.replica == replica)
        .collect();
    report.checkpoints = checkpoints.len();
    report.last_checkpoint_seq = checkpoints.iter().map(|c| c.seq).max().unwrap_or(0);
    let pinned = |seq| checkpoints.iter().any(|c: &Checkpoint| c.seq == seq);
    let hashes = read_chain(log, replica, pinned, &mut report)?;
    for c in &checkpoints {
        match hashes.get(&c.seq) {
            Some(hash) if *hash == c.hash => {}
            Some(_) => report.problems.push(format!(
                "record {} differs from its checkpoint (the chain was rewritten)",
                c.seq
            )),
            None => report.problems.push(format!(
                "a checkpoint pins record {} of replica `{replica}` but the verified chain ends at \
                 record {} (log emptied, truncated, replaced, relabelled or broken before it)",
                c.seq, report.records
            )),
        }
    }
    Ok(report)
}

/// Walks the chain up to its first problem; returns the hashes of the records `pinned`
/// names (the ones checkpoints must be compared with).
fn read_chain(
    log: &Path,
    replica: &str,
    pinned: impl Fn(u64) -> bool,
    report: &mut VerifyReport,
) -> Result<HashMap<u64, String>, AuditError> {
    let mut hashes = HashMap::new();
    let file = match std::fs::File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report
                .problems
                .push("the chain file does not exist (deleted, or never written)".to_owned());
            return Ok(hashes);
        }
        Err(e) => return Err(AuditError::io(log, e)),
    };
    let mut prev = GENESIS.to_owned();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let n = index + 1;
        let line = line.map_err(|e| AuditError::io(log, e))?;
        let expected_seq = report.records + 1;
        let Ok(record) = serde_json::from_str::<AuditRecord>(&line) else {
            report
                .problems
                .push(format!("line {n}: not an audit record (edited)"));
            break;
        };
        let body = &record.body;
        let problem = if serde_json::to_string(&record).ok().as_deref() != Some(line.as_str()) {
            Some("record edited (not as written)".to_owned())
        } else if body.hash() != record.hash {
            Some("record edited (hash does not match)".to_owned())
        } else if body.replica != replica {
            Some(format!(
                "record of replica `{}` where the chain of `{replica}` was expected \
                 (relabelled, or another replica's records)",
                body.replica
            ))
        } else if body.seq != expected_seq {
            Some(format!("sequence {} where {expected_seq} was expected (records deleted, inserted or reordered)", body.seq))
        } else if body.prev != prev {
            Some(
                "does not follow the previous record (records deleted, inserted or reordered)"
                    .to_owned(),
            )
        } else {
            None
        };
        if let Some(problem) = problem {
            report.problems.push(format!("line {n}: {problem}"));
            break;
        }
        prev.clone_from(&record.hash);
        report.records = body.seq;
        if pinned(body.seq) {
            hashes.insert(body.seq, record.hash);
        }
    }
    Ok(hashes)
}

fn read_checkpoints(
    sink: &Path,
    key: &AuditKey,
    report: &mut VerifyReport,
) -> Result<Vec<Checkpoint>, AuditError> {
    let file = match std::fs::File::open(sink) {
        Ok(f) => f,
        // The gateway creates the sink when it opens the log: a missing sink is not this
        // trail's sink (moved, unmounted, deleted), and nothing can be checked against it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.problems.push(format!(
                "checkpoint sink {} does not exist (unmounted, moved or deleted)",
                sink.display()
            ));
            return Ok(Vec::new());
        }
        Err(e) => return Err(AuditError::io(sink, e)),
    };
    let mut valid = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| AuditError::io(sink, e))?;
        match serde_json::from_str::<Checkpoint>(&line) {
            Ok(c) if key.verifies(&c) => valid.push(c),
            _ => report.problems.push(format!(
                "checkpoint line {}: MAC invalid (forged, edited or another key)",
                index + 1
            )),
        }
    }
    Ok(valid)
}

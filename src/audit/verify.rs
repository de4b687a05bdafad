//! Checking a chain and its checkpoints.

use super::checkpoint::{AuditKey, Checkpoint};
use super::record::{AuditRecord, GENESIS};
use super::AuditError;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records read.
    pub records: u64,
    /// Valid checkpoints for this chain.
    pub checkpoints: usize,
    /// Highest sequence number pinned by a valid checkpoint.
    pub last_checkpoint_seq: u64,
    /// Every problem, each saying where; empty when the chain is intact.
    pub problems: Vec<String>,
}

/// Verifies the chain in `log` against the checkpoints in `sink`.
pub fn verify(log: &Path, sink: &Path, key: &AuditKey) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport::default();
    let checkpoints = read_checkpoints(sink, key, &mut report)?;
    let file = std::fs::File::open(log).map_err(|e| AuditError::io(log, e))?;
    let mut replica: Option<String> = None;
    let mut prev = GENESIS.to_owned();
    let mut hashes = HashMap::new();
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
        } else if replica.as_ref().is_some_and(|r| *r != body.replica) {
            Some(format!(
                "record of replica `{}` inside another replica's chain",
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
        replica.get_or_insert_with(|| body.replica.clone());
        prev.clone_from(&record.hash);
        report.records = body.seq;
        if checkpoints.iter().any(|c| c.seq == body.seq) {
            hashes.insert(body.seq, record.hash);
        }
    }
    if let Some(replica) = &replica {
        for c in checkpoints.iter().filter(|c| &c.replica == replica) {
            report.checkpoints += 1;
            report.last_checkpoint_seq = report.last_checkpoint_seq.max(c.seq);
            match hashes.get(&c.seq) {
                Some(hash) if *hash == c.hash => {}
                Some(_) => report.problems.push(format!(
                    "record {} differs from its checkpoint (the chain was rewritten)",
                    c.seq
                )),
                None if c.seq > report.records && report.problems.is_empty() => {
                    report.problems.push(format!(
                        "log truncated: a checkpoint pins record {} but the log ends at record {}",
                        c.seq, report.records
                    ))
                }
                None => {}
            }
        }
    }
    Ok(report)
}

fn read_checkpoints(
    sink: &Path,
    key: &AuditKey,
    report: &mut VerifyReport,
) -> Result<Vec<Checkpoint>, AuditError> {
    let file = match std::fs::File::open(sink) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
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

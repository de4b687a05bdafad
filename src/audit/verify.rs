//! Checking a chain against its checkpoints.
//!
//! Trust comes from outside the chain: the replica whose chain it is comes from the caller
//! (configuration or `--replica`), never from the records; the checkpoints come from the
//! sink, MAC'd under a key the chain's writer does not need to hold. So the rules are:
//!
//! - every record names the expected replica (a relabelled chain fails on its first line);
//! - the segments join up: each starts where its name says, right after the record the
//!   one before it ends with (a missing, emptied or edited middle segment fails);
//! - a chain whose oldest segments retention deleted starts at a record whose predecessor a
//!   valid checkpoint pins (rotation writes one as it seals each segment);
//! - the chain and the sink both exist (the gateway creates both when it opens the log);
//! - every valid checkpoint the sink holds for that replica is reached by the verified
//!   chain, with the same hash: an emptied, deleted, truncated, relabelled or re-chained
//!   log fails as soon as one checkpoint pins a record of it;
//! - bytes after the newest segment's last newline are a batch a kill cut short
//!   ([`segments::TornTail`]), reported apart and not read as records: taking them off is
//!   no more than truncating the chain, which the checkpoints are there to catch.
//!
//! What stays possible for whoever can write the chain but not the sink is in SECURITY.md
//! ("The audit trail").

use super::checkpoint::{AuditKey, Checkpoint};
use super::record::{AuditRecord, RecordBody, GENESIS};
use super::segments::{self, Segment};
use super::AuditError;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::path::Path;

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Sequence number of the last record read and verified (the chain's length up to the
    /// first problem).
    pub records: u64,
    /// The first record present: 1, or the record after those retention deleted (0 when
    /// the chain holds none).
    pub first_record: u64,
    /// Segment files the chain spans.
    pub segments: usize,
    /// Valid checkpoints of this replica in the sink.
    pub checkpoints: usize,
    /// Highest sequence number pinned by a valid checkpoint of this replica.
    pub last_checkpoint_seq: u64,
    /// Bytes after the newest segment's last whole record: a batch a crash left
    /// half-written (none of it acknowledged; the gateway cuts it off when it next opens
    /// the chain). Not a problem: the records before it verify as a chain without it.
    pub torn_bytes: u64,
    /// Every problem, each saying where; empty when the chain is intact.
    pub problems: Vec<String>,
}

/// Verifies `replica`'s chain, whose first segment is `log` (later ones beside it), against
/// that replica's checkpoints in `sink`.
pub fn verify(
    log: &Path,
    sink: &Path,
    replica: &str,
    key: &AuditKey,
) -> Result<VerifyReport, AuditError> {
    verify_reporting(log, sink, replica, key, |_| {}, |_| {})
}

/// [`verify`], telling `total` the bytes of the chain's segments before reading them and
/// `read` the bytes of each line as it is checked (for a progress bar).
pub fn verify_reporting(
    log: &Path,
    sink: &Path,
    replica: &str,
    key: &AuditKey,
    total: impl FnOnce(u64),
    read: impl FnMut(u64),
) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport::default();
    let checkpoints: Vec<Checkpoint> = read_checkpoints(sink, key, &mut report)?
        .into_iter()
        .filter(|c| c.replica == replica)
        .collect();
    report.checkpoints = checkpoints.len();
    report.last_checkpoint_seq = checkpoints.iter().map(|c| c.seq).max().unwrap_or(0);
    let segments = segments::of(log)?;
    report.segments = segments.len();
    total(
        segments
            .iter()
            .filter_map(|s| std::fs::metadata(&s.path).ok())
            .map(|m| m.len())
            .sum(),
    );
    let hashes = read_chain(&segments, replica, &checkpoints, &mut report, read)?;
    if let Some(newest) = segments.last() {
        report.torn_bytes = segments::torn_tail(&newest.path)?.map_or(0, |t| t.torn);
    }
    for c in &checkpoints {
        if c.seq < report.first_record {
            // Pins a record retention deleted: the anchor of the first one kept vouches
            // that what is kept continues it.
            continue;
        }
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

/// Verifies the chain of every replica the trail directory `dir` holds a chain of or the
/// sink holds a valid checkpoint of, each as [`verify`] does with the replica named by its
/// file (`<replica>.jsonl`) or checkpoint: a replica whose chain is gone still shows, failed.
pub fn verify_every_replica(
    dir: &Path,
    sink: &Path,
    key: &AuditKey,
) -> Result<Vec<(String, VerifyReport)>, AuditError> {
    let mut replicas: Vec<String> = segments::every_chain(dir)?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut ignored = VerifyReport::default();
    for c in read_checkpoints(sink, key, &mut ignored)? {
        if !replicas.contains(&c.replica) {
            replicas.push(c.replica);
        }
    }
    replicas.sort();
    replicas
        .into_iter()
        .map(|replica| {
            let log = dir.join(format!("{replica}.jsonl"));
            let report = verify(&log, sink, &replica, key)?;
            Ok((replica, report))
        })
        .collect()
}

/// Walks the chain across its segments up to its first problem; returns the hashes of the
/// records checkpoints pin (the ones they must be compared with).
fn read_chain(
    segments: &[Segment],
    replica: &str,
    checkpoints: &[Checkpoint],
    report: &mut VerifyReport,
    mut read: impl FnMut(u64),
) -> Result<HashMap<u64, String>, AuditError> {
    let mut hashes = HashMap::new();
    if segments.is_empty() {
        report
            .problems
            .push("the chain file does not exist (deleted, or never written)".to_owned());
        return Ok(hashes);
    }
    let pinned = |seq: u64| checkpoints.iter().find(|c| c.seq == seq);
    // The hash the next record must name as `prev`: unknown until the first record present,
    // which starts the chain or continues a record a checkpoint pins.
    let mut prev: Option<String> = None;
    let mut first_in_segment = true;
    let mut current = None;
    segments::for_each_line(segments, |segment, n, line| {
        // The line and its newline.
        read(line.len() as u64 + 1);
        if current != Some(segment.first_seq) {
            current = Some(segment.first_seq);
            first_in_segment = true;
        }
        let at = |problem: String| format!("{}: line {n}: {problem}", segment.path.display());
        let Ok(record) = serde_json::from_str::<AuditRecord>(line) else {
            report
                .problems
                .push(at("not an audit record (edited)".to_owned()));
            return ControlFlow::Break(());
        };
        let body = &record.body;
        let expected_seq = report.records + 1;
        let problem = if serde_json::to_string(&record).ok().as_deref() != Some(line) {
            Some("record edited (not as written)".to_owned())
        } else if body.hash() != record.hash {
            Some("record edited (hash does not match)".to_owned())
        } else if body.replica != replica {
            Some(format!(
                "record of replica `{}` where the chain of `{replica}` was expected \
                 (relabelled, or another replica's records)",
                body.replica
            ))
        } else if first_in_segment && body.seq != segment.first_seq {
            Some(format!(
                "the segment's name says it starts at record {} but it starts at record {} \
                 (renamed, or records deleted or inserted)",
                segment.first_seq, body.seq
            ))
        } else if let Some(prev) = &prev {
            if body.seq != expected_seq {
                Some(format!("sequence {} where {expected_seq} was expected (records deleted, inserted or reordered, or a segment missing)", body.seq))
            } else if body.prev != *prev {
                Some(
                    "does not follow the previous record (records deleted, inserted or reordered)"
                        .to_owned(),
                )
            } else {
                None
            }
        } else {
            first_present(body, pinned)
        };
        first_in_segment = false;
        if let Some(problem) = problem {
            report.problems.push(at(problem));
            return ControlFlow::Break(());
        }
        if prev.is_none() {
            report.first_record = body.seq;
        }
        prev = Some(record.hash.clone());
        report.records = body.seq;
        if pinned(body.seq).is_some() {
            hashes.insert(body.seq, record.hash);
        }
        ControlFlow::Continue(())
    })?;
    Ok(hashes)
}

/// What is wrong with the first record present, if anything: it starts the chain, or it
/// follows records retention deleted, which a checkpoint must then anchor (rotation pins
/// the last record of every segment it seals, so whole segments may go, oldest first).
fn first_present<'a>(
    body: &RecordBody,
    pinned: impl Fn(u64) -> Option<&'a Checkpoint>,
) -> Option<String> {
    if body.seq == 1 {
        return (body.prev != GENESIS).then(|| "the first record does not start a chain".into());
    }
    match pinned(body.seq - 1) {
        Some(c) if c.hash == body.prev => None,
        _ => Some(format!(
            "the chain starts at record {} and no checkpoint pins record {} with the hash it \
             follows (records deleted other than whole segments under retention)",
            body.seq,
            body.seq - 1
        )),
    }
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

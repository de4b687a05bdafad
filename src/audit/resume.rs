//! Where a writer continues a chain: after the last record of its newest non-empty
//! segment, checked whole, matching its hash and of the writer's replica, in the newest
//! segment (which a rotation killed after creating it leaves empty). A batch a kill left
//! half-written at the end of the newest segment ([`TornTail`]) is cut off first: none of it
//! was acknowledged, and the chain continues from the last whole record.

use super::record::{AuditRecord, GENESIS};
use super::segments::TornTail;
use super::AuditError;
use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The longest record line the resume scan reads back from the end of a file.
const TAIL_BYTES: u64 = 64 * 1024;

/// Where the writer continues a chain.
pub(super) struct Resumed {
    /// The newest segment: records go there.
    pub(super) segment: PathBuf,
    /// Its length.
    pub(super) written: u64,
    /// When its first record was taken, if it holds any.
    pub(super) segment_started_ms: Option<i64>,
    /// The last record of the chain.
    pub(super) seq: u64,
    pub(super) prev: String,
    /// What was cut off the newest segment's end, if a write was torn there.
    pub(super) cut: Option<TornTail>,
}

/// Where to continue the chain whose first segment is `base`: after the last record of the
/// newest segment holding any, in the newest segment (a rotation killed after creating a
/// segment leaves it empty; the chain continues there).
pub(super) fn resume(base: &Path, replica: &str) -> Result<Resumed, AuditError> {
    let segments = super::segments::of(base)?;
    let Some(newest) = segments.last() else {
        return Ok(Resumed {
            segment: base.to_path_buf(),
            written: 0,
            segment_started_ms: None,
            seq: 0,
            prev: GENESIS.into(),
            cut: None,
        });
    };
    let cut = super::segments::torn_tail(&newest.path)?;
    if let Some(torn) = cut {
        cut_back(&newest.path, torn.whole)?;
    }
    let mut last = None;
    for segment in segments.iter().rev() {
        if let Some(tail) = read_tail(&segment.path, replica)? {
            last = Some((segment, tail));
            break;
        }
    }
    let corrupt = |why: String| {
        AuditError::Corrupt(format!(
            "{}: {why}; run `privgate audit verify`",
            newest.path.display()
        ))
    };
    let (seq, prev, started) = match last {
        // The newest segment holds records: continue it.
        Some((segment, tail)) if segment.first_seq == newest.first_seq => {
            (tail.last.body.seq, tail.last.hash, Some(tail.first_time_ms))
        }
        // An empty newest segment continues the last record before it.
        Some((_, tail)) if tail.last.body.seq + 1 == newest.first_seq => {
            (tail.last.body.seq, tail.last.hash, None)
        }
        Some((_, tail)) => {
            return Err(corrupt(format!(
                "empty segment for record {} after a segment ending at record {}",
                newest.first_seq, tail.last.body.seq
            )))
        }
        None if newest.first_seq <= 1 => (0, GENESIS.into(), None),
        None => return Err(corrupt("no segment holds the record it continues".into())),
    };
    let written = std::fs::metadata(&newest.path)
        .map_err(|e| AuditError::io(&newest.path, e))?
        .len();
    Ok(Resumed {
        segment: newest.path.clone(),
        written,
        segment_started_ms: started,
        seq,
        prev,
        cut,
    })
}

/// Cuts the segment at `path` back to `len` bytes, durably: the next write must not land
/// after bytes a crash left.
fn cut_back(path: &Path, len: u64) -> Result<(), AuditError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| AuditError::io(path, e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| AuditError::io(path, e))
}

/// The last record of a segment, and when its first was taken.
struct Tail {
    last: AuditRecord,
    first_time_ms: i64,
}

/// The last record of a segment (`None` when it is empty), checked as the writer must find
/// it to continue: whole, matching its hash, of this replica.
fn read_tail(path: &Path, replica: &str) -> Result<Option<Tail>, AuditError> {
    let mut file = File::open(path).map_err(|e| AuditError::io(path, e))?;
    let len = file.metadata().map_err(|e| AuditError::io(path, e))?.len();
    if len == 0 {
        return Ok(None);
    }
    let corrupt = |why: &str| {
        AuditError::Corrupt(format!(
            "{}: {why}; run `privgate audit verify`",
            path.display()
        ))
    };
    let mut first = String::new();
    std::io::BufReader::new(&mut file)
        .take(TAIL_BYTES)
        .read_line(&mut first)
        .map_err(|e| AuditError::io(path, e))?;
    let first_time_ms = serde_json::from_str::<AuditRecord>(first.trim_end())
        .map(|r| r.body.time_ms)
        .map_err(|_| corrupt("first line is not an audit record"))?;
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .map_err(|e| AuditError::io(path, e))?;
    let mut tail = String::new();
    file.read_to_string(&mut tail)
        .map_err(|e| AuditError::io(path, e))?;
    if !tail.ends_with('\n') {
        return Err(corrupt("last record is incomplete"));
    }
    let last = tail
        .trim_end_matches('\n')
        .rsplit('\n')
        .next()
        .unwrap_or("");
    let record: AuditRecord =
        serde_json::from_str(last).map_err(|_| corrupt("last line is not an audit record"))?;
    if record.body.hash() != record.hash {
        return Err(corrupt("last record does not match its hash"));
    }
    if record.body.replica != replica {
        return Err(corrupt(&format!(
            "written by replica `{}`, not `{replica}`",
            record.body.replica
        )));
    }
    Ok(Some(Tail {
        last: record,
        first_time_ms,
    }))
}

//! The audit trail: an append-only, hash-chained record of every request's decision, one
//! chain per replica, pinned by MAC'd checkpoints in a separate sink.
//!
//! Records say who did what to which route, why, and which field classes were revealed in
//! clear; never a field value, token or secret. `verify` checks the chain of the replica
//! its caller names (never one named inside the chain) and finds any edited, deleted,
//! inserted, reordered or relabelled record, a rewritten chain, and any chain that does not
//! reach every checkpoint of that replica in the sink (emptied, deleted, replaced,
//! truncated); SECURITY.md lists what it cannot find.
//!
//! A chain is one or more segment files (`segments`): rotation seals one and continues the
//! chain in the next, and retention may delete whole segments, oldest first.

mod checkpoint;
mod log;
mod record;
mod resume;
mod search;
mod segments;
mod verify;

pub use checkpoint::{subject_key_pseudonym, AuditKey, Checkpoint, MIN_KEY_BYTES};
pub use log::{AuditLog, AuditSettings, Rotation};
pub use record::{hex, AuditEvent, AuditRecord, PrivacySpend, RecordBody, GENESIS};
pub use search::{parse_time, search, search_latest, RecordFilter, SubjectPseudonyms};
pub use verify::{verify, verify_every_replica, verify_reporting, VerifyReport};

/// Why the audit trail cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// A read or write failed (disk full, permissions, ...).
    #[error("audit I/O: {0}")]
    Io(String),
    /// The file does not hold a valid chain where the writer must resume.
    #[error("audit log corrupt: {0}")]
    Corrupt(String),
    /// An earlier write failed; the log takes no more records.
    #[error("audit log failed earlier and takes no more records")]
    Failed,
}

impl AuditError {
    fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        AuditError::Io(format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests;

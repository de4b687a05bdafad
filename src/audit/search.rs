//! Reading the trail back: records by request id, time, route, principal and decision, and
//! every access to one data subject. Both stream every replica's chain, segment by segment,
//! one line in memory at a time, so a trail of any size is read in constant memory (a
//! bounded search keeps only its last matches). `privgate audit search` / `who-saw` and the
//! web console's Decisions and Audit pages read the trail only through here.

use super::checkpoint::{subject_key_pseudonym, AuditKey};
use super::record::AuditRecord;
use super::segments;
use super::AuditError;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which records a search returns: every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Only the record of this request id.
    pub request_id: Option<String>,
    /// Only records at or after this Unix time (ms).
    pub since: Option<i64>,
    /// Only records before this Unix time (ms).
    pub until: Option<i64>,
    /// Only this replica's chain.
    pub replica: Option<String>,
    /// Only this route.
    pub route: Option<String>,
    /// Only this principal (`User:alice`, as records name it).
    pub principal: Option<String>,
    /// Only `allow` or only `deny`.
    pub decision: Option<String>,
}

impl RecordFilter {
    /// Whether `record` passes every filter given.
    pub fn matches(&self, record: &AuditRecord) -> bool {
        let (b, e) = (&record.body, &record.body.event);
        let same = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
        same(&self.request_id, &e.request_id)
            && same(&self.replica, &b.replica)
            && same(&self.route, &e.route)
            && same(&self.principal, &e.principal)
            && same(&self.decision, &e.decision)
            && self.since.is_none_or(|t| b.time_ms >= t)
            && self.until.is_none_or(|t| b.time_ms < t)
    }

    /// Whether a line could hold a matching record without parsing it: the request id is
    /// written as given, so a line without it cannot match.
    fn may_match(&self, line: &str) -> bool {
        self.request_id
            .as_ref()
            .is_none_or(|id| line.contains(id.as_str()))
    }
}

/// Unix ms of an RFC 3339 time, or of now less a span.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let at = match humantime::parse_rfc3339_weak(text) {
        Ok(at) => at,
        Err(_) => {
            let ago: Duration = humantime::parse_duration(text).map_err(|_| {
                format!("`{text}` is neither an RFC 3339 time (2026-12-05T09:00:00Z) nor a span ago (2h)")
            })?;
            SystemTime::now()
                .checked_sub(ago)
                .ok_or_else(|| format!("`{text}` reaches before 1970"))?
        }
    };
    let ms = at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("`{text}` is before 1970"))?
        .as_millis();
    i64::try_from(ms).map_err(|_| format!("`{text}` is too far ahead"))
}

/// Calls `each` with every record of every chain in `dir` that `filter` matches, oldest
/// first within each replica.
pub fn search(
    dir: &Path,
    filter: &RecordFilter,
    mut each: impl FnMut(&AuditRecord),
) -> Result<(), AuditError> {
    each_record(
        dir,
        filter.replica.as_deref(),
        |line| filter.may_match(line),
        |record| {
            if filter.matches(record) {
                each(record);
            }
        },
    )
}

/// The last `limit` records `filter` matches (newest first), and how many matched in all.
pub fn search_latest(
    dir: &Path,
    filter: &RecordFilter,
    limit: usize,
) -> Result<(Vec<AuditRecord>, u64), AuditError> {
    let mut latest = Latest::new(limit);
    search(dir, filter, |record| latest.add(record))?;
    Ok(latest.newest_first())
}

/// Keeps the `limit` newest records it is given (by time, then replica and sequence), in
/// a heap of that size: a bounded page of a streamed trail whose chains are read one after
/// another. Counts them all.
struct Latest {
    kept: BinaryHeap<Reverse<Newest>>,
    limit: usize,
    seen: u64,
}

/// A record ordered by when it was written.
struct Newest(AuditRecord);

impl Newest {
    fn key(&self) -> (i64, &str, u64) {
        let b = &self.0.body;
        (b.time_ms, b.replica.as_str(), b.seq)
    }
}

impl PartialEq for Newest {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Newest {}

impl PartialOrd for Newest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Newest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl Latest {
    fn new(limit: usize) -> Self {
        Self {
            kept: BinaryHeap::with_capacity(limit.min(1024) + 1),
            limit,
            seen: 0,
        }
    }

    fn add(&mut self, record: &AuditRecord) {
        self.seen += 1;
        if self.limit == 0 {
            return;
        }
        self.kept.push(Reverse(Newest(record.clone())));
        if self.kept.len() > self.limit {
            // The oldest kept goes.
            self.kept.pop();
        }
    }

    /// Newest first, and the count of all.
    fn newest_first(self) -> (Vec<AuditRecord>, u64) {
        let mut latest: Vec<Newest> = self.kept.into_iter().map(|Reverse(n)| n).collect();
        latest.sort_by(|a, b| b.cmp(a));
        (latest.into_iter().map(|n| n.0).collect(), self.seen)
    }
}

/// The pseudonyms a data subject's records carry: under the audit pseudonym key (refused
/// requests) and under the subject's own keyring key (allowed requests), which a shred
/// makes unrecoverable.
#[derive(Debug, Clone, Default)]
pub struct SubjectPseudonyms {
    pseudonyms: Vec<String>,
    /// The subject's keys were shredded: what was shown to callers can no longer be tied
    /// to them (only refused requests are found).
    pub shredded: bool,
}

impl SubjectPseudonyms {
    /// Computes them as the gateway does when it records a request on `subject`.
    pub async fn of(
        subject: &str,
        audit_key: Option<&AuditKey>,
        keyring: Option<&crate::keys::Keyring>,
    ) -> Result<Self, crate::keys::KeyError> {
        let mut found = Self::default();
        if let Some(key) = audit_key {
            found.pseudonyms.push(key.pseudonym(subject));
        }
        if let Some(keyring) = keyring {
            match keyring
                .subject_key(subject, crate::keys::KeyKind::Hmac)
                .await
            {
                Ok(key) => found.pseudonyms.push(subject_key_pseudonym(&key, subject)),
                Err(crate::keys::KeyError::Shredded) => found.shredded = true,
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// Whether records can name the subject at all (some key made a pseudonym).
    pub fn any(&self) -> bool {
        !self.pseudonyms.is_empty()
    }

    /// The last `limit` records on this subject (newest first) and how many there are.
    pub fn latest_accesses(
        &self,
        dir: &Path,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, u64), AuditError> {
        let mut latest = Latest::new(limit);
        self.accesses(dir, |record| latest.add(record))?;
        Ok(latest.newest_first())
    }

    /// Calls `each` with every record of every chain in `dir` on this subject.
    pub fn accesses(
        &self,
        dir: &Path,
        mut each: impl FnMut(&AuditRecord),
    ) -> Result<(), AuditError> {
        // A line that names none of the pseudonyms cannot be one of the subject's records:
        // only the few that do are parsed.
        each_record(
            dir,
            None,
            |line| self.pseudonyms.iter().any(|p| line.contains(p.as_str())),
            |record| {
                let named = record.body.event.subject_pseudonym.as_ref();
                if named.is_some_and(|p| self.pseudonyms.contains(p)) {
                    each(record);
                }
            },
        )
    }
}

/// Calls `each` with every record of every chain in `dir` (or only `replica`'s) whose line
/// passes `quick` and parses; lines that do not parse are `verify`'s to report.
fn each_record(
    dir: &Path,
    replica: Option<&str>,
    quick: impl Fn(&str) -> bool,
    mut each: impl FnMut(&AuditRecord),
) -> Result<(), AuditError> {
    for (name, chain) in segments::every_chain(dir)? {
        if replica.is_some_and(|r| r != name) {
            continue;
        }
        segments::for_each_line(&chain, |_, _, line| {
            if quick(line) {
                if let Ok(record) = serde_json::from_str::<AuditRecord>(line) {
                    each(&record);
                }
            }
            std::ops::ControlFlow::Continue(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, RecordBody, GENESIS};

    /// Writes `replica`'s chain of records `(time_ms, route, principal, decision)`.
    fn chain(dir: &Path, replica: &str, records: &[(i64, &str, &str, &str)]) {
        let mut text = String::new();
        let mut prev = GENESIS.to_owned();
        for (i, (time_ms, route, principal, decision)) in records.iter().enumerate() {
            let record = RecordBody {
                replica: replica.into(),
                seq: i as u64 + 1,
                time_ms: *time_ms,
                prev: prev.clone(),
                event: AuditEvent {
                    request_id: format!("{replica}-{i}"),
                    route: (*route).into(),
                    principal: (*principal).into(),
                    decision: (*decision).into(),
                    ..Default::default()
                },
            }
            .seal();
            prev.clone_from(&record.hash);
            text.push_str(&serde_json::to_string(&record).unwrap());
            text.push('\n');
        }
        std::fs::write(dir.join(format!("{replica}.jsonl")), text).unwrap();
    }

    #[test]
    fn filters_match_and_the_latest_are_kept_newest_first_across_replicas() {
        let dir = tempfile::tempdir().unwrap();
        chain(
            dir.path(),
            "a",
            &[
                (10, "accounts", "User:x", "allow"),
                (30, "accounts", "User:y", "deny"),
                (50, "console", "User:x", "deny"),
            ],
        );
        chain(
            dir.path(),
            "b",
            &[
                (20, "accounts", "User:x", "deny"),
                (40, "accounts", "User:x", "deny"),
            ],
        );
        let ids = |filter: &RecordFilter, limit| -> (Vec<String>, u64) {
            let (records, total) = search_latest(dir.path(), filter, limit).unwrap();
            let ids = records
                .into_iter()
                .map(|r| r.body.event.request_id)
                .collect();
            (ids, total)
        };
        let denied_accounts = RecordFilter {
            route: Some("accounts".into()),
            decision: Some("deny".into()),
            ..RecordFilter::default()
        };
        assert_eq!(
            ids(&denied_accounts, 10),
            (vec!["b-1".into(), "a-1".into(), "b-0".into()], 3)
        );
        // Bounded: the two newest across both chains, the count still whole.
        assert_eq!(
            ids(&denied_accounts, 2),
            (vec!["b-1".into(), "a-1".into()], 3)
        );
        let x_since = RecordFilter {
            principal: Some("User:x".into()),
            since: Some(20),
            until: Some(50),
            ..RecordFilter::default()
        };
        assert_eq!(ids(&x_since, 10), (vec!["b-1".into(), "b-0".into()], 2));
        let one = RecordFilter {
            request_id: Some("a-2".into()),
            ..RecordFilter::default()
        };
        assert_eq!(ids(&one, 10), (vec!["a-2".into()], 1));
        let replica = RecordFilter {
            replica: Some("b".into()),
            ..RecordFilter::default()
        };
        assert_eq!(ids(&replica, 10).1, 2);
    }
}

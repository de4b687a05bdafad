//! Reading the trail back: records by request id, time, route, principal and decision, and
//! every access to one data subject. Both stream every replica's chain, segment by segment,
//! one line in memory at a time, so a trail of any size is read in constant memory (a
//! bounded search keeps only its last matches). `privgate audit search` / `who-saw` and the
//! web console's Decisions and Audit pages read the trail only through here.

use super::checkpoint::{subject_key_pseudonym, AuditKey};
use super::record::AuditRecord;
use super::segments;
use super::AuditError;
use std::collections::VecDeque;
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
    let mut kept = VecDeque::with_capacity(limit.min(1024));
    let mut matched = 0u64;
    search(dir, filter, |record| {
        matched += 1;
        if kept.len() == limit {
            kept.pop_front();
        }
        if limit > 0 {
            kept.push_back(record.clone());
        }
    })?;
    let mut latest: Vec<AuditRecord> = kept.into();
    // Chains are read one replica after another: order by time across them.
    latest.sort_by_key(|r| std::cmp::Reverse((r.body.time_ms, r.body.seq)));
    Ok((latest, matched))
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

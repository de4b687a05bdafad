//! Reading the trail: who saw a data subject, and records by request id and time. Both
//! stream every replica's chain, segment by segment, one line in memory at a time, and
//! print each match as it is found (`--output table` alone holds the matches, for its
//! column widths), so a trail of any size is read in constant memory.

use super::super::output::{Listing, Output};
use crate::audit::{self, AuditKey, AuditRecord};
use crate::config;
use anyhow::Context;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which records `privgate audit search` prints (every filter given must match).
#[derive(clap::Args)]
pub(super) struct Filter {
    /// Only the record of this request id (as returned to the client).
    #[arg(long)]
    request_id: Option<String>,
    /// Only records at or after this time: RFC 3339 (`2026-12-05T09:00:00Z`) or a span ago
    /// (`2h`, `7days`).
    #[arg(long, value_parser = parse_time)]
    since: Option<i64>,
    /// Only records before this time (same forms as `--since`).
    #[arg(long, value_parser = parse_time)]
    until: Option<i64>,
    /// Only this replica's chain.
    #[arg(long)]
    replica: Option<String>,
}

/// Unix ms of an RFC 3339 time, or of now less a span.
fn parse_time(text: &str) -> Result<i64, String> {
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

impl Filter {
    fn matches(&self, record: &AuditRecord) -> bool {
        let b = &record.body;
        self.request_id
            .as_ref()
            .is_none_or(|id| *id == b.event.request_id)
            && self.since.is_none_or(|t| b.time_ms >= t)
            && self.until.is_none_or(|t| b.time_ms < t)
    }
}

pub(super) fn search(config: &Path, filter: &Filter, output: Output) -> anyhow::Result<()> {
    let config = config::load(config)?;
    let audit_config = config.audit.context("the config has no [audit] section")?;
    // A record holding the request id holds it as written: other lines need no parsing.
    let quick = |line: &str| {
        filter
            .request_id
            .as_ref()
            .is_none_or(|id| line.contains(id.as_str()))
    };
    let mut found = 0u64;
    let mut rows = Listing::new([
        "time_ms",
        "replica",
        "seq",
        "request_id",
        "principal",
        "route",
        "method",
        "status",
        "decision",
    ])
    .stream(output);
    each_record(
        &audit_config.dir,
        filter.replica.as_deref(),
        quick,
        |record| {
            if filter.matches(record) {
                found += 1;
                let (b, e) = (&record.body, &record.body.event);
                match output {
                    // As written (verifiable), not re-serialised: the JSON a record hashes.
                    Output::Json => {
                        println!("{}", serde_json::to_string(record).unwrap_or_default());
                    }
                    _ => rows.row(vec![
                        json!(b.time_ms),
                        json!(b.replica),
                        json!(b.seq),
                        json!(e.request_id),
                        json!(e.principal),
                        json!(e.route),
                        json!(e.method),
                        json!(e.status),
                        json!(e.decision),
                    ])?,
                }
            }
            Ok(())
        },
    )?;
    if output != Output::Json {
        rows.finish()?;
    }
    eprintln!("{found} record(s)");
    Ok(())
}

/// Calls `each` with every record of every chain in `dir` (or only `replica`'s) whose line
/// passes `quick` and parses; lines that do not parse are `privgate audit verify`'s to report.
fn each_record(
    dir: &Path,
    replica: Option<&str>,
    quick: impl Fn(&str) -> bool,
    mut each: impl FnMut(&AuditRecord) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut failed = None;
    for (name, segments) in audit::every_chain(dir)? {
        if replica.is_some_and(|r| r != name) {
            continue;
        }
        audit::for_each_line(&segments, |_, _, line| {
            if quick(line) {
                if let Ok(record) = serde_json::from_str::<AuditRecord>(line) {
                    if let Err(e) = each(&record) {
                        failed = Some(e);
                        return std::ops::ControlFlow::Break(());
                    }
                }
            }
            std::ops::ControlFlow::Continue(())
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}

pub(super) fn who_saw(config: &Path, subject: &str, output: Output) -> anyhow::Result<()> {
    let config = config::load(config)?;
    let audit_config = config.audit.context("the config has no [audit] section")?;
    // The gateway refuses an id in another spelling before any lookup, so nothing was ever
    // recorded under it; saying so beats an empty list (and making it a key row).
    anyhow::ensure!(
        crate::config::subject::SubjectIds::of(&config.routes).accepts(subject),
        "the subject is not an id as the routes spell subject ids: the gateway refuses that \
         spelling, so no record names it (ask for the id in its one spelling)"
    );
    // A subject's records carry the audit-key pseudonym (refused requests) or the one under
    // the subject's own keyring key (allowed requests), which a shred makes unrecoverable.
    anyhow::ensure!(
        audit_config.pseudonym_key_file.is_some() || config.keys.is_some(),
        "no [audit] pseudonym_key_file and no [keys]: records name no subject"
    );
    let mut pseudonyms = Vec::new();
    if let Some(key_file) = &audit_config.pseudonym_key_file {
        let key = AuditKey::from_file(key_file).map_err(anyhow::Error::msg)?;
        pseudonyms.push(key.pseudonym(subject));
    }
    if let Some(keys) = &config.keys {
        let found = super::super::runtime()?.block_on(async {
            let store = crate::store::Store::open_configured(&config.store).await?;
            let keyring = crate::keys::Keyring::open_configured(store, keys).await?;
            match keyring
                .subject_key(subject, crate::keys::KeyKind::Hmac)
                .await
            {
                Ok(key) => Ok(Some(audit::subject_key_pseudonym(&key, subject))),
                Err(crate::keys::KeyError::Shredded) => Ok(None),
                Err(e) => Err(anyhow::Error::from(e)),
            }
        })?;
        match found {
            Some(p) => pseudonyms.push(p),
            None => eprintln!(
                "the subject's keys were shredded: records of what was shown to callers can no \
                 longer be tied to them (only refused requests are listed)"
            ),
        }
    }

    let mut rows = Listing::new([
        "time_ms",
        "replica",
        "seq",
        "principal",
        "route",
        "method",
        "status",
        "decision",
        "purpose",
        "consent",
    ])
    .stream(output);
    // A line that names none of the pseudonyms cannot be one of the subject's records: only
    // the few that do are parsed.
    each_record(
        &audit_config.dir,
        None,
        |line| pseudonyms.iter().any(|p| line.contains(p.as_str())),
        |record| {
            let (b, e) = (&record.body, &record.body.event);
            if e.subject_pseudonym
                .as_ref()
                .is_some_and(|p| pseudonyms.contains(p))
            {
                rows.row(vec![
                    json!(b.time_ms),
                    json!(b.replica),
                    json!(b.seq),
                    json!(e.principal),
                    json!(e.route),
                    json!(e.method),
                    json!(e.status),
                    json!(e.decision),
                    json!(e.purpose),
                    json!(e.consent_id),
                ])?;
            }
            Ok(())
        },
    )?;
    rows.finish()?;
    Ok(())
}

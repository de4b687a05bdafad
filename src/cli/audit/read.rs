//! Reading the trail: who saw a data subject, and records by request id and time. Both
//! stream every replica's chain, segment by segment, one line in memory at a time, and
//! print each match as it is found (`--output table` alone holds the matches, for its
//! column widths), so a trail of any size is read in constant memory.

use super::super::output::{Listing, Output};
use crate::audit::{self, AuditKey, AuditRecord, RecordFilter, SubjectPseudonyms};
use crate::config;
use anyhow::Context;
use serde_json::json;
use std::path::Path;

/// Which records `privgate audit search` prints (every filter given must match).
#[derive(clap::Args)]
pub(super) struct Filter {
    /// Only the record of this request id (as returned to the client).
    #[arg(long)]
    request_id: Option<String>,
    /// Only records at or after this time: RFC 3339 (`2026-12-05T09:00:00Z`) or a span ago
    /// (`2h`, `7days`).
    #[arg(long, value_parser = audit::parse_time)]
    since: Option<i64>,
    /// Only records before this time (same forms as `--since`).
    #[arg(long, value_parser = audit::parse_time)]
    until: Option<i64>,
    /// Only this replica's chain.
    #[arg(long)]
    replica: Option<String>,
    /// Only this route's records.
    #[arg(long)]
    route: Option<String>,
    /// Only this principal's records, as records name it (`User:alice`).
    #[arg(long)]
    principal: Option<String>,
    /// Only allowed (`allow`) or only refused (`deny`) requests.
    #[arg(long, value_parser = ["allow", "deny"])]
    decision: Option<String>,
}

impl Filter {
    fn to_record_filter(&self) -> RecordFilter {
        RecordFilter {
            request_id: self.request_id.clone(),
            since: self.since,
            until: self.until,
            replica: self.replica.clone(),
            route: self.route.clone(),
            principal: self.principal.clone(),
            decision: self.decision.clone(),
        }
    }
}

pub(super) fn search(config: &Path, filter: &Filter, output: Output) -> anyhow::Result<()> {
    let config = config::load(config)?;
    let audit_config = config.audit.context("the config has no [audit] section")?;
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
    let mut failed = None;
    audit::search(&audit_config.dir, &filter.to_record_filter(), |record| {
        found += 1;
        let (b, e) = (&record.body, &record.body.event);
        match output {
            // As written (verifiable), not re-serialised: the JSON a record hashes.
            Output::Json => println!("{}", serde_json::to_string(record).unwrap_or_default()),
            _ => keep_first_error(
                &mut failed,
                rows.row(vec![
                    json!(b.time_ms),
                    json!(b.replica),
                    json!(b.seq),
                    json!(e.request_id),
                    json!(e.principal),
                    json!(e.route),
                    json!(e.method),
                    json!(e.status),
                    json!(e.decision),
                ]),
            ),
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if output != Output::Json {
        rows.finish()?;
    }
    eprintln!("{found} record(s)");
    Ok(())
}

/// Keeps the first failure to print a row (the trail's readers take infallible callbacks).
fn keep_first_error(failed: &mut Option<anyhow::Error>, printed: anyhow::Result<()>) {
    if let (None, Err(e)) = (&failed, printed) {
        *failed = Some(e);
    }
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
    let pseudonyms = super::super::runtime()?.block_on(async {
        let audit_key = match &audit_config.pseudonym_key_file {
            Some(file) => Some(AuditKey::from_file(file).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let keyring = match &config.keys {
            Some(keys) => {
                let store = crate::store::Store::open_configured(&config.store).await?;
                Some(crate::keys::Keyring::open_configured(store, keys).await?)
            }
            None => None,
        };
        anyhow::Ok(SubjectPseudonyms::of(subject, audit_key.as_ref(), keyring.as_ref()).await?)
    })?;
    if pseudonyms.shredded {
        eprintln!(
            "the subject's keys were shredded: records of what was shown to callers can no \
             longer be tied to them (only refused requests are listed)"
        );
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
    let mut failed = None;
    pseudonyms.accesses(&audit_config.dir, |record: &AuditRecord| {
        let (b, e) = (&record.body, &record.body.event);
        keep_first_error(
            &mut failed,
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
            ]),
        );
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    rows.finish()?;
    Ok(())
}

//! Reading the trail: who saw a data subject, and records by request id and time. Both
//! stream every replica's chain, segment by segment, one line in memory at a time, so a
//! trail of any size is read in constant memory.

use crate::audit::{self, AuditKey, RecordFilter, SubjectPseudonyms};
use crate::config;
use anyhow::Context;
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

pub(super) fn search(config: &Path, filter: &Filter) -> anyhow::Result<()> {
    let config = config::load(config)?;
    let audit_config = config.audit.context("the config has no [audit] section")?;
    let mut found = 0u64;
    audit::search(&audit_config.dir, &filter.to_record_filter(), |record| {
        found += 1;
        // As written (verifiable), not re-serialised: the JSON a record hashes.
        println!("{}", serde_json::to_string(record).unwrap_or_default());
    })?;
    eprintln!("{found} record(s)");
    Ok(())
}

pub(super) fn who_saw(config: &Path, subject: &str) -> anyhow::Result<()> {
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

    println!("time_ms\treplica\tseq\tprincipal\troute\tmethod\tstatus\tdecision\tpurpose\tconsent");
    pseudonyms.accesses(&audit_config.dir, |record| {
        let (b, e) = (&record.body, &record.body.event);
        let purpose = e.purpose.as_deref().unwrap_or("-");
        let consent = e.consent_id.as_deref().unwrap_or("-");
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{purpose}\t{consent}",
            b.time_ms, b.replica, b.seq, e.principal, e.route, e.method, e.status, e.decision
        );
    })?;
    Ok(())
}

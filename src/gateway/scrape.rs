//! What `/metrics` reads at scrape time: the state gauges ([`crate::telemetry::status`])
//! from the serving generation, the audit writer, the keyring's store rows and the privacy
//! budget ledger. Store reads are bounded by [`STORE_READ_TIMEOUT`]; a store that does not
//! answer leaves those gauges out of this scrape (a missing series alerts as `absent`)
//! rather than stall the scrape.

use super::state::Shared;
use crate::telemetry::status::AuditGauges;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Longest a scrape waits for the store: well inside Prometheus's default 10 s timeout.
const STORE_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `/readyz` answers 200: not draining, and the audit trail (if any) has not failed.
pub(crate) fn ready(shared: &Shared) -> bool {
    !shared.draining.load(Ordering::SeqCst) && shared.audit.as_ref().is_none_or(|a| a.is_healthy())
}

/// Sets every scrape-time gauge.
pub(crate) async fn refresh(shared: &Shared) {
    let generation = shared.generation.load_full();
    let metrics = &shared.metrics;
    let status = &metrics.status;
    // Key-set ages are read at scrape time, so the gauge is never stale.
    for (issuer, age) in generation.identity.key_set_ages() {
        if let Some(age) = age {
            metrics.jwks_key_set_age(issuer, age);
        }
    }
    status.set_ready(ready(shared));
    status.set_config(
        &generation.source_sha256,
        generation.policy.as_ref().map(|p| p.hash()),
    );
    status.set_certificates(
        generation
            .certificates
            .iter()
            .map(|c| (c.kind, c.name.as_str(), c.not_after)),
    );
    // Without an audit trail nothing can fail it: healthy, nothing queued.
    status.set_audit(AuditGauges {
        healthy: shared.audit.as_ref().is_none_or(|a| a.is_healthy()),
        queued: shared.audit.as_ref().map_or(0, |a| a.queued()),
        last_durable_ms: shared.audit.as_ref().and_then(|a| a.last_durable_ms()),
    });
    let Some(store) = &shared.store else { return };
    if let Some(keys) = &generation.config.keys {
        match tokio::time::timeout(STORE_READ_TIMEOUT, store.data_key_rows()).await {
            Ok(Ok(rows)) => {
                // The newest active AES-GCM version of each name is the one being used up.
                let mut newest = std::collections::BTreeMap::new();
                for row in rows
                    .iter()
                    .filter(|r| r.kind == "aead" && r.status == "active")
                {
                    newest.insert(row.name.as_str(), row.uses);
                }
                status.set_key_uses(newest, keys.aead_max_uses);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: key uses not read"),
            Err(_) => tracing::warn!("metrics: key uses not read in time"),
        }
    }
    status.clear_budgets();
    for dataset in &generation.config.datasets {
        let left = crate::analytics::dp::global_epsilon_left(dataset, store);
        match tokio::time::timeout(STORE_READ_TIMEOUT, left).await {
            Ok(Ok(epsilon)) => status.set_budget_left(&dataset.name, epsilon),
            Ok(Err(e)) => {
                tracing::warn!(dataset = %dataset.name, error = %e, "metrics: budget not read")
            }
            Err(_) => tracing::warn!(dataset = %dataset.name, "metrics: budget not read in time"),
        }
    }
}

//! Gauges of the gateway's state, set when `/metrics` is scraped (so never stale): build,
//! readiness, the active configuration and policy set, the audit writer, certificate
//! expiry, AES-GCM key uses against their bound and the privacy budget left.
//!
//! Every label is a configured name (listener, upstream, key, dataset), a hash, or a fixed
//! string from the code: never request content or secrets. A series whose subject is gone
//! (a dataset or certificate removed by a reload) disappears, because each family is
//! cleared and set afresh on every scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    fhe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConfigLabels {
    config_sha256: String,
    policy_set_hash: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    kind: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatasetLabels {
    dataset: String,
}

/// What the scrape reads from the audit writer.
pub(crate) struct AuditGauges {
    /// Every write so far succeeded.
    pub(crate) healthy: bool,
    /// Records waiting for the writer.
    pub(crate) queued: usize,
    /// Last fsync of the chain, Unix ms.
    pub(crate) last_durable_ms: Option<u64>,
}

/// The scrape-time gauges.
#[derive(Default)]
pub(crate) struct StatusMetrics {
    build_info: Family<BuildLabels, Gauge>,
    ready: Gauge,
    config_info: Family<ConfigLabels, Gauge>,
    audit_healthy: Gauge,
    audit_queue: Gauge,
    audit_durable: FloatGauge,
    certificate_expiry: Family<CertificateLabels, FloatGauge>,
    aead_key_uses: Family<KeyLabels, Gauge>,
    aead_key_use_limit: Gauge,
    dp_epsilon_left: Family<DatasetLabels, FloatGauge>,
}

impl StatusMetrics {
    /// Registers every gauge (names get the registry's `privgate_` prefix).
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "build_info",
            "1, labelled with the version and whether FHE is compiled in",
            self.build_info.clone(),
        );
        self.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                fhe: cfg!(feature = "fhe").to_string(),
            })
            .set(1);
        registry.register(
            "ready",
            "1 while /readyz answers 200; 0 while draining or once the audit trail failed",
            self.ready.clone(),
        );
        registry.register(
            "config_info",
            "1, labelled with the SHA-256 of the serving configuration file and the active \
             policy set's hash",
            self.config_info.clone(),
        );
        registry.register(
            "audit_healthy",
            "1 while every audit write succeeded (or no audit trail is configured); 0 once one \
             failed (requests are refused)",
            self.audit_healthy.clone(),
        );
        registry.register(
            "audit_queue_records",
            "Audit records queued for the writer and not yet written",
            self.audit_queue.clone(),
        );
        registry.register(
            "audit_last_durable_timestamp_seconds",
            "When the audit chain was last fsync'd (Unix seconds)",
            self.audit_durable.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When each certificate the gateway presents expires (Unix seconds), by kind \
             (listener, upstream client certificate) and configured name",
            self.certificate_expiry.clone(),
        );
        registry.register(
            "aead_key_uses",
            "AES-GCM encryptions reserved under each named key's newest version (all \
             replicas; rotated at the limit)",
            self.aead_key_uses.clone(),
        );
        registry.register(
            "aead_key_use_limit",
            "The usage bound of an AES-GCM key version ([keys] aead_max_uses)",
            self.aead_key_use_limit.clone(),
        );
        registry.register(
            "dp_epsilon_remaining",
            "Epsilon left of each dataset's global privacy budget this period",
            self.dp_epsilon_left.clone(),
        );
    }

    /// Readiness as `/readyz` answers it.
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// The serving configuration's and policy set's hashes (one series at a time).
    pub(crate) fn set_config(&self, config_sha256: &str, policy_set_hash: Option<&str>) {
        self.config_info.clear();
        self.config_info
            .get_or_create(&ConfigLabels {
                config_sha256: config_sha256.to_owned(),
                policy_set_hash: policy_set_hash.unwrap_or("").to_owned(),
            })
            .set(1);
    }

    /// The audit writer's state.
    pub(crate) fn set_audit(&self, audit: AuditGauges) {
        self.audit_healthy.set(i64::from(audit.healthy));
        self.audit_queue
            .set(i64::try_from(audit.queued).unwrap_or(i64::MAX));
        if let Some(ms) = audit.last_durable_ms {
            self.audit_durable.set(ms as f64 / 1000.0);
        }
    }

    /// Expiry of the certificates the serving configuration presents.
    pub(crate) fn set_certificates<'a>(
        &self,
        certificates: impl IntoIterator<Item = (&'a str, &'a str, i64)>,
    ) {
        self.certificate_expiry.clear();
        for (kind, name, not_after) in certificates {
            self.certificate_expiry
                .get_or_create(&CertificateLabels {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                })
                .set(not_after as f64);
        }
    }

    /// Uses reserved under each named AES-GCM key's newest version, and the bound.
    pub(crate) fn set_key_uses<'a>(
        &self,
        uses: impl IntoIterator<Item = (&'a str, i64)>,
        limit: u64,
    ) {
        self.aead_key_uses.clear();
        for (key, n) in uses {
            self.aead_key_uses
                .get_or_create(&KeyLabels {
                    key: key.to_owned(),
                })
                .set(n);
        }
        self.aead_key_use_limit
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    /// Forgets every dataset's budget gauge, before the scrape sets the current ones.
    pub(crate) fn clear_budgets(&self) {
        self.dp_epsilon_left.clear();
    }

    /// Epsilon left of one dataset's global budget this period.
    pub(crate) fn set_budget_left(&self, dataset: &str, epsilon: f64) {
        self.dp_epsilon_left
            .get_or_create(&DatasetLabels {
                dataset: dataset.to_owned(),
            })
            .set(epsilon);
    }
}

//! The gateway's encrypted-sum service: aggregates, contributions and releases, with the
//! key set loaded once at start and a background worker folding full batches.
//!
//! Who may do what is decided by policy in the gateway before these are called; the
//! service enforces what policy cannot be trusted to: sizing, the configured floor on the
//! organisation threshold, the threshold itself at release, one organisation per
//! contribution (none: refused), one contribution per contributor, deadlines, and the
//! privacy budget.

use super::batches::{self, FoldKeys};
use super::contribution;
use super::keyset::{self, PublicMaterial};
use super::noise;
use super::params::Sizing;
use super::FheError;
use crate::keys::Keyring;
use crate::store::{now_ms, AggregateRow, ContributionWrite, Store};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tfhe::ClientKey;
use tokio::sync::mpsc;

/// Longest an aggregate may stay open.
pub(crate) const MAX_OPEN_FOR: Duration = Duration::from_secs(366 * 24 * 3600);

/// The body of `POST /aggregates`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAggregate {
    /// A name for people (1 to 128 characters).
    pub name: String,
    /// Bits of each contribution (one of [`super::params::CONTRIBUTION_WIDTHS`]).
    pub bits: u32,
    /// Most contributors; sizes the accumulator so the total cannot wrap.
    pub max_contributors: u64,
    /// Distinct organisations needed for a release (at least the configured floor).
    pub min_organisations: u64,
    /// How long contributions are taken, e.g. `7days`.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// A cap below 2^bits, applied to each contribution by homomorphic clamp.
    #[serde(default)]
    pub cap: Option<u64>,
    /// How the total is released.
    #[serde(default)]
    pub release: ReleaseMode,
}

/// How an aggregate's total is released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum ReleaseMode {
    /// Once, exactly; the aggregate closes.
    #[default]
    Exact,
    /// With discrete Laplace noise, `epsilon` per release out of the aggregate's `budget`.
    Dp {
        /// Epsilon each release spends.
        epsilon: f64,
        /// The aggregate's whole budget (its privacy unit is the contributor).
        budget: f64,
    },
}

/// What anyone allowed to read an aggregate sees: never a value.
#[derive(Debug, Clone, Serialize)]
pub struct AggregateView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Bits per contribution.
    pub bits: i64,
    /// Cap, if any.
    pub cap: Option<i64>,
    /// Most contributors.
    pub max_contributors: i64,
    /// Width of the encrypted total.
    pub accumulator_bits: u32,
    /// Distinct organisations needed for a release.
    pub min_organisations: i64,
    /// Unix ms after which contributions are refused.
    pub closes_at: i64,
    /// Release mode (with the budget spent so far for `dp`).
    pub release: serde_json::Value,
    /// `open` or `released`.
    pub state: String,
    /// Contributors so far.
    pub contributors: i64,
    /// Distinct organisations so far.
    pub organisations: i64,
}

/// The answer to a release.
#[derive(Debug, Clone, Serialize)]
pub struct Released {
    /// Aggregate id.
    pub id: String,
    /// `exact` or `dp`.
    pub mode: &'static str,
    /// The total (decimal; a DP-noised total may be negative).
    pub total: String,
    /// Contributors it sums.
    pub contributors: i64,
    /// Distinct organisations among them.
    pub organisations: i64,
    /// Epsilon this release spent (DP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
}

/// The encrypted-sum service of a running gateway.
pub struct FheService {
    keys: Arc<FoldKeys>,
    /// What `GET /fhe/v1/public-key` serves, encoded once: the key set changes only on
    /// restart, and the CRS alone is megabytes of base64.
    public_document: bytes::Bytes,
    client: ClientKey,
    store: Store,
    settings: Settings,
    wake: mpsc::UnboundedSender<(String, i64)>,
}

/// Encodes [`FheService::public_document`].
fn public_document(public: &PublicMaterial) -> Result<bytes::Bytes, FheError> {
    let document = serde_json::json!({
        "parameters": super::params::PARAMETER_NAMES,
        "contribution_widths": super::params::CONTRIBUTION_WIDTHS,
        "sha256": public.sha256,
        "public_key": B64.encode(&public.public_key_bytes),
        "crs": B64.encode(&public.crs_bytes),
    });
    serde_json::to_vec(&document)
        .map(bytes::Bytes::from)
        .map_err(|e| FheError::Internal(e.to_string()))
}

/// The operator's settings (`[fhe]`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Fewest distinct organisations any aggregate may require for a release.
    pub floor: u64,
    /// Contributions per batch for new aggregates.
    pub batch_size: i64,
}

impl FheService {
    /// Loads the key set in `dir` (opening the client key with the keyring), starts the
    /// fold worker and resumes folding what a previous run left.
    pub async fn start(
        dir: &Path,
        settings: Settings,
        store: Store,
        keyring: &Keyring,
    ) -> Result<Arc<Self>, FheError> {
        let owned = dir.to_path_buf();
        let keys = tokio::task::spawn_blocking(move || {
            FoldKeys::new(
                keyset::load_public(&owned)?,
                keyset::load_server(&keyset::server_key_path(&owned))?,
            )
        })
        .await
        .map_err(|e| FheError::Internal(e.to_string()))??;
        let client = keyset::open_client(dir, keyring).await?;
        let public_document = public_document(&keys.public)?;
        let keys = Arc::new(keys);
        let (wake, rx) = mpsc::unbounded_channel();
        tokio::spawn(worker(keys.clone(), store.clone(), rx));
        let service = Arc::new(Self {
            keys,
            public_document,
            client,
            store,
            settings,
            wake,
        });
        for id in service.store.open_aggregates().await? {
            for batch in service.store.batches(&id).await? {
                if batch.folded_revision != batch.revision {
                    let _ = service.wake.send((id.clone(), batch.batch));
                }
            }
            // Also catches up a running total a stop left behind its folded batches.
            let _ = service.wake.send((id, 0));
        }
        Ok(service)
    }

    /// The JSON document contributors fetch: parameter names, contribution widths, the
    /// compact public key and CRS they encrypt and prove with, and the hash to pin.
    pub fn public_document(&self) -> bytes::Bytes {
        self.public_document.clone()
    }

    /// The configured floor on `min_organisations`.
    pub fn floor(&self) -> u64 {
        self.settings.floor
    }

    /// Checks a new aggregate and stores it under `id`.
    pub async fn create(
        &self,
        id: &str,
        new: &NewAggregate,
        creator: &str,
    ) -> Result<AggregateView, FheError> {
        let sizing = Sizing::new(new.bits, new.max_contributors)?;
        if new.name.trim().is_empty() || new.name.chars().count() > 128 {
            return Err(FheError::Invalid("name must be 1 to 128 characters".into()));
        }
        if new.min_organisations < self.settings.floor.max(1) {
            return Err(FheError::Invalid(format!(
                "min_organisations must be at least {} (the configured floor)",
                self.settings.floor.max(1)
            )));
        }
        if new.min_organisations > new.max_contributors {
            return Err(FheError::Invalid(
                "min_organisations exceeds max_contributors".into(),
            ));
        }
        if new.open_for.is_zero() || new.open_for > MAX_OPEN_FOR {
            return Err(FheError::Invalid(
                "open_for must be positive and at most a year".into(),
            ));
        }
        if let Some(cap) = new.cap {
            if cap == 0 || cap >= sizing.max_value() {
                return Err(FheError::Invalid(
                    "cap must be from 1 to 2^bits - 2 (2^bits - 1 is free)".into(),
                ));
            }
        }
        let (epsilon_micro, budget_micro) = match new.release {
            ReleaseMode::Exact => (None, None),
            ReleaseMode::Dp { epsilon, budget } => {
                let valid = |x: f64| x.is_finite() && x > 0.0 && x <= 100.0;
                if !valid(epsilon) || !valid(budget) || epsilon > budget {
                    return Err(FheError::Invalid(
                        "dp needs 0 < epsilon <= budget <= 100".into(),
                    ));
                }
                if sizing.max_total() > i64::MAX as u128 {
                    return Err(FheError::Invalid(
                        "dp release needs a total below 2^63".into(),
                    ));
                }
                (Some(micro(epsilon)), Some(micro(budget)))
            }
        };
        let now = now_ms();
        let row = AggregateRow {
            id: id.to_owned(),
            name: new.name.clone(),
            bits: new.bits.into(),
            cap: new.cap.map(|c| c as i64),
            max_contributors: new.max_contributors as i64,
            batch_size: self.settings.batch_size,
            min_organisations: new.min_organisations as i64,
            deadline: now.saturating_add(new.open_for.as_millis() as i64),
            release_mode: mode_name(&new.release).to_owned(),
            epsilon_micro,
            budget_micro,
            spent_micro: 0,
            created_by: creator.to_owned(),
            created_at: now,
            state: "open".into(),
            released_at: None,
        };
        self.store.insert_aggregate(&row).await?;
        self.status(id).await
    }

    /// The status of the `limit` most recently created aggregates, newest first.
    pub async fn recent(&self, limit: i64) -> Result<Vec<AggregateView>, FheError> {
        let mut views = Vec::new();
        for id in self.store.recent_aggregates(limit).await? {
            views.push(self.status(&id).await?);
        }
        Ok(views)
    }

    /// An aggregate's status and counts.
    pub async fn status(&self, id: &str) -> Result<AggregateView, FheError> {
        let row = self.row(id).await?;
        let (contributors, organisations) = self.store.contribution_counts(id).await?;
        let sizing = batches::sizing(&row)?;
        let release = match (row.epsilon_micro, row.budget_micro) {
            (Some(e), Some(b)) => serde_json::json!({
                "mode": "dp", "epsilon": unmicro(e), "budget": unmicro(b), "spent": unmicro(row.spent_micro),
            }),
            _ => serde_json::json!({ "mode": "exact" }),
        };
        Ok(AggregateView {
            id: row.id,
            name: row.name,
            bits: row.bits,
            cap: row.cap,
            max_contributors: row.max_contributors,
            accumulator_bits: sizing.accumulator_bits,
            min_organisations: row.min_organisations,
            closes_at: row.deadline,
            release,
            state: row.state,
            contributors,
            organisations,
        })
    }

    /// Accepts `contributor`'s contribution (base64 of a proven compact list): checks its
    /// form, width and proof (bound to this aggregate, contributor and nonce), stores it
    /// (replacing their earlier one) and wakes the folder. Returns the slot and whether it
    /// replaced an earlier contribution. A contributor without an `organisation` is
    /// refused ([`FheError::OrganisationRequired`]) before anything is checked.
    pub async fn contribute(
        &self,
        id: &str,
        contributor: &str,
        organisation: Option<&str>,
        nonce: &str,
        ciphertext: &str,
    ) -> Result<(i64, bool), FheError> {
        // The threshold counts distinct organisations: a contribution must belong to one,
        // or callers without one (each API key, each token without the claim) would each
        // count as their own and one party could meet the threshold alone.
        let organisation = organisation
            .filter(|o| !o.trim().is_empty())
            .ok_or(FheError::OrganisationRequired)?;
        check_nonce(nonce)?;
        let row = self.row(id).await?;
        if row.state != "open" || row.deadline <= now_ms() {
            return Err(FheError::Closed);
        }
        let sizing = batches::sizing(&row)?;
        let bytes = B64
            .decode(ciphertext)
            .map_err(|_| FheError::Malformed("contribution (not base64)"))?;
        let metadata = contribution::metadata(id, contributor, nonce);
        let keys = self.keys.clone();
        tokio::task::spawn_blocking(move || {
            let list = contribution::parse(&bytes, &keys.public)?;
            contribution::check_width(&list, &sizing)?;
            contribution::verify(&list, &keys.public, &metadata)
        })
        .await
        .map_err(|e| FheError::Internal(e.to_string()))??;
        let written = self
            .store
            .put_contribution(id, contributor, organisation, nonce, ciphertext, now_ms())
            .await?;
        match written {
            ContributionWrite::Stored { slot, replaced } => {
                let _ = self
                    .wake
                    .send((id.to_owned(), slot / row.batch_size.max(1)));
                Ok((slot, replaced))
            }
            ContributionWrite::NotFound => Err(FheError::NotFound),
            ContributionWrite::Closed => Err(FheError::Closed),
            ContributionWrite::NonceReused => Err(FheError::NonceReused),
            ContributionWrite::Full => Err(FheError::Full),
        }
    }

    /// Releases the total if enough distinct organisations contributed: exact (once; the
    /// aggregate closes) or DP-noised (each release spends the aggregate's budget). Only
    /// the total is ever decrypted.
    pub async fn release(&self, id: &str) -> Result<Released, FheError> {
        let row = self.row(id).await?;
        if row.state != "open" {
            return Err(FheError::Closed);
        }
        let (contributors, organisations) = self.store.contribution_counts(id).await?;
        let need = (row.min_organisations as u64)
            .max(self.settings.floor)
            .max(1);
        if (organisations as u64) < need {
            return Err(FheError::ThresholdNotMet {
                have: organisations as u64,
                need,
            });
        }
        let sizing = batches::sizing(&row)?;
        let sensitivity = row.cap.map_or(sizing.max_value(), |c| c as u64);
        let epsilon = match row.epsilon_micro {
            Some(cost) => {
                // Spent first: a release that fails afterwards has still cost its budget.
                if !self.store.spend_aggregate_budget(id, cost).await? {
                    return Err(FheError::BudgetExhausted);
                }
                Some(unmicro(cost))
            }
            None => None,
        };
        let (total, revisions) = batches::total(&self.keys, &self.store, &row).await?;
        if epsilon.is_none()
            && !self
                .store
                .close_aggregate_at(id, now_ms(), revisions)
                .await?
        {
            return Err(FheError::Closed);
        }
        let clear = super::fold::decrypt(&self.client, &total);
        let (mode, total) = match epsilon {
            Some(e) => ("dp", noise::noisy_total(clear, sensitivity, e)?.to_string()),
            None => ("exact", clear.to_string()),
        };
        Ok(Released {
            id: id.to_owned(),
            mode,
            total,
            contributors,
            organisations,
            epsilon,
        })
    }

    async fn row(&self, id: &str) -> Result<AggregateRow, FheError> {
        self.store.aggregate(id).await?.ok_or(FheError::NotFound)
    }
}

/// Folds full batches as they are reported; releases fold the rest.
async fn worker(keys: Arc<FoldKeys>, store: Store, mut rx: mpsc::UnboundedReceiver<(String, i64)>) {
    while let Some((id, batch)) = rx.recv().await {
        let row = match store.aggregate(&id).await {
            Ok(Some(row)) if row.state == "open" => row,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(aggregate = %id, error = %e, "fold skipped: store unavailable");
                continue;
            }
        };
        if let Err(e) = batches::fold_batch(&keys, &store, &row, batch, true).await {
            tracing::warn!(aggregate = %id, batch, error = %e, "batch fold failed; the release retries it");
        }
        if let Err(e) = batches::advance_running(&keys, &store, &row).await {
            tracing::warn!(aggregate = %id, error = %e, "running total not advanced; the release adds partials");
        }
    }
}

fn check_nonce(nonce: &str) -> Result<(), FheError> {
    let ok = (16..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match ok {
        true => Ok(()),
        false => Err(FheError::Invalid(
            "nonce must be 16 to 64 of A-Z a-z 0-9 - _".into(),
        )),
    }
}

fn mode_name(mode: &ReleaseMode) -> &'static str {
    match mode {
        ReleaseMode::Exact => "exact",
        ReleaseMode::Dp { .. } => "dp",
    }
}

fn micro(x: f64) -> i64 {
    (x * 1e6).round() as i64
}

fn unmicro(x: i64) -> f64 {
    x as f64 / 1e6
}

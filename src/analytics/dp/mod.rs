//! Differentially private analytics: analysts ask aggregate questions in a restricted SQL
//! over declared datasets and get answers whose noise comes from OpenDP, within per-analyst
//! and per-dataset privacy budgets kept in the store.
//!
//! One query, in order (see [`Datasets::answer`]):
//!
//! ```text
//! parse    -> restricted SQL against the dataset's declared columns (query)
//! plan     -> sensitivities, noise scales and privacy loss from OpenDP (mechanism), on a
//!             blocking worker (OpenDP measurements are not Send)
//! dry run  -> stop here: the cost and the budget left, nothing spent
//! cache    -> the same query within the window: the stored answer, nothing spent; the first
//!             of several identical concurrent queries claims it and the others wait for it
//! tally    -> truncation, clamping, filters and the consent filter pushed into the source
//!             database; exact aggregates come back (pushdown). Up to here a query whose
//!             caller goes away is dropped: nothing spent, its cache claim let go
//! debit    -> the plan's loss from the analyst's and the global budget, one transaction
//!             (store::dp_budget); refused: 429 and when the budget refreshes
//! release  -> OpenDP noise on the tally, on a blocking worker; the answer is cached. Debit
//!             and release run as a task of their own, to the end once begun
//! ```
//!
//! Discovery and budgets (`catalog`) read the config and the ledger only; answers are
//! flattened into rows and columns for CSV by `tabular`.
//!
//! The policy decision (Cedar action `query` on the `Dataset`) is the gateway's, before this.

mod answer;
#[cfg(test)]
mod bounds_tests;
mod budget_left;
mod catalog;
pub(crate) mod contribution;
mod csv_source;
pub(crate) mod mechanism;
pub mod pushdown;
pub mod query;
mod response;
mod scan;
pub mod snapshot;
pub mod tabular;
#[cfg(test)]
mod tests;
pub(crate) mod threshold;
pub(crate) mod tiers;

pub use answer::{AnswerRequest, Outcome};
pub(crate) use budget_left::global_epsilon_left;

use crate::config::dataset::{BudgetTier, DatasetConfig, QueryEngine};
use crate::store::{Store, StoreError};
use std::collections::HashMap;

/// Why a query got no answer. Messages are for the analyst: they name columns, SQL forms
/// and budgets, never data values.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// No dataset of that name.
    #[error("no dataset named `{0}`")]
    UnknownDataset(String),
    /// The request body or parameters are malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// The SQL is outside the allowed subset.
    #[error(transparent)]
    Query(#[from] query::QueryError),
    /// The privacy parameters cannot be met.
    #[error("{0}")]
    Plan(String),
    /// A budget cannot cover the query's cost; nothing was spent.
    #[error("{message}")]
    BudgetExhausted {
        /// What ran out, the cost and what is left.
        message: String,
        /// Seconds until the budget refreshes.
        retry_after_s: u64,
    },
    /// An identical query is being answered and did not finish in time.
    #[error("an identical query is still being answered; retry shortly")]
    Busy,
    /// The dataset's source database failed.
    #[error("dataset source unavailable: {0}")]
    Source(String),
    /// The store (ledger, cache) failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A bug or an OpenDP refusal that validation should have prevented.
    #[error("internal: {0}")]
    Internal(String),
}

impl AnalyticsError {
    /// Whether the analyst caused it rather than the gateway or a database: the 4xx errors,
    /// and Busy (503 so that clients retry, but caused by an identical query in flight).
    pub fn is_client(&self) -> bool {
        matches!(
            self,
            Self::UnknownDataset(_)
                | Self::InvalidRequest(_)
                | Self::Query(_)
                | Self::Plan(_)
                | Self::BudgetExhausted { .. }
                | Self::Busy
        )
    }
}

/// A dataset ready to query: its config, where its rows are read from, and for the
/// `snapshot` engine its copy of them.
struct Dataset {
    config: DatasetConfig,
    /// SHA-256 of the dataset's definition as configured (its tiers' budgets included, not
    /// which tier asks): answers are cached under it, so a reloaded definition never serves
    /// an answer computed under the old one, while every tier shares one cache.
    definition: String,
    rows: Rows,
    snapshot: Option<snapshot::SnapshotCache>,
}

/// Where a dataset's rows are read from.
enum Rows {
    /// The gateway's own store (the only source the consent filter can join).
    Store,
    /// Another database, connected on first use.
    Database(sqlx::AnyPool),
    /// A CSV file, parsed at build and loaded into memory on first use.
    Csv(csv_source::CsvTable),
}

/// The configured datasets.
pub struct Datasets {
    by_name: HashMap<String, Dataset>,
}

impl std::fmt::Debug for Datasets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

/// Connections per external dataset source: analytics queries are few and heavy.
const SOURCE_MAX_CONNECTIONS: u32 = 4;

impl Datasets {
    /// Builds the datasets of a validated config: CSV files are parsed now (a bad file
    /// refuses the config), databases connect on first use.
    pub fn build(configs: &[DatasetConfig]) -> Result<Self, String> {
        sqlx::any::install_default_drivers();
        let mut by_name = HashMap::new();
        for config in configs {
            let rows = match (&config.source.url, &config.source.csv) {
                (Some(url), _) => Rows::Database(
                    sqlx::any::AnyPoolOptions::new()
                        .max_connections(SOURCE_MAX_CONNECTIONS)
                        .connect_lazy(url)
                        .map_err(|e| format!("dataset `{}`: source: {e}", config.name))?,
                ),
                (None, Some(path)) => Rows::Csv(
                    csv_source::CsvTable::read(config, path)
                        .map_err(|e| format!("dataset `{}`: {e}", config.name))?,
                ),
                (None, None) => Rows::Store,
            };
            let snapshot = match config.query_engine() {
                QueryEngine::Pushdown => None,
                // A CSV file is read once per configuration: its copy never goes stale.
                QueryEngine::Snapshot => Some(snapshot::SnapshotCache::new(
                    config
                        .source
                        .csv
                        .is_none()
                        .then_some(config.snapshot_max_age),
                )),
            };
            by_name.insert(
                config.name.clone(),
                Dataset {
                    config: config.clone(),
                    definition: definition_digest(config)?,
                    rows,
                    snapshot,
                },
            );
        }
        Ok(Self { by_name })
    }

    /// Whether any dataset is configured.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    fn get(&self, name: &str) -> Result<&Dataset, AnalyticsError> {
        self.by_name
            .get(name)
            .ok_or_else(|| AnalyticsError::UnknownDataset(name.to_owned()))
    }

    /// The budget tiers of dataset `name`, most generous first, for the policy to grant.
    pub fn budget_tiers(&self, name: &str) -> Result<&[BudgetTier], AnalyticsError> {
        Ok(&self.get(name)?.config.budget_tiers)
    }

    /// Answers one query for `analyst`, whose budget is the one of the `tier` policy granted
    /// (`None`: the dataset's default). See the module docs for the steps.
    pub async fn answer(
        &self,
        store: &Store,
        analyst: &str,
        tier: Option<&str>,
        request: &AnswerRequest,
    ) -> Result<Outcome, AnalyticsError> {
        let dataset = self.get(&request.dataset)?;
        let config = dataset.config.for_tier(tier);
        let pool = match &dataset.rows {
            Rows::Store => store.pool(),
            Rows::Database(pool) => pool,
            Rows::Csv(table) => table.database().await?,
        };
        let source = answer::Source {
            pool,
            snapshot: dataset.snapshot.as_ref(),
            definition: &dataset.definition,
        };
        answer::answer(&config, source, store, analyst, request).await
    }
}

/// [`Dataset::definition`]: the digest of a dataset's configured definition.
fn definition_digest(config: &DatasetConfig) -> Result<String, String> {
    let text = serde_json::to_string(config)
        .map_err(|e| format!("dataset `{}`: definition: {e}", config.name))?;
    Ok(crate::audit::hex(
        ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref(),
    ))
}

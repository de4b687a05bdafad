//! `[[dataset]]` tables in privgate.toml: what analysts may query, and how much privacy
//! loss they may spend on it.
//!
//! A dataset declares everything the sensitivity of a query depends on, so that no bound is
//! ever read from the data: the privacy unit (whose presence an answer must not reveal), how
//! many rows one unit may contribute (rows beyond it are dropped in `truncate_order`), and
//! per column its public bounds (integers: a clamp range; categorical columns: the category
//! list). Budgets are per analyst and per dataset (all analysts together), per period.
//!
//! This is the schema and its validation, like every other section of the file; the
//! engine that answers queries (`analytics::dp`) reads these types and never checks them
//! again.

#[cfg(test)]
mod tests;
mod validate;

pub(crate) use validate::validate;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest `max_rows_per_unit`: beyond it the noise needed swamps any useful answer, and
/// a larger value is more likely a unit-of-privacy mistake than a real need.
pub const MAX_ROWS_PER_UNIT_LIMIT: u32 = 10_000;

/// Most categories a categorical column may declare: GROUP BY releases every category, and
/// the answer (and the work per query) grows with their number.
pub const MAX_CATEGORIES: usize = 1_000;

/// Default time an answer is served again from the cache instead of drawing fresh noise.
pub const DEFAULT_CACHE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Default budget period: budgets refresh monthly-ish (30 days), a common reporting cycle.
pub const DEFAULT_BUDGET_PERIOD: Duration = Duration::from_secs(30 * 24 * 3600);

/// One `[[dataset]]` table.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Name analysts query it by (the SQL `FROM` and the Cedar `Dataset` entity id).
    pub name: String,
    /// Where its rows are.
    pub source: SourceConfig,
    /// The column naming the privacy unit (e.g. `customer_id`).
    pub privacy_unit: String,
    /// Most rows one unit contributes; the rest are dropped before aggregation.
    pub max_rows_per_unit: u32,
    /// Column ordering a unit's rows for that truncation (a unique, stable key such as the
    /// row id): the first `max_rows_per_unit` rows in this order are kept.
    pub truncate_order: String,
    /// Columns analysts may use, with their public bounds.
    #[serde(rename = "column", default)]
    pub columns: BTreeMap<String, ColumnConfig>,
    /// Privacy loss (epsilon) one analyst may spend on this dataset per period.
    pub analyst_epsilon: f64,
    /// Privacy loss all analysts together may spend on this dataset per period (colluding
    /// analysts could otherwise add up their answers).
    pub global_epsilon: f64,
    /// How often budgets refresh (fixed windows from the Unix epoch).
    #[serde(default = "default_period", with = "humantime_serde")]
    pub budget_period: Duration,
    /// How long the same query is answered from the cache without spending again.
    #[serde(default = "default_cache_window", with = "humantime_serde")]
    pub cache_window: Duration,
    /// Count only data subjects with an active consent for this purpose (e.g. `analytics`).
    pub require_consent_purpose: Option<String>,
    /// GROUP BY bound: most groups (GROUP BY cells) one unit's rows may fall in; its rows in
    /// further groups are dropped. GROUP BY is refused without it (see `contribution`).
    pub max_groups_per_unit: Option<u32>,
    /// GROUP BY bound: most rows one unit contributes to any one group.
    pub max_rows_per_group: Option<u32>,
    /// Delta one analyst may spend per period: needed (with `global_delta`) for GROUP BY
    /// on `key` columns, whose keys are released only above a DP threshold.
    pub analyst_delta: Option<f64>,
    /// Delta all analysts together may spend per period.
    pub global_delta: Option<f64>,
    /// Delta a keyed GROUP BY spends when the query gives none.
    pub default_query_delta: Option<f64>,
    /// Larger per-analyst budgets that policy may grant, most generous first (see `tiers`).
    #[serde(rename = "budget_tier", default)]
    pub budget_tiers: Vec<BudgetTier>,
    /// How queries are computed; absent: `snapshot` for a CSV source (its rows change only
    /// with the configuration), `pushdown` for a database (always current).
    pub engine: Option<QueryEngine>,
    /// `snapshot` engine: the oldest copy of a database source a query may be answered
    /// from; an older one is read again first (the copy's staleness bound).
    #[serde(default = "default_snapshot_max_age", with = "humantime_serde")]
    pub snapshot_max_age: Duration,
}

/// How a dataset's queries are computed. Both give the same answers on the same rows (the
/// differential tests run every engine); they differ in cost and freshness.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QueryEngine {
    /// SQL in the source database at every query: always current, but the per-unit
    /// truncation is a window over every matching row (seconds at millions of rows).
    Pushdown,
    /// An in-memory, columnar copy of the declared columns ordered by unit, read once per
    /// `snapshot_max_age` (CSV: once per configuration); each query is one pass over it.
    Snapshot,
}

/// Default staleness bound of a `snapshot` dataset read from a database.
pub const DEFAULT_SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(600);

/// Most rows a `snapshot` dataset may hold (about 20-40 bytes each in memory): beyond it the
/// copy is refused with an error naming this bound, and `pushdown` is the engine to use.
pub const MAX_SNAPSHOT_ROWS: usize = 50_000_000;

impl DatasetConfig {
    /// The engine that answers this dataset's queries.
    pub fn query_engine(&self) -> QueryEngine {
        self.engine.unwrap_or(match self.source.csv {
            Some(_) => QueryEngine::Snapshot,
            None => QueryEngine::Pushdown,
        })
    }
}

fn default_period() -> Duration {
    DEFAULT_BUDGET_PERIOD
}
fn default_cache_window() -> Duration {
    DEFAULT_CACHE_WINDOW
}
fn default_snapshot_max_age() -> Duration {
    DEFAULT_SNAPSHOT_MAX_AGE
}

/// Where a dataset's rows live.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `sqlite://PATH` or `postgres://...`; absent: the gateway's own `[store]` database
    /// (the only place the consent filter can read consents from, in the same query).
    pub url: Option<String>,
    /// Table or view holding the rows (for `csv`: the in-memory table they are loaded into).
    pub table: String,
    /// A CSV file with a header row, for small datasets: loaded once per configuration into
    /// an in-memory SQLite database (at most `MAX_CSV_BYTES`), then queried like a table.
    pub csv: Option<PathBuf>,
}

/// Largest CSV source: CSV is for small cases; larger data belongs in a database, where
/// truncation and clamping run next to it.
pub const MAX_CSV_BYTES: u64 = 64 * 1024 * 1024;

/// A column's type and public bounds.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ColumnConfig {
    /// Integers (money in minor units), clamped to `[lower, upper]` before aggregation.
    Integer {
        /// Public lower bound.
        lower: i64,
        /// Public upper bound.
        upper: i64,
    },
    /// Text from a public list of categories; other values fall in no group.
    Categorical {
        /// The categories, released in this order (every one, even when empty).
        categories: Vec<String>,
    },
    /// Text with no public list of values (e.g. a merchant name): GROUP BY on it releases
    /// only keys whose noisy count passes a DP threshold, which costs delta as well as
    /// epsilon (see `threshold`).
    Key {},
}

/// Resolves relative SQLite and CSV source paths against the config file's directory.
pub(crate) fn resolve_paths(datasets: &mut [DatasetConfig], base: &Path) {
    for d in datasets {
        if let Some(csv) = d.source.csv.as_mut() {
            if csv.is_relative() {
                *csv = base.join(&*csv);
            }
        }
        let Some(url) = d.source.url.as_mut() else {
            continue;
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            if !path.starts_with('/') && !path.is_empty() {
                *url = format!("sqlite://{}", PathBuf::from(base).join(path).display());
            }
        }
    }
}

/// One `[[dataset.budget_tier]]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BudgetTier {
    /// Name policies grant it by (`BudgetTier::"<dataset>/<name>"`).
    pub name: String,
    /// Privacy loss one analyst in this tier may spend on the dataset per period.
    pub analyst_epsilon: f64,
    /// Delta one analyst in this tier may spend per period (keyed GROUP BY); absent: the
    /// dataset's `analyst_delta`.
    #[serde(default)]
    pub analyst_delta: Option<f64>,
}

impl BudgetTier {
    /// The Cedar resource id of this tier of `dataset`.
    pub fn resource_id(&self, dataset: &str) -> String {
        format!("{dataset}/{}", self.name)
    }
}

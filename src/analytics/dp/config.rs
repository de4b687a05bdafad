//! `[[dataset]]` tables in privgate.toml: what analysts may query, and how much privacy
//! loss they may spend on it.
//!
//! A dataset declares everything the sensitivity of a query depends on, so that no bound is
//! ever read from the data: the privacy unit (whose presence an answer must not reveal), how
//! many rows one unit may contribute (rows beyond it are dropped in `truncate_order`), and
//! per column its public bounds (integers: a clamp range; categorical columns: the category
//! list). Budgets are per analyst and per dataset (all analysts together), per period.

use crate::config::Problems;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
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
#[derive(Debug, Clone, Deserialize, PartialEq)]
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
    pub budget_tiers: Vec<super::tiers::BudgetTier>,
}

fn default_period() -> Duration {
    DEFAULT_BUDGET_PERIOD
}
fn default_cache_window() -> Duration {
    DEFAULT_CACHE_WINDOW
}

/// Where a dataset's rows live.
#[derive(Debug, Clone, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Deserialize, PartialEq)]
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

/// Adds a problem for everything about `datasets` the gateway could not serve safely.
pub(crate) fn validate(datasets: &[DatasetConfig], problems: &mut Problems) {
    let mut names = HashSet::new();
    for d in datasets {
        if !names.insert(d.name.as_str()) {
            problems.add(format!("dataset `{}` is defined twice", d.name));
        }
        validate_one(d, problems);
    }
}

fn validate_one(d: &DatasetConfig, problems: &mut Problems) {
    super::tiers::validate(d, problems);
    let mut add = |what: String| problems.add(format!("dataset `{}`: {what}", d.name));
    if !is_identifier(&d.name) {
        add("name must be letters, digits and _ (it is the SQL table name)".into());
    }
    for (what, column) in [
        ("privacy_unit", &d.privacy_unit),
        ("truncate_order", &d.truncate_order),
        ("source.table", &d.source.table),
    ] {
        if !is_identifier(column) {
            add(format!("{what} `{column}` must be letters, digits and _"));
        }
    }
    if d.max_rows_per_unit == 0 || d.max_rows_per_unit > MAX_ROWS_PER_UNIT_LIMIT {
        add(format!(
            "max_rows_per_unit must be 1 to {MAX_ROWS_PER_UNIT_LIMIT}"
        ));
    }
    for (what, eps) in [
        ("analyst_epsilon", d.analyst_epsilon),
        ("global_epsilon", d.global_epsilon),
    ] {
        if !(eps.is_finite() && eps > 0.0) {
            add(format!("{what} must be a positive number"));
        }
    }
    if d.global_epsilon < d.analyst_epsilon {
        add("global_epsilon must be at least analyst_epsilon".into());
    }
    if d.budget_period.as_millis() < 1000 || d.budget_period.as_millis() > i64::MAX as u128 {
        add("budget_period must be at least 1s".into());
    }
    if let Some(url) = &d.source.url {
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            add("source.url must start with sqlite: or postgres://".into());
        }
    }
    if d.source.url.is_some() && d.source.csv.is_some() {
        add("source: give url (a database) or csv (a file), not both".into());
    }
    if let Some(purpose) = &d.require_consent_purpose {
        if d.source.url.is_some() || d.source.csv.is_some() {
            add("require_consent_purpose needs the dataset in the gateway's own store (remove source.url and source.csv): consents are joined in the same query".into());
        }
        if purpose.is_empty()
            || !purpose
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            add("require_consent_purpose must be lower-case letters, digits and _".into());
        }
    }
    if d.columns.contains_key(&d.privacy_unit) {
        add("the privacy unit column cannot be a queryable column".into());
    }
    for (name, column) in &d.columns {
        if !is_identifier(name) {
            add(format!("column `{name}` must be letters, digits and _"));
        }
        match column {
            ColumnConfig::Integer { lower, upper } if lower > upper => {
                add(format!("column `{name}`: lower must not exceed upper"));
            }
            ColumnConfig::Categorical { categories } => {
                let distinct: HashSet<_> = categories.iter().collect();
                if categories.is_empty() || categories.len() > MAX_CATEGORIES {
                    add(format!(
                        "column `{name}`: categories must list 1 to {MAX_CATEGORIES} values"
                    ));
                }
                if distinct.len() != categories.len() {
                    add(format!("column `{name}`: categories must be distinct"));
                }
            }
            ColumnConfig::Integer { .. } | ColumnConfig::Key {} => {}
        }
    }
    super::contribution::validate(d, &mut add);
}

/// Letters, digits and `_`, not starting with a digit: safe to quote as an SQL identifier.
pub(crate) fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    const BASE: &str = r#"
[[listener]]
name = "public"
address = "127.0.0.1:8443"
cert = "server.pem"
key = "server.key.pem"
"#;

    const DATASET: &str = r#"
[[dataset]]
name = "transactions"
source = { url = "sqlite://data/bank.db", table = "transactions" }
privacy_unit = "customer_id"
max_rows_per_unit = 10
truncate_order = "id"
analyst_epsilon = 1.0
global_epsilon = 4.0

[dataset.column.amount]
type = "integer"
lower = 0
upper = 100000

[dataset.column.region]
type = "categorical"
categories = ["north", "south"]
"#;

    fn problems(dataset: &str) -> Vec<String> {
        match parse(
            Path::new("/etc/privgate/privgate.toml"),
            &format!("{BASE}{dataset}"),
        ) {
            Ok(_) => vec![],
            Err(e) => e.problems.into_iter().map(|p| p.message).collect(),
        }
    }

    #[test]
    fn a_valid_dataset_loads_with_defaults_and_a_resolved_source() {
        let config = parse(
            Path::new("/etc/privgate/privgate.toml"),
            &format!("{BASE}{DATASET}"),
        )
        .unwrap();
        let d = &config.datasets[0];
        assert_eq!(
            d.source.url.as_deref(),
            Some("sqlite:///etc/privgate/data/bank.db")
        );
        assert_eq!(d.budget_period, super::DEFAULT_BUDGET_PERIOD);
        assert_eq!(d.cache_window, super::DEFAULT_CACHE_WINDOW);
        let keyed = DATASET.replace(
            "max_rows_per_unit = 10",
            "max_rows_per_unit = 10\nmax_groups_per_unit = 2\nmax_rows_per_group = 5\n\
             analyst_delta = 1e-7\nglobal_delta = 1e-6\ndefault_query_delta = 1e-8",
        ) + "\n[dataset.column.merchant]\ntype = \"key\"\n";
        let config = parse(
            Path::new("/etc/privgate/privgate.toml"),
            &format!("{BASE}{keyed}"),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let d = &config.datasets[0];
        assert_eq!(
            (d.max_groups_per_unit, d.max_rows_per_group),
            (Some(2), Some(5))
        );
        assert_eq!(d.columns["merchant"], super::ColumnConfig::Key {});
        assert_eq!(d.default_query_delta, Some(1e-8));
        let csv = DATASET.replace(
            "url = \"sqlite://data/bank.db\", ",
            "csv = \"data/tx.csv\", ",
        );
        let config = parse(
            Path::new("/etc/privgate/privgate.toml"),
            &format!("{BASE}{csv}"),
        )
        .unwrap();
        assert_eq!(
            config.datasets[0].source.csv.as_deref(),
            Some(Path::new("/etc/privgate/data/tx.csv"))
        );
    }

    #[test]
    fn invalid_datasets_are_refused_with_what_is_wrong() {
        // (edit of the valid dataset, words the problem must contain)
        let cases: &[(&str, &str, &str)] = &[
            (
                "max_rows_per_unit = 10",
                "max_rows_per_unit = 0",
                "max_rows_per_unit must be 1 to",
            ),
            (
                "analyst_epsilon = 1.0",
                "analyst_epsilon = -1.0",
                "analyst_epsilon must be a positive",
            ),
            (
                "global_epsilon = 4.0",
                "global_epsilon = 0.5",
                "global_epsilon must be at least",
            ),
            ("lower = 0", "lower = 200000", "lower must not exceed upper"),
            (
                "[\"north\", \"south\"]",
                "[\"north\", \"north\"]",
                "categories must be distinct",
            ),
            ("[\"north\", \"south\"]", "[]", "categories must list"),
            (
                "privacy_unit = \"customer_id\"",
                "privacy_unit = \"customer id; DROP\"",
                "privacy_unit `customer id; DROP` must be",
            ),
            (
                "truncate_order = \"id\"",
                "truncate_order = \"\"",
                "truncate_order `` must be",
            ),
            (
                "name = \"transactions\"",
                "name = \"tx-2\"",
                "name must be letters",
            ),
            (
                "sqlite://data/bank.db",
                "mysql://db",
                "source.url must start with",
            ),
            (
                "global_epsilon = 4.0",
                "global_epsilon = 4.0\nrequire_consent_purpose = \"analytics\"",
                "require_consent_purpose needs the dataset in the gateway's own store",
            ),
            (
                "[dataset.column.region]",
                "[dataset.column.customer_id]",
                "privacy unit column cannot be a queryable column",
            ),
            ("type = \"integer\"", "type = \"float\"", "invalid TOML"),
            (
                "max_rows_per_unit = 10",
                "max_rows_per_unit = 10\nmax_groups_per_unit = 2",
                "declare both max_groups_per_unit and max_rows_per_group",
            ),
            (
                "max_rows_per_unit = 10",
                "max_rows_per_unit = 10\nmax_groups_per_unit = 11\nmax_rows_per_group = 2",
                "max_groups_per_unit must be 1 to max_rows_per_unit (10)",
            ),
            (
                "max_rows_per_unit = 10",
                "max_rows_per_unit = 10\nmax_groups_per_unit = 2\nmax_rows_per_group = 0",
                "max_rows_per_group must be 1 to max_rows_per_unit",
            ),
            (
                "global_epsilon = 4.0",
                "global_epsilon = 4.0\nanalyst_delta = 1e-6",
                "declare both analyst_delta and global_delta",
            ),
            (
                "global_epsilon = 4.0",
                "global_epsilon = 4.0\nanalyst_delta = 1e-6\nglobal_delta = 1.5",
                "global_delta must be a number strictly between 0 and 1",
            ),
            (
                "global_epsilon = 4.0",
                "global_epsilon = 4.0\nanalyst_delta = 1e-5\nglobal_delta = 1e-6",
                "global_delta must be at least analyst_delta",
            ),
            (
                "global_epsilon = 4.0",
                "global_epsilon = 4.0\nanalyst_delta = 1e-6\nglobal_delta = 1e-5\ndefault_query_delta = 1e-3",
                "default_query_delta must be positive and at most analyst_delta",
            ),
            (
                "global_epsilon = 4.0",
                "global_epsilon = 4.0\ndefault_query_delta = 1e-9",
                "default_query_delta needs analyst_delta",
            ),
            (
                "global_epsilon = 4.0",
                "global_epsilon = 4.0\n[[dataset.budget_tier]]\nname = \"senior\"\nanalyst_epsilon = 5.0",
                "budget_tier `senior`: analyst_epsilon must not exceed the dataset's global_epsilon",
            ),
            (
                "global_epsilon = 4.0",
                "global_epsilon = 4.0\n[[dataset.budget_tier]]\nname = \"a\"\nanalyst_epsilon = 2.0\n[[dataset.budget_tier]]\nname = \"a\"\nanalyst_epsilon = 0.0",
                "budget_tier `a`: is defined twice",
            ),
            (
                "global_epsilon = 4.0",
                "global_epsilon = 4.0\n[[dataset.budget_tier]]\nname = \"wide\"\nanalyst_epsilon = 2.0\nanalyst_delta = 1e-7",
                "budget_tier `wide`: analyst_delta needs the dataset's analyst_delta and global_delta",
            ),
            (
                "global_epsilon = 4.0",
                "global_epsilon = 4.0\nanalyst_delta = 1e-8\nglobal_delta = 1e-6\n[[dataset.budget_tier]]\nname = \"wide\"\nanalyst_epsilon = 2.0\nanalyst_delta = 1e-5",
                "budget_tier `wide`: analyst_delta must be positive and at most the dataset's global_delta",
            ),
            (
                "table = \"transactions\"",
                "table = \"transactions\", csv = \"tx.csv\"",
                "give url (a database) or csv (a file), not both",
            ),
        ];
        for (from, to, words) in cases {
            assert!(DATASET.contains(from), "{from}");
            let found = problems(&DATASET.replacen(from, to, 1));
            assert!(found.iter().any(|p| p.contains(words)), "{to}: {found:?}");
        }
        let twice = problems(&format!(
            "{DATASET}{}",
            DATASET.split("[dataset.column").next().unwrap()
        ));
        assert!(
            twice.iter().any(|p| p.contains("defined twice")),
            "{twice:?}"
        );
    }
}

//! What a `[[dataset]]` must satisfy before the gateway serves queries on it: identifiers
//! safe to quote in SQL, bounds and budgets that make the privacy guarantee hold, GROUP BY
//! bounds and deltas declared together, and budget tiers within the dataset's caps.

use super::{ColumnConfig, DatasetConfig, MAX_CATEGORIES, MAX_ROWS_PER_UNIT_LIMIT};
use crate::config::Problems;
use std::collections::HashSet;

/// Adds a problem for everything about `datasets` the gateway could not serve safely.
pub(crate) fn validate(datasets: &[DatasetConfig], problems: &mut Problems) {
    let mut names = HashSet::new();
    for (i, d) in datasets.iter().enumerate() {
        if !names.insert(d.name.as_str()) {
            problems.add(format!("dataset `{}` is defined twice", d.name));
        }
        validate_one(d, i, problems);
    }
}

fn validate_one(d: &DatasetConfig, index: usize, problems: &mut Problems) {
    validate_tiers(d, problems);
    let table = format!("dataset.{index}");
    let mut add = |what: String| problems.at(&table, format!("dataset `{}`: {what}", d.name));
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
    validate_group_bounds(d, &mut add);
}

/// Adds a problem for each tier the gateway could not apply safely.
fn validate_tiers(d: &DatasetConfig, problems: &mut Problems) {
    let mut names = HashSet::new();
    for tier in &d.budget_tiers {
        let mut add = |what: &str| {
            problems.add(format!(
                "dataset `{}`: budget_tier `{}`: {what}",
                d.name, tier.name
            ))
        };
        if !is_identifier(&tier.name) {
            add("name must be letters, digits and _");
        }
        if !names.insert(tier.name.as_str()) {
            add("is defined twice");
        }
        if !(tier.analyst_epsilon.is_finite() && tier.analyst_epsilon > 0.0) {
            add("analyst_epsilon must be a positive number");
        }
        if tier.analyst_epsilon > d.global_epsilon {
            add("analyst_epsilon must not exceed the dataset's global_epsilon");
        }
        match (tier.analyst_delta, d.global_delta) {
            (None, _) => {}
            (Some(_), None) => {
                add("analyst_delta needs the dataset's analyst_delta and global_delta")
            }
            (Some(delta), Some(global)) => {
                if !(delta.is_finite() && delta > 0.0 && delta <= global) {
                    add("analyst_delta must be positive and at most the dataset's global_delta");
                }
            }
        }
    }
}

/// Adds a problem for each GROUP BY bound or delta budget the gateway cannot use.
fn validate_group_bounds(d: &DatasetConfig, add: &mut impl FnMut(String)) {
    match (d.max_groups_per_unit, d.max_rows_per_group) {
        (None, None) => {}
        (Some(groups), Some(rows)) => {
            for (what, v) in [("max_groups_per_unit", groups), ("max_rows_per_group", rows)] {
                if v == 0 || v > d.max_rows_per_unit {
                    add(format!(
                        "{what} must be 1 to max_rows_per_unit ({}): a unit contributes no more rows than that in all",
                        d.max_rows_per_unit
                    ));
                }
            }
        }
        _ => add("declare both max_groups_per_unit and max_rows_per_group (GROUP BY needs both), or neither".into()),
    }
    match (d.analyst_delta, d.global_delta) {
        (None, None) => {}
        (Some(analyst), Some(global)) => {
            for (what, delta) in [("analyst_delta", analyst), ("global_delta", global)] {
                if !(delta.is_finite() && delta > 0.0 && delta < 1.0) {
                    add(format!("{what} must be a number strictly between 0 and 1"));
                }
            }
            if global < analyst {
                add("global_delta must be at least analyst_delta".into());
            }
        }
        _ => add("declare both analyst_delta and global_delta, or neither".into()),
    }
    if let Some(delta) = d.default_query_delta {
        match d.analyst_delta {
            Some(analyst) if delta.is_finite() && delta > 0.0 && delta <= analyst => {}
            Some(_) => add("default_query_delta must be positive and at most analyst_delta".into()),
            None => add("default_query_delta needs analyst_delta and global_delta".into()),
        }
    }
}

/// Letters, digits and `_`, not starting with a digit: safe to quote as an SQL identifier.
fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

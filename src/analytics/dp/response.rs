//! The answer body: columns, one row per GROUP BY cell with each estimate and its 95%
//! interval where OpenDP has an accuracy helper, the privacy loss and the budget left.

use super::answer::{atto, delta_of, epsilon_of, nano, Period, Released};
use super::mechanism::{self, Plan};
use super::query::{Aggregate, Output, Query};
use crate::config::dataset::DatasetConfig;
use serde_json::{json, Value};
use std::time::Duration;

/// What the clients see about the intervals.
const NOTE: &str = "Estimates are differentially private (OpenDP). Intervals cover the noise \
only, at 95%: the bias from clamping values to the declared bounds and from dropping a unit's \
rows beyond max_rows_per_unit is not included. AVG and quantiles have no interval (OpenDP has \
no accuracy helper for them).";

pub(super) fn budget(config: &DatasetConfig, (mine, all): (i64, i64), period: &Period) -> Value {
    json!({
        "epsilon_left": epsilon_of((nano(config.analyst_epsilon) - mine).max(0)),
        "global_epsilon_left": epsilon_of((nano(config.global_epsilon) - all).max(0)),
        "refreshes_at": humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_millis(period.end.max(0) as u64)
        ).to_string(),
    })
}

/// Adds the delta left (analyst, all analysts) to a budget object.
pub(super) fn add_delta_left(config: &DatasetConfig, (mine, all): (i64, i64), budget: &mut Value) {
    if let (Some(analyst), Some(global)) = (config.analyst_delta, config.global_delta) {
        budget["delta_left"] = json!(delta_of((atto(analyst) - mine).max(0)));
        budget["global_delta_left"] = json!(delta_of((atto(global) - all).max(0)));
    }
}

/// What the clients see about keys released above a threshold.
const KEYS_NOTE: &str = "Keys come from the data and are released only where their noisy count \
reached key_threshold (OpenDP's thresholded discrete Laplace, which costs delta): a key absent \
here may still be in the data, and a released count is biased upwards near the threshold.";

/// The answer body: columns, and rows once released (a dry run has none).
pub(super) fn skeleton(
    config: &DatasetConfig,
    query: &Query,
    plan: &Plan,
    released: Option<(&[Vec<String>], &Released)>,
) -> Value {
    let columns: Vec<String> = query
        .outputs
        .iter()
        .map(|o| match o {
            Output::Group(g) => g.clone(),
            Output::Aggregate(a) => a.label(),
        })
        .collect();
    let aggregates: Vec<Value> = query
        .aggregates()
        .zip(&plan.per_aggregate)
        .map(|(a, releases)| {
            json!({
                "aggregate": a.label(),
                "epsilon": releases.iter().map(|r| r.epsilon).sum::<f64>(),
                "noise_scale": releases.iter().map(|r| r.scale).collect::<Vec<_>>(),
                "plus_minus_95": single_interval(a, releases),
            })
        })
        .collect();
    let mut body = json!({
        "dataset": config.name,
        "columns": columns,
        "aggregates": aggregates,
        "dry_run": false,
        "cached": false,
        "delta_spent": 0.0,
        "note": NOTE,
    });
    if let Some(threshold) = plan
        .per_aggregate
        .iter()
        .flatten()
        .find_map(|r| r.threshold)
    {
        body["key_threshold"] = json!(threshold);
        body["keys_note"] = json!(KEYS_NOTE);
    }
    if let Some((cells, released)) = released {
        body["rows"] = Value::Array(rows(query, plan, cells, released));
    }
    body
}

fn single_interval(aggregate: &Aggregate, releases: &[mechanism::Release]) -> Value {
    match (aggregate, releases) {
        (Aggregate::Count | Aggregate::Sum(_), [r]) => json!(r.plus_minus_95),
        _ => Value::Null,
    }
}

fn rows(query: &Query, plan: &Plan, cells: &[Vec<String>], released: &Released) -> Vec<Value> {
    cells
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            let mut aggregate_index = 0;
            let values: Vec<Value> = query
                .outputs
                .iter()
                .map(|o| match o {
                    Output::Group(g) => {
                        let position = query.group_by.iter().position(|c| c == g).unwrap_or(0);
                        json!(cell.get(position))
                    }
                    Output::Aggregate(a) => {
                        let value = cell_value(
                            a,
                            &plan.per_aggregate[aggregate_index],
                            &released[aggregate_index],
                            i,
                        );
                        aggregate_index += 1;
                        value
                    }
                })
                .collect();
            Value::Array(values)
        })
        .collect()
}

fn cell_value(
    aggregate: &Aggregate,
    releases: &[mechanism::Release],
    values: &[Vec<i64>],
    cell: usize,
) -> Value {
    let at = |r: usize| {
        values
            .get(r)
            .and_then(|v| v.get(cell).or(v.first()))
            .copied()
            .unwrap_or(0)
    };
    match aggregate {
        Aggregate::Count | Aggregate::Sum(_) => {
            let estimate = at(0);
            let pm = releases.first().and_then(|r| r.plus_minus_95);
            json!({
                "estimate": estimate,
                "plus_minus_95": pm,
                "interval_95": pm.map(|pm| [estimate as f64 - pm, estimate as f64 + pm]),
            })
        }
        Aggregate::Avg(_) => {
            let (sum, count) = (at(0), at(1));
            // A noisy count below 1 leaves no meaningful mean (and no division by ~0).
            let estimate = (count >= 1).then(|| sum as f64 / count as f64);
            json!({ "estimate": estimate, "noisy_sum": sum, "noisy_count": count, "plus_minus_95": null })
        }
        Aggregate::Quantile(..) => json!({ "estimate": at(0), "plus_minus_95": null }),
    }
}

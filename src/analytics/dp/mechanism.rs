//! The OpenDP side: sensitivities from OpenDP's own transformations, noise from OpenDP's
//! measurements, privacy loss from their privacy maps, accuracy from its accuracy helpers.
//! Nothing here samples noise or derives a privacy loss by hand.
//!
//! The database (see `pushdown`) truncates each privacy unit to `max_rows_per_unit` rows
//! (grouped queries: also to `max_rows_per_group` rows in each of at most
//! `max_groups_per_unit` groups) and clamps values, then aggregates; one unit can therefore
//! change the dataset by at most `max_rows_per_unit` rows, or for a grouped query by the
//! tighter `min(max_rows_per_unit, max_groups_per_unit x max_rows_per_group)` rows
//! (symmetric distance, `contribution::rows_per_unit`). Each released aggregate's L1 sensitivity is
//! read from the OpenDP transformation that computes it from such rows (`make_count`,
//! `make_count_by_categories`, `make_clamp` then `make_sum`) at that distance, and the
//! discrete Laplace measurement (`make_laplace` on integers) is applied to the pushed-down
//! aggregate with that sensitivity. Grouped sums use the ungrouped clamped sum's
//! sensitivity: groups partition the rows, so one unit's rows move the vector of group sums
//! by at most what they move the total. Quantiles run OpenDP's `make_private_quantile` on
//! the truncated, clamped rows themselves.
//!
//! OpenDP's Measurement is not `Send`: everything here runs on a blocking worker, and only
//! plain numbers cross back.

use super::contribution;
use super::query::{Aggregate, Query};
use crate::config::dataset::{ColumnConfig, DatasetConfig};
use opendp::accuracy::{
    accuracy_to_discrete_laplacian_scale, discrete_laplacian_scale_to_accuracy,
};
use opendp::combinators::make_chain_tt;
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::error::Fallible;
use opendp::measurements::{make_laplace, make_private_quantile};
use opendp::measures::MaxDivergence;
use opendp::metrics::{AbsoluteDistance, L1Distance, SymmetricDistance};
use opendp::transformations::{make_clamp, make_count, make_count_by_categories, make_sum};

/// Significance of the intervals reported: 95% (alpha = 0.05).
pub(crate) const ALPHA: f64 = 0.05;

/// Most candidates a quantile is chosen among (a grid over the column's bounds): the
/// selection's work grows with their number and finer grids add little on money columns.
pub(crate) const MAX_QUANTILE_CANDIDATES: i64 = 512;

/// How the analyst sets the privacy/accuracy trade-off of one query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Privacy {
    /// Total epsilon for the query, shared equally among its aggregates.
    Epsilon(f64),
    /// Target half-width of the 95% interval of every COUNT and SUM.
    Accuracy(f64),
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum PlanError {
    /// The analyst's parameters cannot be met (message says why and what works).
    #[error("{0}")]
    Invalid(String),
    /// OpenDP refused a constructor or map (should not happen on a validated dataset).
    #[error("OpenDP: {0}")]
    OpenDp(String),
}

fn opendp(e: opendp::error::Error) -> PlanError {
    PlanError::OpenDp(format!(
        "{:?}: {}",
        e.variant,
        e.message.unwrap_or_default()
    ))
}

/// What is computed from the pushed-down data, and how it is noised.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Statistic {
    /// Row counts per cell.
    Count,
    /// Clamped sums of an integer column per cell.
    Sum {
        /// The column.
        column: String,
        /// Its clamp bounds.
        bounds: (i64, i64),
    },
    /// A quantile of an integer column (no GROUP BY).
    Quantile {
        /// The column.
        column: String,
        /// Its clamp bounds (the candidate grid spans them).
        bounds: (i64, i64),
        /// Which quantile, in (0, 1).
        q: f64,
    },
}

/// One noisy release: a statistic, the noise scale OpenDP adds, and what it costs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Release {
    /// What is released.
    pub statistic: Statistic,
    /// The L1 sensitivity (counts, sums), from the OpenDP transformation's stability map.
    pub sensitivity: Option<i64>,
    /// The measurement's noise scale.
    pub scale: f64,
    /// Privacy loss (epsilon) from the measurement's privacy map.
    pub epsilon: f64,
    /// Half-width of the 95% interval of the noise (OpenDP's accuracy helper), if one exists.
    pub plus_minus_95: Option<f64>,
    /// Privacy loss delta from the measurement's privacy map (0 but for thresholded keys).
    pub delta: f64,
    /// Keys whose noisy count is below this are not released (thresholded keys only).
    pub threshold: Option<i64>,
}

/// The releases a query needs, in aggregate order (AVG is a sum release then a count
/// release), and their total privacy loss (basic composition: losses add up).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Releases per aggregate.
    pub per_aggregate: Vec<Vec<Release>>,
    /// Total epsilon.
    pub epsilon: f64,
    /// Total delta (0 but for thresholded keys).
    pub delta: f64,
}

/// Plans `query`: sensitivities, scales and losses, all from OpenDP. Run on a blocking worker.
pub(crate) fn plan(
    dataset: &DatasetConfig,
    query: &Query,
    privacy: Privacy,
) -> Result<Plan, PlanError> {
    let aggregates: Vec<&Aggregate> = query.aggregates().collect();
    let shares = aggregates
        .iter()
        .map(|a| if matches!(a, Aggregate::Avg(_)) { 2 } else { 1 })
        .sum::<usize>();
    if let Privacy::Epsilon(e) = privacy {
        if !(e.is_finite() && e > 0.0) {
            return Err(PlanError::Invalid(
                "epsilon must be a positive number".into(),
            ));
        }
    }
    if let Privacy::Accuracy(a) = privacy {
        if !(a.is_finite() && a > 0.0) {
            return Err(PlanError::Invalid(
                "accuracy must be a positive number".into(),
            ));
        }
    }
    if query.keyed {
        return Err(PlanError::OpenDp(
            "a keyed query is planned by `threshold`".into(),
        ));
    }
    let d_in = contribution::rows_per_unit(dataset, !query.group_by.is_empty());
    let cells = cell_labels(dataset, &query.group_by);
    let mut per_aggregate = Vec::new();
    let mut total = 0.0;
    for aggregate in aggregates {
        let statistics = statistics(dataset, aggregate);
        let mut releases = Vec::new();
        for statistic in statistics {
            let release = match privacy {
                Privacy::Epsilon(e) => {
                    release_for_epsilon(statistic, d_in, &cells, e / shares as f64)?
                }
                Privacy::Accuracy(a) => {
                    release_for_accuracy(statistic, d_in, &cells, a, aggregate)?
                }
            };
            total += release.epsilon;
            releases.push(release);
        }
        per_aggregate.push(releases);
    }
    Ok(Plan {
        per_aggregate,
        epsilon: total,
        delta: 0.0,
    })
}

fn bounds(dataset: &DatasetConfig, column: &str) -> (i64, i64) {
    match dataset.columns.get(column) {
        Some(ColumnConfig::Integer { lower, upper }) => (*lower, *upper),
        // The parser admits only declared integer columns here.
        _ => (0, 0),
    }
}

fn statistics(dataset: &DatasetConfig, aggregate: &Aggregate) -> Vec<Statistic> {
    match aggregate {
        Aggregate::Count => vec![Statistic::Count],
        Aggregate::Sum(c) => vec![Statistic::Sum {
            column: c.clone(),
            bounds: bounds(dataset, c),
        }],
        Aggregate::Avg(c) => vec![
            Statistic::Sum {
                column: c.clone(),
                bounds: bounds(dataset, c),
            },
            Statistic::Count,
        ],
        Aggregate::Quantile(c, q) => vec![Statistic::Quantile {
            column: c.clone(),
            bounds: bounds(dataset, c),
            q: *q,
        }],
    }
}

/// The GROUP BY cells in release order: every combination of the declared categories
/// (one empty cell when ungrouped). Each cell is its categories joined by U+001F.
pub(crate) fn cell_labels(dataset: &DatasetConfig, group_by: &[String]) -> Vec<Vec<String>> {
    let mut cells: Vec<Vec<String>> = vec![vec![]];
    for column in group_by {
        let categories = match dataset.columns.get(column) {
            Some(ColumnConfig::Categorical { categories }) => categories.clone(),
            _ => vec![],
        };
        cells = cells
            .into_iter()
            .flat_map(|prefix| {
                categories.iter().map(move |c| {
                    let mut cell = prefix.clone();
                    cell.push(c.clone());
                    cell
                })
            })
            .collect();
    }
    cells
}

/// The L1 sensitivity of a count or clamped sum over rows where one unit contributes at
/// most `d_in` rows, read from OpenDP's transformation for it.
pub(crate) fn sensitivity(
    statistic: &Statistic,
    d_in: u32,
    cells: &[Vec<String>],
) -> Result<i64, PlanError> {
    let rows = VectorDomain::new(AtomDomain::<i64>::default());
    match statistic {
        Statistic::Count if cells.len() == 1 && cells[0].is_empty() => {
            make_count::<i64, i64>(rows, SymmetricDistance).and_then(|t| t.map(&d_in))
        }
        Statistic::Count => {
            let keys: Vec<String> = cells.iter().map(|c| c.join("\u{1f}")).collect();
            make_count_by_categories::<L1Distance<i64>, String, i64>(
                VectorDomain::new(AtomDomain::default()),
                SymmetricDistance,
                keys,
                false,
            )
            .and_then(|t| t.map(&d_in))
        }
        Statistic::Sum { bounds, .. } => clamped_sum(*bounds).and_then(|t| t.map(&d_in)),
        Statistic::Quantile { .. } => {
            return Err(PlanError::OpenDp("a quantile has no L1 sensitivity".into()))
        }
    }
    .map_err(opendp)
}

/// Integer rows to their clamped sum, as OpenDP builds it.
pub(crate) type ClampedSum = opendp::core::Transformation<
    VectorDomain<AtomDomain<i64>>,
    SymmetricDistance,
    AtomDomain<i64>,
    AbsoluteDistance<i64>,
>;

/// OpenDP's clamp-then-sum transformation over integer rows.
pub(crate) fn clamped_sum(bounds: (i64, i64)) -> Fallible<ClampedSum> {
    let clamp = make_clamp(
        VectorDomain::new(AtomDomain::<i64>::default()),
        SymmetricDistance,
        bounds,
    )?;
    let sum = make_sum(clamp.output_domain.clone(), clamp.output_metric.clone())?;
    make_chain_tt(&sum, &clamp)
}

/// The privacy loss of discrete Laplace noise at `scale` on an aggregate of `sensitivity`.
pub(crate) fn laplace_loss(scale: f64, sensitivity: i64, cells: usize) -> Result<f64, PlanError> {
    if cells == 1 {
        make_laplace::<_, _, MaxDivergence>(
            AtomDomain::<i64>::default(),
            AbsoluteDistance::<i64>::default(),
            scale,
            None,
        )
        .and_then(|m| m.map(&sensitivity))
    } else {
        make_laplace::<_, _, MaxDivergence>(
            VectorDomain::new(AtomDomain::<i64>::default()),
            L1Distance::<i64>::default(),
            scale,
            None,
        )
        .and_then(|m| m.map(&sensitivity))
    }
    .map_err(opendp)
}

/// The quantile candidates: a grid over the bounds, both ends included.
pub(crate) fn quantile_candidates(bounds: (i64, i64)) -> Vec<i64> {
    let (lower, upper) = bounds;
    let span = (upper as i128 - lower as i128).max(0);
    let step = (span / (MAX_QUANTILE_CANDIDATES as i128 - 1)).max(1);
    let mut candidates: Vec<i64> = (0..MAX_QUANTILE_CANDIDATES as i128)
        .map(|i| lower as i128 + i * step)
        .take_while(|c| *c < upper as i128)
        .map(|c| c as i64)
        .collect();
    candidates.push(upper);
    candidates
}

/// OpenDP's private quantile over truncated, clamped rows.
pub(crate) fn quantile_measurement(
    bounds: (i64, i64),
    q: f64,
    scale: f64,
) -> Fallible<
    opendp::core::Measurement<VectorDomain<AtomDomain<i64>>, SymmetricDistance, MaxDivergence, i64>,
> {
    make_private_quantile(
        VectorDomain::new(AtomDomain::<i64>::default()),
        SymmetricDistance,
        MaxDivergence,
        quantile_candidates(bounds),
        q,
        scale,
    )
}

fn release_for_epsilon(
    statistic: Statistic,
    d_in: u32,
    cells: &[Vec<String>],
    epsilon: f64,
) -> Result<Release, PlanError> {
    if let Statistic::Quantile { bounds, q, .. } = &statistic {
        // The loss is inversely proportional to the scale: measure it at scale 1.
        let unit = quantile_measurement(*bounds, *q, 1.0)
            .and_then(|m| m.map(&d_in))
            .map_err(opendp)?;
        let scale = unit / epsilon;
        let loss = quantile_measurement(*bounds, *q, scale)
            .and_then(|m| m.map(&d_in))
            .map_err(opendp)?;
        return Ok(Release {
            statistic,
            sensitivity: None,
            scale,
            epsilon: loss,
            plus_minus_95: None,
            delta: 0.0,
            threshold: None,
        });
    }
    let sensitivity = sensitivity(&statistic, d_in, cells)?;
    let scale = sensitivity as f64 / epsilon;
    let loss = laplace_loss(scale, sensitivity, cells.len())?;
    Ok(laplace_release(statistic, sensitivity, scale, loss))
}

fn release_for_accuracy(
    statistic: Statistic,
    d_in: u32,
    cells: &[Vec<String>],
    accuracy: f64,
    aggregate: &Aggregate,
) -> Result<Release, PlanError> {
    if matches!(aggregate, Aggregate::Avg(_) | Aggregate::Quantile(..)) {
        return Err(PlanError::Invalid(format!(
            "{}: OpenDP has no accuracy helper for it; give epsilon instead (accuracy targets work for COUNT and SUM)",
            aggregate.label()
        )));
    }
    let sensitivity = sensitivity(&statistic, d_in, cells)?;
    let scale = accuracy_to_discrete_laplacian_scale(accuracy, ALPHA).map_err(opendp)?;
    let loss = finite(laplace_loss(scale, sensitivity, cells.len())?)?;
    Ok(laplace_release(statistic, sensitivity, scale, loss))
}

/// A count or sum released with discrete Laplace noise at `scale` (pure epsilon-DP).
fn laplace_release(statistic: Statistic, sensitivity: i64, scale: f64, loss: f64) -> Release {
    Release {
        statistic,
        sensitivity: Some(sensitivity),
        scale,
        epsilon: loss,
        plus_minus_95: discrete_laplacian_scale_to_accuracy(scale, ALPHA).ok(),
        delta: 0.0,
        threshold: None,
    }
}

/// The loss, refused when infinite (an accuracy target too tight for any epsilon).
pub(super) fn finite(loss: f64) -> Result<f64, PlanError> {
    if loss.is_finite() {
        Ok(loss)
    } else {
        Err(PlanError::Invalid(
            "that accuracy cannot be reached at any finite epsilon".into(),
        ))
    }
}

/// A clamped sum per released key (keyed GROUP BY): a vector whose length is known only
/// at release, so its loss is read from the vector measurement's map (which does not
/// depend on the length), at the sensitivity OpenDP's clamp-then-sum gives at `d_in`.
pub(crate) fn keyed_sum_release(
    dataset: &DatasetConfig,
    column: &str,
    d_in: u32,
    privacy: Privacy,
) -> Result<Release, PlanError> {
    let statistic = Statistic::Sum {
        column: column.to_owned(),
        bounds: bounds(dataset, column),
    };
    let sensitivity = sensitivity(&statistic, d_in, &[vec![]])?;
    let scale = match privacy {
        Privacy::Epsilon(e) => sensitivity as f64 / e,
        Privacy::Accuracy(a) => accuracy_to_discrete_laplacian_scale(a, ALPHA).map_err(opendp)?,
    };
    // Any number of cells but one: the vector measurement.
    let loss = finite(laplace_loss(scale, sensitivity, usize::MAX)?)?;
    Ok(laplace_release(statistic, sensitivity, scale, loss))
}

/// Adds OpenDP's discrete Laplace noise at `scale` to exact integer aggregates.
pub(crate) fn noisy(values: &[i64], scale: f64) -> Result<Vec<i64>, PlanError> {
    if values.len() == 1 {
        let m = make_laplace::<_, _, MaxDivergence>(
            AtomDomain::<i64>::default(),
            AbsoluteDistance::<i64>::default(),
            scale,
            None,
        )
        .map_err(opendp)?;
        return Ok(vec![m.invoke(&values[0]).map_err(opendp)?]);
    }
    let m = make_laplace::<_, _, MaxDivergence>(
        VectorDomain::new(AtomDomain::<i64>::default()),
        L1Distance::<i64>::default(),
        scale,
        None,
    )
    .map_err(opendp)?;
    m.invoke(&values.to_vec()).map_err(opendp)
}

/// OpenDP's private quantile of `rows` (truncated and clamped by the database).
pub(crate) fn noisy_quantile(
    rows: &[i64],
    bounds: (i64, i64),
    q: f64,
    scale: f64,
) -> Result<i64, PlanError> {
    quantile_measurement(bounds, q, scale)
        .and_then(|m| m.invoke(&rows.to_vec()))
        .map_err(opendp)
}

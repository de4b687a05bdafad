//! GROUP BY a key column (text with no public value list, e.g. a merchant): the keys come
//! from the data, so releasing one can reveal that some unit has it. OpenDP's thresholded
//! discrete Laplace (`make_laplace_threshold` over a map of counts, output measure
//! `Approximate<MaxDivergence>`) adds noise to every key's count and releases only keys
//! whose noisy count reaches a threshold; its privacy map gives (epsilon, delta).
//!
//! One unit changes the map of counts by at most (keys changed, L1, L-infinity) =
//! `contribution::key_distance`: `max_groups_per_unit` keys, `min(max_rows_per_unit,
//! groups x rows per group)` in all, `max_rows_per_group` in any one. The plan takes the
//! analyst's epsilon (or accuracy) for the scale and the analyst's delta for the threshold:
//! the smallest threshold whose privacy map, evaluated by OpenDP at that distance, gives a
//! delta no larger than asked. Nothing here computes a loss or draws noise by hand.
//!
//! SUM and AVG by key come with the COUNT(*) (the parser insists on one): the count's
//! release decides the keys, which are then public, and each sum is a second release, with
//! OpenDP's discrete Laplace, over those keys only; its loss is added (see `plan`).

use super::answer::{self, Released};
use super::contribution;
use super::mechanism::{self, Plan, PlanError, Privacy, Release, Statistic, ALPHA};
use super::pushdown::Tally;
use super::query::{Aggregate, Query};
use crate::config::dataset::DatasetConfig;
use opendp::accuracy::{
    accuracy_to_discrete_laplacian_scale, discrete_laplacian_scale_to_accuracy,
};
use opendp::core::Measurement;
use opendp::domains::{AtomDomain, MapDomain};
use opendp::measurements::make_laplace_threshold;
use opendp::measures::{Approximate, MaxDivergence};
use opendp::metrics::{AbsoluteDistance, L01InfDistance};
use std::collections::HashMap;

/// Largest threshold searched: beyond it the noise swamps any count a bank holds.
const MAX_THRESHOLD: i64 = 1 << 40;

/// Counts per key to the keys released above the threshold, with their noisy counts.
pub(crate) type KeyedCounts = Measurement<
    MapDomain<AtomDomain<String>, AtomDomain<i64>>,
    L01InfDistance<AbsoluteDistance<i64>>,
    Approximate<MaxDivergence>,
    HashMap<String, i64>,
>;

fn opendp(e: opendp::error::Error) -> PlanError {
    PlanError::OpenDp(format!(
        "{:?}: {}",
        e.variant,
        e.message.unwrap_or_default()
    ))
}

/// OpenDP's thresholded discrete Laplace over a map of counts.
pub(crate) fn measurement(scale: f64, threshold: i64) -> Result<KeyedCounts, PlanError> {
    make_laplace_threshold(
        MapDomain::new(
            AtomDomain::<String>::default(),
            AtomDomain::<i64>::default(),
        ),
        L01InfDistance::<AbsoluteDistance<i64>>::default(),
        scale,
        threshold,
        None,
    )
    .map_err(opendp)
}

/// The (epsilon, delta) OpenDP's map gives at `distance` for this scale and threshold.
pub(crate) fn loss(
    scale: f64,
    threshold: i64,
    distance: (u32, i64, i64),
) -> Result<(f64, f64), PlanError> {
    measurement(scale, threshold)?
        .map(&distance)
        .map_err(opendp)
}

/// Plans a keyed query: the COUNT(*) that selects the keys (scale from its epsilon share or
/// the accuracy, threshold from delta), then per SUM or AVG a noisy sum over the released
/// keys. The key set is the count's output, public once released, so the sums are a second
/// release on a fixed key set composed after it: losses add up, delta is the count's. AVG
/// divides its sum by the released count (post-processing), so it costs one share.
pub(crate) fn plan(
    dataset: &DatasetConfig,
    query: &Query,
    privacy: Privacy,
    delta: f64,
) -> Result<Plan, PlanError> {
    if !(delta.is_finite() && delta > 0.0 && delta < 1.0) {
        return Err(PlanError::Invalid(
            "delta must be a number strictly between 0 and 1".into(),
        ));
    }
    let aggregates: Vec<&Aggregate> = query.aggregates().collect();
    let privacy = match privacy {
        Privacy::Epsilon(e) if e.is_finite() && e > 0.0 => {
            Privacy::Epsilon(e / aggregates.len() as f64)
        }
        Privacy::Accuracy(a) if a.is_finite() && a > 0.0 => privacy,
        Privacy::Epsilon(_) => {
            return Err(PlanError::Invalid(
                "epsilon must be a positive number".into(),
            ))
        }
        Privacy::Accuracy(_) => {
            return Err(PlanError::Invalid(
                "accuracy must be a positive number".into(),
            ))
        }
    };
    let count = count_release(dataset, privacy, delta)?;
    // The same count again, for AVG: no new noise, nothing spent.
    let reused = Release {
        epsilon: 0.0,
        delta: 0.0,
        ..count.clone()
    };
    let d_in = contribution::rows_per_unit(dataset, true);
    let mut per_aggregate = Vec::new();
    for aggregate in aggregates {
        per_aggregate.push(match aggregate {
            Aggregate::Count => vec![count.clone()],
            Aggregate::Sum(c) => vec![mechanism::keyed_sum_release(dataset, c, d_in, privacy)?],
            Aggregate::Avg(c) => vec![
                mechanism::keyed_sum_release(dataset, c, d_in, privacy)?,
                reused.clone(),
            ],
            Aggregate::Quantile(..) => {
                return Err(PlanError::Invalid(
                    "quantiles are released without GROUP BY only".into(),
                ))
            }
        });
    }
    Ok(Plan {
        epsilon: per_aggregate.iter().flatten().map(|r| r.epsilon).sum(),
        delta: count.delta,
        per_aggregate,
    })
}

/// The thresholded COUNT(*) release.
fn count_release(
    dataset: &DatasetConfig,
    privacy: Privacy,
    delta: f64,
) -> Result<Release, PlanError> {
    // The parser admits keyed queries only on datasets with GROUP BY bounds.
    let distance = contribution::key_distance(dataset)
        .ok_or_else(|| PlanError::OpenDp("no GROUP BY bounds".into()))?;
    let (_, l1, li) = distance;
    let scale = match privacy {
        Privacy::Epsilon(e) => l1 as f64 / e,
        Privacy::Accuracy(a) => accuracy_to_discrete_laplacian_scale(a, ALPHA).map_err(opendp)?,
    };
    let threshold = smallest_threshold(scale, distance, li, delta)?;
    let (epsilon, delta_spent) = loss(scale, threshold, distance)?;
    let epsilon = mechanism::finite(epsilon)?;
    Ok(Release {
        statistic: Statistic::Count,
        sensitivity: Some(l1),
        scale,
        epsilon,
        plus_minus_95: discrete_laplacian_scale_to_accuracy(scale, ALPHA).ok(),
        delta: delta_spent,
        threshold: Some(threshold),
    })
}

/// The smallest threshold (at least the L-infinity distance, as OpenDP requires) whose
/// delta, by OpenDP's map, is at most `delta`. The map's delta falls as the threshold rises
/// (a tail probability), so a doubling then a bisection finds it.
fn smallest_threshold(
    scale: f64,
    distance: (u32, i64, i64),
    li: i64,
    delta: f64,
) -> Result<i64, PlanError> {
    let fits = |t: i64| -> Result<bool, PlanError> { Ok(loss(scale, t, distance)?.1 <= delta) };
    let mut high = li.max(1);
    while !fits(high)? {
        if high >= MAX_THRESHOLD {
            return Err(PlanError::Invalid(format!(
                "delta {delta} is too small for this epsilon: no threshold up to {MAX_THRESHOLD} reaches it; ask a larger delta or epsilon"
            )));
        }
        high = high.saturating_mul(2).min(MAX_THRESHOLD);
    }
    // Invariant: `high` fits, `low` does not (or is below what OpenDP accepts).
    let mut low = li.max(1) - 1;
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if fits(mid)? {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(high)
}

/// Releases the keys whose noisy count reaches the plan's threshold, sorted by key, with
/// their noisy counts: OpenDP's measurement applied to the exact counts.
pub(crate) fn release(
    plan: &Plan,
    counts: HashMap<String, i64>,
) -> Result<Vec<(String, i64)>, PlanError> {
    let release = plan
        .per_aggregate
        .iter()
        .flatten()
        .find(|r| r.epsilon > 0.0 && matches!(r.statistic, Statistic::Count))
        .ok_or_else(|| PlanError::OpenDp("a keyed plan without its count".into()))?;
    let threshold = release
        .threshold
        .ok_or_else(|| PlanError::OpenDp("a keyed plan without threshold".into()))?;
    let released = measurement(release.scale, threshold)?
        .invoke(&counts)
        .map_err(opendp)?;
    let mut keys: Vec<(String, i64)> = released.into_iter().collect();
    // Sorting is post-processing: the order carries nothing about the input order.
    keys.sort();
    Ok(keys)
}

/// The released keys (as one-column cells) and, per aggregate and release, one value per
/// key: the noisy counts, and OpenDP's discrete Laplace on the exact sums of those keys.
pub(crate) fn release_all(
    plan: &Plan,
    tally: &Tally,
) -> Result<(Vec<Vec<String>>, Released), PlanError> {
    let counts = tally
        .cells
        .iter()
        .filter_map(|(key, (count, _))| key.first().map(|k| (k.clone(), *count)))
        .collect();
    let keys = release(plan, counts)?;
    let cells: Vec<Vec<String>> = keys.iter().map(|(k, _)| vec![k.clone()]).collect();
    let noisy_counts: Vec<i64> = keys.iter().map(|(_, v)| *v).collect();
    let mut out = Vec::new();
    for releases in &plan.per_aggregate {
        let mut per_release = Vec::new();
        for r in releases {
            per_release.push(match &r.statistic {
                Statistic::Sum { column, .. } => {
                    mechanism::noisy(&answer::exact(tally, &cells, Some(column)), r.scale)?
                }
                _ => noisy_counts.clone(),
            });
        }
        out.push(per_release);
    }
    Ok((cells, out))
}

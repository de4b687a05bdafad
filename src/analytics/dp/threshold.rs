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
//! Only COUNT(*) is released by key (the parser refuses sums and means): a noisy sum per
//! released key is a second release over the keys the first made public, its loss added;
//! not composed here yet.

use super::config::DatasetConfig;
use super::contribution;
use super::mechanism::{Plan, PlanError, Privacy, Release, Statistic, ALPHA};
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
pub type KeyedCounts = Measurement<
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
pub fn measurement(scale: f64, threshold: i64) -> Result<KeyedCounts, PlanError> {
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
pub fn loss(
    scale: f64,
    threshold: i64,
    distance: (u32, i64, i64),
) -> Result<(f64, f64), PlanError> {
    measurement(scale, threshold)?
        .map(&distance)
        .map_err(opendp)
}

/// Plans a keyed COUNT(*): scale from epsilon (or accuracy), threshold from delta.
pub fn plan(dataset: &DatasetConfig, privacy: Privacy, delta: f64) -> Result<Plan, PlanError> {
    if !(delta.is_finite() && delta > 0.0 && delta < 1.0) {
        return Err(PlanError::Invalid(
            "delta must be a number strictly between 0 and 1".into(),
        ));
    }
    // The parser admits keyed queries only on datasets with GROUP BY bounds.
    let distance = contribution::key_distance(dataset)
        .ok_or_else(|| PlanError::OpenDp("no GROUP BY bounds".into()))?;
    let (_, l1, li) = distance;
    let scale = match privacy {
        Privacy::Epsilon(e) if e.is_finite() && e > 0.0 => l1 as f64 / e,
        Privacy::Accuracy(a) if a.is_finite() && a > 0.0 => {
            accuracy_to_discrete_laplacian_scale(a, ALPHA).map_err(opendp)?
        }
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
    let threshold = smallest_threshold(scale, distance, li, delta)?;
    let (epsilon, delta_spent) = loss(scale, threshold, distance)?;
    if !epsilon.is_finite() {
        return Err(PlanError::Invalid(
            "that accuracy cannot be reached at any finite epsilon".into(),
        ));
    }
    Ok(Plan {
        per_aggregate: vec![vec![Release {
            statistic: Statistic::Count,
            sensitivity: Some(l1),
            scale,
            epsilon,
            plus_minus_95: discrete_laplacian_scale_to_accuracy(scale, ALPHA).ok(),
            delta: delta_spent,
            threshold: Some(threshold),
        }]],
        epsilon,
        delta: delta_spent,
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
pub fn release(plan: &Plan, counts: HashMap<String, i64>) -> Result<Vec<(String, i64)>, PlanError> {
    let release = plan
        .per_aggregate
        .first()
        .and_then(|r| r.first())
        .ok_or_else(|| PlanError::OpenDp("empty keyed plan".into()))?;
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

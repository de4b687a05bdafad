//! The declared GROUP BY bounds and the thresholded release of keys, against OpenDP's own
//! constructors and maps. (The pushed-down truncation they imply runs against SQLite and
//! PostgreSQL in tests/it/analytics/engine.rs.)

use super::mechanism::{self, Privacy};
use super::query;
use super::tests::{keyed_dataset, opendp_loss};
use super::threshold;
use crate::config::dataset::DatasetConfig;
use opendp::combinators::make_chain_mt;
use opendp::domains::{AtomDomain, MapDomain, VectorDomain};
use opendp::measurements::make_laplace_threshold;
use opendp::metrics::{L01InfDistance, SymmetricDistance};
use opendp::transformations::make_count_by;
use std::collections::HashMap;

/// A dataset whose units may have 20 rows, but in at most 2 groups with 3 rows in each.
fn bounded(groups: u32, rows_per_group: u32) -> DatasetConfig {
    let mut d = keyed_dataset();
    d.max_rows_per_unit = 20;
    d.max_groups_per_unit = Some(groups);
    d.max_rows_per_group = Some(rows_per_group);
    d
}

#[test]
fn grouped_losses_match_opendp_at_the_distance_the_group_bounds_imply() {
    // 2 groups x 3 rows = 6 rows, tighter than max_rows_per_unit = 20.
    let d = bounded(2, 3);
    for sql in [
        "SELECT region, COUNT(*) FROM transactions GROUP BY region",
        "SELECT region, channel, SUM(amount), AVG(amount) FROM transactions GROUP BY region, channel",
    ] {
        let q = query::parse(sql, &d).unwrap();
        let cells = mechanism::cell_labels(&d, &q.group_by);
        for epsilon in [0.2, 1.0] {
            let plan = mechanism::plan(&d, &q, Privacy::Epsilon(epsilon)).unwrap();
            for r in plan.per_aggregate.iter().flatten() {
                let expected = opendp_loss(&r.statistic, r.scale, &cells, 6);
                assert_eq!(r.epsilon, expected, "{sql}: {r:?}");
            }
            assert!((plan.epsilon - epsilon).abs() <= epsilon * 1e-9, "{sql}");
        }
    }
    // Loose group bounds (10 x 3 = 30 > 20): max_rows_per_unit is the tighter, and is used.
    let loose = bounded(10, 3);
    let q = query::parse(
        "SELECT region, COUNT(*) FROM transactions GROUP BY region",
        &loose,
    )
    .unwrap();
    let plan = mechanism::plan(&loose, &q, Privacy::Epsilon(1.0)).unwrap();
    assert_eq!(plan.per_aggregate[0][0].sensitivity, Some(20));
    // Ungrouped queries keep max_rows_per_unit.
    let q = query::parse("SELECT SUM(amount) FROM transactions", &d).unwrap();
    let plan = mechanism::plan(&d, &q, Privacy::Epsilon(1.0)).unwrap();
    assert_eq!(plan.per_aggregate[0][0].sensitivity, Some(20 * 1000));
}

#[test]
fn declared_group_bounds_give_a_smaller_scale_for_the_same_epsilon() {
    let sql = "SELECT region, COUNT(*), SUM(amount) FROM transactions GROUP BY region";
    // Before: only max_rows_per_unit bounded a unit (group bounds as loose as it).
    let before = bounded(20, 20);
    let after = bounded(2, 3);
    let scales = |d: &DatasetConfig| -> Vec<f64> {
        let q = query::parse(sql, d).unwrap();
        let plan = mechanism::plan(d, &q, Privacy::Epsilon(0.5)).unwrap();
        assert!((plan.epsilon - 0.5).abs() < 1e-9);
        plan.per_aggregate
            .iter()
            .flatten()
            .map(|r| r.scale)
            .collect()
    };
    for (b, a) in scales(&before).iter().zip(scales(&after)) {
        assert!(a < *b, "{a} vs {b}");
        assert!((b / a - 20.0 / 6.0).abs() < 1e-9, "{a} vs {b}");
    }
}

/// `SELECT merchant, COUNT(*) ... GROUP BY merchant` on `d`.
fn count_by_merchant(d: &DatasetConfig) -> query::Query {
    query::parse(
        "SELECT merchant, COUNT(*) FROM transactions GROUP BY merchant",
        d,
    )
    .unwrap()
}

/// OpenDP's thresholded measurement, built here from its constructor alone.
fn opendp_threshold(scale: f64, threshold: i64) -> threshold::KeyedCounts {
    make_laplace_threshold(
        MapDomain::new(
            AtomDomain::<String>::default(),
            AtomDomain::<i64>::default(),
        ),
        L01InfDistance::default(),
        scale,
        threshold,
        None,
    )
    .unwrap()
}

#[test]
fn keyed_counts_cost_what_opendp_maps_say_with_the_smallest_threshold_for_delta() {
    let d = bounded(2, 3);
    for (epsilon, delta) in [(0.5, 1e-6), (1.0, 1e-9), (2.0, 1e-4)] {
        let plan =
            threshold::plan(&d, &count_by_merchant(&d), Privacy::Epsilon(epsilon), delta).unwrap();
        let r = &plan.per_aggregate[0][0];
        let t = r.threshold.unwrap();
        // One unit: 2 keys, 6 rows in all, 3 in any one key.
        let (e, dl) = opendp_threshold(r.scale, t).map(&(2, 6, 3)).unwrap();
        assert_eq!((plan.epsilon, plan.delta), (e, dl), "{epsilon} {delta}");
        assert!((e - epsilon).abs() <= epsilon * 1e-9, "{e}");
        assert!(dl <= delta && dl > 0.0, "{dl} for {delta}");
        // The smallest such threshold: one less would exceed the delta asked.
        let (_, over) = opendp_threshold(r.scale, t - 1).map(&(2, 6, 3)).unwrap();
        assert!(over > delta, "{t}: {over}");
    }
    // Group bounds as loose as max_rows_per_unit: the distance is what OpenDP's own
    // make_count_by gives at max_rows_per_unit, and so is the loss of the whole chain.
    let loose = bounded(20, 20);
    let plan = threshold::plan(
        &loose,
        &count_by_merchant(&loose),
        Privacy::Epsilon(1.0),
        1e-7,
    )
    .unwrap();
    let r = &plan.per_aggregate[0][0];
    let count_by =
        make_count_by::<String, i64>(VectorDomain::new(AtomDomain::default()), SymmetricDistance)
            .unwrap();
    let chain = make_chain_mt(&opendp_threshold(r.scale, r.threshold.unwrap()), &count_by).unwrap();
    assert_eq!(chain.map(&20).unwrap(), (plan.epsilon, plan.delta));
    // Accuracy sets the scale instead; delta still sets the threshold.
    let by_accuracy =
        threshold::plan(&d, &count_by_merchant(&d), Privacy::Accuracy(30.0), 1e-6).unwrap();
    let r = &by_accuracy.per_aggregate[0][0];
    assert!(r.plus_minus_95.unwrap() <= 30.0 + 1e-6);
    assert_eq!(
        opendp_threshold(r.scale, r.threshold.unwrap())
            .map(&(2, 6, 3))
            .unwrap(),
        (by_accuracy.epsilon, by_accuracy.delta)
    );
    for bad in [0.0, 1.0, f64::NAN, -1e-6] {
        assert!(
            threshold::plan(&d, &count_by_merchant(&d), Privacy::Epsilon(1.0), bad).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn a_key_one_unit_contributes_is_not_released_while_large_keys_are() {
    // Modest epsilon and delta: one unit moves at most 3 into a key.
    let d = bounded(2, 3);
    let plan = threshold::plan(&d, &count_by_merchant(&d), Privacy::Epsilon(1.0), 1e-6).unwrap();
    let t = plan.per_aggregate[0][0].threshold.unwrap();
    let counts = HashMap::from([
        ("solo-merchant".to_owned(), 3),
        ("big-merchant".to_owned(), 5_000),
        ("mid-merchant".to_owned(), t + 400),
    ]);
    for _ in 0..50 {
        let released = threshold::release(&plan, counts.clone()).unwrap();
        let keys: Vec<&str> = released.iter().map(|(k, _)| k.as_str()).collect();
        // Sorted by key; the single unit's key is never there.
        assert_eq!(keys, ["big-merchant", "mid-merchant"], "threshold {t}");
    }
    // The same counts under a threshold at one unit's contribution release it (often):
    // what the planned threshold prevents.
    let mut naive = plan.clone();
    naive.per_aggregate[0][0].threshold = Some(3);
    let leaks = (0..50)
        .filter(|_| {
            threshold::release(&naive, counts.clone())
                .unwrap()
                .iter()
                .any(|(k, _)| k == "solo-merchant")
        })
        .count();
    assert!(leaks > 10, "{leaks}");
}

#[test]
fn keyed_plans_are_refused_without_a_query_for_them() {
    // mechanism::plan is for declared groups; keyed queries go to the threshold.
    let d = keyed_dataset();
    let q = query::parse(
        "SELECT merchant, COUNT(*) FROM transactions GROUP BY merchant",
        &d,
    )
    .unwrap();
    assert!(mechanism::plan(&d, &q, Privacy::Epsilon(1.0)).is_err());
}

#[test]
fn sums_by_key_add_a_discrete_laplace_release_over_the_released_keys() {
    let d = bounded(2, 3);
    let q = query::parse(
        "SELECT merchant, COUNT(*), SUM(amount), AVG(amount) FROM transactions GROUP BY merchant",
        &d,
    )
    .unwrap();
    let plan = threshold::plan(&d, &q, Privacy::Epsilon(1.5), 1e-6).unwrap();
    // Three shares of 0.5: the count (thresholded), the sum, AVG's sum (AVG reuses the count).
    let count = &plan.per_aggregate[0][0];
    let (e, dl) = opendp_threshold(count.scale, count.threshold.unwrap())
        .map(&(2, 6, 3))
        .unwrap();
    assert_eq!((count.epsilon, count.delta), (e, dl));
    assert!((e - 0.5).abs() < 1e-9);
    for sum in [&plan.per_aggregate[1][0], &plan.per_aggregate[2][0]] {
        // OpenDP's clamp-then-sum and discrete Laplace at the distance the bounds imply.
        let expected = opendp_loss(&sum.statistic, sum.scale, &[], 6);
        assert_eq!(sum.epsilon, expected);
        assert_eq!(sum.sensitivity, Some(6 * 1000));
    }
    let reused = &plan.per_aggregate[2][1];
    assert!(reused.epsilon == 0.0 && reused.delta == 0.0 && reused.scale == count.scale);
    assert!((plan.epsilon - 1.5).abs() < 1e-9, "{}", plan.epsilon);
    assert_eq!(plan.delta, count.delta);
    // Released: only the large keys, each with a count, a sum and the sum again for AVG.
    let mut tally = super::pushdown::Tally {
        sum_columns: vec!["amount".into()],
        ..Default::default()
    };
    tally.cells.insert(vec!["solo".into()], (3, vec![900]));
    tally
        .cells
        .insert(vec!["big".into()], (5_000, vec![2_000_000]));
    tally
        .cells
        .insert(vec!["busy".into()], (9_000, vec![4_000_000]));
    let (cells, released) = threshold::release_all(&plan, &tally).unwrap();
    assert_eq!(cells, [vec!["big".to_owned()], vec!["busy".to_owned()]]);
    assert_eq!(released[0][0].len(), 2);
    let sums = &released[1][0];
    // Scale 12,000: the sums are within 15 scales of the truth (odds below e^-15).
    assert!((sums[0] - 2_000_000).abs() < 180_000, "{sums:?}");
    assert!((sums[1] - 4_000_000).abs() < 180_000, "{sums:?}");
    assert_eq!(
        released[2][1], released[0][0],
        "AVG divides by the released count"
    );
}

//! Privacy loss checked against OpenDP's own maps for every query shape, and the noise's
//! variance against its stated scale. (Pushdown, ledger and cache run against real SQLite
//! and PostgreSQL in tests/it/analytics.)

use super::answer;
use super::mechanism::{self, Privacy, Statistic, ALPHA};
use super::pushdown::Tally;
use super::query;
use crate::config::dataset::{ColumnConfig, DatasetConfig, SourceConfig};
use opendp::accuracy::{
    accuracy_to_discrete_laplacian_scale, discrete_laplacian_scale_to_accuracy,
};
use opendp::combinators::{make_chain_mt, make_chain_tt};
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::{make_laplace, make_private_quantile};
use opendp::measures::MaxDivergence;
use opendp::metrics::{L1Distance, SymmetricDistance};
use opendp::transformations::{make_clamp, make_count, make_count_by_categories, make_sum};
use std::collections::BTreeMap;
use std::time::Duration;

/// The dataset the unit tests query.
pub(super) fn dataset() -> DatasetConfig {
    let mut columns = BTreeMap::new();
    columns.insert(
        "amount".to_owned(),
        ColumnConfig::Integer {
            lower: -50,
            upper: 1000,
        },
    );
    columns.insert(
        "region".to_owned(),
        ColumnConfig::Categorical {
            categories: vec!["north".into(), "south".into(), "east".into()],
        },
    );
    columns.insert(
        "channel".to_owned(),
        ColumnConfig::Categorical {
            categories: vec!["atm".into(), "card".into()],
        },
    );
    DatasetConfig {
        name: "transactions".into(),
        source: SourceConfig {
            url: None,
            table: "transactions".into(),
            csv: None,
        },
        privacy_unit: "customer_id".into(),
        max_rows_per_unit: 3,
        truncate_order: "id".into(),
        columns,
        analyst_epsilon: 1.0,
        global_epsilon: 4.0,
        budget_period: Duration::from_secs(3600),
        cache_window: Duration::from_secs(60),
        require_consent_purpose: None,
        max_groups_per_unit: Some(3),
        max_rows_per_group: Some(3),
        analyst_delta: None,
        global_delta: None,
        default_query_delta: None,
        budget_tiers: Vec::new(),
        engine: None,
        snapshot_max_age: crate::config::dataset::DEFAULT_SNAPSHOT_MAX_AGE,
    }
}

/// The unit-test dataset with a key column (`merchant`) and delta budgets.
pub(super) fn keyed_dataset() -> DatasetConfig {
    let mut d = dataset();
    d.columns.insert("merchant".into(), ColumnConfig::Key {});
    d.analyst_delta = Some(1e-6);
    d.global_delta = Some(1e-5);
    d
}

/// OpenDP's loss for a whole release, rebuilt here from OpenDP's constructors alone: the
/// transformation from rows to the statistic, chained with the noise at the plan's scale.
pub(super) fn opendp_loss(
    statistic: &Statistic,
    scale: f64,
    cells: &[Vec<String>],
    d_in: u32,
) -> f64 {
    let rows = || VectorDomain::new(AtomDomain::<i64>::default());
    let grouped = !(cells.len() == 1 && cells[0].is_empty());
    match statistic {
        Statistic::Count if !grouped => {
            let t = make_count::<i64, i64>(rows(), SymmetricDistance).unwrap();
            let m = make_laplace::<_, _, MaxDivergence>(
                t.output_domain.clone(),
                t.output_metric.clone(),
                scale,
                None,
            )
            .unwrap();
            make_chain_mt(&m, &t).unwrap().map(&d_in).unwrap()
        }
        Statistic::Count => {
            let keys = cells.iter().map(|c| c.join("\u{1f}")).collect();
            let t = make_count_by_categories::<L1Distance<i64>, String, i64>(
                VectorDomain::new(AtomDomain::default()),
                SymmetricDistance,
                keys,
                false,
            )
            .unwrap();
            let m = make_laplace::<_, _, MaxDivergence>(
                t.output_domain.clone(),
                t.output_metric.clone(),
                scale,
                None,
            )
            .unwrap();
            make_chain_mt(&m, &t).unwrap().map(&d_in).unwrap()
        }
        Statistic::Sum { bounds, .. } => {
            let clamp = make_clamp(rows(), SymmetricDistance, *bounds).unwrap();
            let sum = make_sum(clamp.output_domain.clone(), clamp.output_metric.clone()).unwrap();
            let t = make_chain_tt(&sum, &clamp).unwrap();
            let m = make_laplace::<_, _, MaxDivergence>(
                t.output_domain.clone(),
                t.output_metric.clone(),
                scale,
                None,
            )
            .unwrap();
            // Grouped sums: the partition argument gives the vector the ungrouped L1 bound.
            make_chain_mt(&m, &t).unwrap().map(&d_in).unwrap()
        }
        Statistic::Quantile { bounds, q, .. } => make_private_quantile(
            rows(),
            SymmetricDistance,
            MaxDivergence,
            mechanism::quantile_candidates(*bounds),
            *q,
            scale,
        )
        .unwrap()
        .map(&d_in)
        .unwrap(),
    }
}

#[test]
fn privacy_loss_matches_opendp_maps_for_every_query_shape() {
    let d = dataset();
    let shapes = [
        "SELECT COUNT(*) FROM transactions",
        "SELECT SUM(amount) FROM transactions",
        "SELECT AVG(amount) FROM transactions",
        "SELECT MEDIAN(amount) FROM transactions",
        "SELECT QUANTILE(amount, 0.9) FROM transactions WHERE region = 'north'",
        "SELECT region, COUNT(*) FROM transactions GROUP BY region",
        "SELECT region, channel, SUM(amount), COUNT(*) FROM transactions GROUP BY region, channel",
        "SELECT region, AVG(amount) FROM transactions WHERE amount > 0 GROUP BY region",
    ];
    for sql in shapes {
        let q = query::parse(sql, &d).unwrap();
        let cells = mechanism::cell_labels(&d, &q.group_by);
        for epsilon in [0.1, 0.5, 1.0] {
            let plan = mechanism::plan(&d, &q, Privacy::Epsilon(epsilon)).unwrap();
            let mut total = 0.0;
            for r in plan.per_aggregate.iter().flatten() {
                let expected = opendp_loss(&r.statistic, r.scale, &cells, d.max_rows_per_unit);
                assert_eq!(r.epsilon, expected, "{sql} at {epsilon}: {r:?}");
                total += expected;
            }
            assert_eq!(plan.epsilon, total, "{sql}");
            // The query spends what was asked (up to float rounding), never more than that.
            assert!(
                (plan.epsilon - epsilon).abs() <= epsilon * 1e-9,
                "{sql}: {} for {epsilon}",
                plan.epsilon
            );
        }
    }
}

#[test]
fn sensitivities_follow_the_declared_bounds() {
    let d = dataset();
    let one = vec![vec![]];
    assert_eq!(
        mechanism::sensitivity(&Statistic::Count, 3, &one).unwrap(),
        3
    );
    let sum = Statistic::Sum {
        column: "amount".into(),
        bounds: (-50, 1000),
    };
    assert_eq!(mechanism::sensitivity(&sum, 3, &one).unwrap(), 3000);
    let cells = mechanism::cell_labels(&d, &["region".into(), "channel".into()]);
    assert_eq!(cells.len(), 6);
    assert_eq!(cells[0], vec!["north".to_owned(), "atm".to_owned()]);
    assert_eq!(
        mechanism::sensitivity(&Statistic::Count, 3, &cells).unwrap(),
        3
    );
}

#[test]
fn target_accuracy_sets_the_scale_and_opendp_prices_it() {
    let d = dataset();
    let q = query::parse(
        "SELECT region, COUNT(*), SUM(amount) FROM transactions GROUP BY region",
        &d,
    )
    .unwrap();
    let cells = mechanism::cell_labels(&d, &q.group_by);
    let plan = mechanism::plan(&d, &q, Privacy::Accuracy(200.0)).unwrap();
    let scale = accuracy_to_discrete_laplacian_scale(200.0, ALPHA).unwrap();
    let mut total = 0.0;
    for r in plan.per_aggregate.iter().flatten() {
        assert_eq!(r.scale, scale);
        let pm = r.plus_minus_95.unwrap();
        assert!(pm <= 200.0 + 1e-6 && pm > 199.0, "{pm}");
        assert_eq!(
            pm,
            discrete_laplacian_scale_to_accuracy(scale, ALPHA).unwrap()
        );
        total += opendp_loss(&r.statistic, r.scale, &cells, d.max_rows_per_unit);
    }
    assert_eq!(plan.epsilon, total);
    // A tighter target costs more.
    let tighter = mechanism::plan(&d, &q, Privacy::Accuracy(20.0)).unwrap();
    assert!(tighter.epsilon > plan.epsilon * 9.0);
    // No accuracy helper for AVG or quantiles: refused, not invented.
    for sql in [
        "SELECT AVG(amount) FROM transactions",
        "SELECT MEDIAN(amount) FROM transactions",
    ] {
        let q = query::parse(sql, &d).unwrap();
        let err = mechanism::plan(&d, &q, Privacy::Accuracy(10.0)).unwrap_err();
        assert!(err.to_string().contains("no accuracy helper"), "{err}");
    }
    for bad in [
        Privacy::Epsilon(0.0),
        Privacy::Epsilon(f64::NAN),
        Privacy::Accuracy(-1.0),
    ] {
        assert!(mechanism::plan(&d, &q, bad).is_err(), "{bad:?}");
    }
}

/// Variance of the discrete Laplace distribution with scale `s`.
fn discrete_laplace_variance(s: f64) -> f64 {
    let t = (-1.0 / s).exp();
    2.0 * t / (1.0 - t).powi(2)
}

#[test]
fn released_noise_has_the_stated_scale() {
    // A grouped count over 3 x 2 cells at a small epsilon: a large stated scale, many draws.
    let d = dataset();
    let q = query::parse(
        "SELECT region, channel, COUNT(*) FROM transactions GROUP BY region, channel",
        &d,
    )
    .unwrap();
    let cells = mechanism::cell_labels(&d, &q.group_by);
    let plan = mechanism::plan(&d, &q, Privacy::Epsilon(0.3)).unwrap();
    let scale = plan.per_aggregate[0][0].scale;
    assert!(
        (scale - 10.0).abs() < 1e-9,
        "sensitivity 3 at epsilon 0.3: {scale}"
    );
    let mut tally = Tally::default();
    for (i, cell) in cells.iter().enumerate() {
        tally.cells.insert(cell.clone(), (1000 * i as i64, vec![]));
    }
    let exact = answer::exact(&tally, &cells, None);
    let (mut n, mut sum, mut sum_sq) = (0.0, 0.0, 0.0);
    for _ in 0..4000 {
        let released = answer::release(&plan, &tally, &[], &cells).unwrap();
        for (noisy, truth) in released[0][0].iter().zip(&exact) {
            let e = (noisy - truth) as f64;
            n += 1.0;
            sum += e;
            sum_sq += e * e;
        }
    }
    let mean = sum / n;
    let variance = sum_sq / n - mean * mean;
    let expected = discrete_laplace_variance(scale);
    // 24,000 draws: the sample variance's standard error is about 1.5% (kurtosis 6); 8%
    // is over five of them, yet a scale off by 5% (variance off by 10%) fails.
    assert!(
        (variance / expected - 1.0).abs() < 0.08,
        "variance {variance}, expected {expected}"
    );
    assert!(mean.abs() < 0.5, "mean {mean}");
}

#[test]
fn releases_cover_every_category_even_empty_ones() {
    let d = dataset();
    let q = query::parse(
        "SELECT region, COUNT(*) FROM transactions GROUP BY region",
        &d,
    )
    .unwrap();
    let cells = mechanism::cell_labels(&d, &q.group_by);
    let plan = mechanism::plan(&d, &q, Privacy::Epsilon(1.0)).unwrap();
    let released = answer::release(&plan, &Tally::default(), &[], &cells).unwrap();
    assert_eq!(released[0][0].len(), 3);
}

//! Declared GROUP BY bounds and keys released above a threshold, on both store engines:
//! the pushed-down per-group truncation against the rule restated in Rust (OpenDP has
//! per-group truncation only in its Polars front end, not built here) with OpenDP's own
//! count and sum transformations on the kept rows; delta budgets in the ledger.

use super::engine::{
    channel_of, dataset, declared_region, estimate, load, merchant_of, reference, request,
    sample_rows, truncate, Row, RowFilter, REGIONS,
};
use crate::store::{engine_suite, postgres_store, sqlite_store};
use privgate::analytics::dp::{AnalyticsError, Datasets};
use privgate::config::dataset::DatasetConfig;
use privgate::store::Store;
use std::collections::HashMap;

engine_suite!(
    group_bounds_truncate_like_the_restated_rule,
    keyed_counts_spend_delta_until_either_budget_runs_out,
    keyed_queries_need_delta,
);

/// The engine dataset with GROUP BY bounds `(m, g, r)` and delta budgets.
fn bounded((m, g, r): (u32, u32, u32), analyst_delta: f64, global_delta: f64) -> DatasetConfig {
    let mut d = dataset(m, 1e6, 1e6);
    d.max_groups_per_unit = Some(g);
    d.max_rows_per_group = Some(r);
    d.analyst_delta = Some(analyst_delta);
    d.global_delta = Some(global_delta);
    d
}

fn merchant(row: &Row) -> Option<String> {
    merchant_of(row.0)
}

/// A row's (region, channel) cell, if both are declared values.
fn region_channel(row: &Row) -> Option<String> {
    Some(format!("{}/{}", declared_region(row)?, channel_of(row.0)?))
}

mod suite {
    use super::super::engine::suite::{pushed_tally, store_pool};
    use super::*;

    pub async fn group_bounds_truncate_like_the_restated_rule(_store: Store, url: String) {
        let rows = sample_rows();
        load(&url, &rows).await;
        let pool = store_pool(&url).await;
        // (max rows per unit, max groups per unit, max rows per group): each bound binding.
        for bounds in [
            (4, 1, 2),
            (5, 2, 2),
            (6, 2, 4),
            (3, 3, 1),
            (6, 3, 6),
            (4, 2, 3),
            (3, 2, 3),
            (2, 2, 2),
        ] {
            let d = bounded(bounds, 1e-6, 1e-6);
            let (m, g, r) = (bounds.0 as usize, bounds.1 as usize, bounds.2 as usize);
            let cases: [(&str, RowFilter); 2] = [
                ("", Box::new(|_| true)),
                (
                    " WHERE amount >= 0 AND merchant <> 'm-1'",
                    Box::new(|r: &Row| {
                        r.3.is_some_and(|a| a >= 0) && merchant_of(r.0).is_some_and(|m| m != "m-1")
                    }),
                ),
            ];
            for (filter, keep) in cases {
                let tally = pushed_tally(
                    &pool,
                    &d,
                    &format!("SELECT region, COUNT(*), SUM(amount) FROM transactions{filter} GROUP BY region"),
                )
                .await;
                let (counts, sums, _) = reference(&rows, (m, g, r), &keep);
                for (i, region) in REGIONS.iter().enumerate() {
                    let (count, pushed) = tally
                        .cells
                        .get(&vec![region.to_string()])
                        .cloned()
                        .unwrap_or((0, vec![0]));
                    assert_eq!(
                        (count, pushed[0]),
                        (counts[i], sums[i]),
                        "{bounds:?} {region}{filter}"
                    );
                }
                // Keys: OpenDP's make_count_by over the merchants of the kept rows.
                let tally = pushed_tally(
                    &pool,
                    &d,
                    &format!(
                        "SELECT merchant, COUNT(*) FROM transactions{filter} GROUP BY merchant"
                    ),
                )
                .await;
                let pushed: HashMap<String, i64> = tally
                    .cells
                    .into_iter()
                    .map(|(mut k, (n, _))| (k.pop().unwrap(), n))
                    .collect();
                let kept: Vec<String> = truncate(&rows, &keep, m, Some((g, r, &merchant)))
                    .iter()
                    .map(|row| merchant(row).unwrap())
                    .collect();
                let expected = opendp_count_by(kept);
                assert_eq!(pushed, expected, "{bounds:?} merchants{filter}");
                // Two columns: the bounds hold for their combinations (the cells).
                let tally = pushed_tally(
                    &pool,
                    &d,
                    &format!("SELECT region, channel, COUNT(*) FROM transactions{filter} GROUP BY region, channel"),
                )
                .await;
                let pushed: HashMap<String, i64> = tally
                    .cells
                    .into_iter()
                    .map(|(k, (n, _))| (k.join("/"), n))
                    .collect();
                let kept: Vec<String> = truncate(&rows, &keep, m, Some((g, r, &region_channel)))
                    .iter()
                    .map(|row| region_channel(row).unwrap())
                    .collect();
                assert_eq!(pushed, opendp_count_by(kept), "{bounds:?} cells{filter}");
            }
            // The bounds bite: the tightest case keeps fewer rows than max_rows_per_unit alone.
            if bounds == (4, 1, 2) {
                let all: RowFilter = Box::new(|_| true);
                let grouped = truncate(&rows, &all, m, Some((g, r, &declared_region))).len();
                let plain = truncate(&rows, &all, m, None).len();
                assert!(grouped * 2 < plain, "{grouped} vs {plain}");
            }
        }
        pool.close().await;
    }

    fn opendp_count_by(keys: Vec<String>) -> HashMap<String, i64> {
        use opendp::domains::{AtomDomain, VectorDomain};
        use opendp::metrics::SymmetricDistance;
        use opendp::transformations::make_count_by;
        make_count_by::<String, i64>(VectorDomain::new(AtomDomain::default()), SymmetricDistance)
            .unwrap()
            .invoke(&keys)
            .unwrap()
    }

    pub async fn keyed_counts_spend_delta_until_either_budget_runs_out(store: Store, url: String) {
        load(&url, &sample_rows()).await;
        // Each analyst may spend delta 2.5e-7 (two queries at 1e-7), all together 3e-7.
        let datasets = Datasets::build(&[bounded((3, 2, 2), 2.5e-7, 3e-7)]).unwrap();
        let ask = |i: i64| {
            let mut r = request(
                &format!("SELECT merchant, COUNT(*) FROM transactions WHERE amount > {i} GROUP BY merchant"),
                1.0,
            );
            r.delta = Some(1e-7);
            r
        };
        for i in 0..2 {
            let outcome = datasets
                .answer(&store, "User:ana", None, &ask(i))
                .await
                .unwrap();
            let body = &outcome.body;
            assert!(
                outcome.delta_spent > 0.0 && outcome.delta_spent <= 1e-7,
                "{body}"
            );
            // (The body went through the cache's JSON: equal up to an ulp.)
            let reported = body["delta_spent"].as_f64().unwrap();
            assert!(
                (reported / outcome.delta_spent - 1.0).abs() < 1e-12,
                "{body}"
            );
            assert!(body["key_threshold"].as_i64().unwrap() >= 2, "{body}");
            let left = body["budget"]["delta_left"].as_f64().unwrap();
            assert!(left >= 2.5e-7 - (i + 1) as f64 * 1e-7 - 1e-18, "{body}");
        }
        // The analyst's delta is spent (epsilon is not): refused, nothing debited.
        match datasets.answer(&store, "User:ana", None, &ask(7)).await {
            Err(AnalyticsError::BudgetExhausted { message, .. }) => {
                assert!(
                    message.contains("delta") && message.contains("your budget"),
                    "{message}"
                )
            }
            other => panic!("{:?}", other.map(|o| o.body)),
        }
        // A dry run reports the delta cost and what is left.
        let mut dry = ask(8);
        dry.dry_run = true;
        let dry = datasets
            .answer(&store, "User:ana", None, &dry)
            .await
            .unwrap()
            .body;
        assert!(dry["delta_cost"].as_f64().unwrap() > 0.0, "{dry}");
        assert!(
            dry["budget"]["delta_left"].as_f64().unwrap() < 1e-7,
            "{dry}"
        );
        // Another analyst: the global delta (3e-7) has room for one more.
        datasets
            .answer(&store, "User:ben", None, &ask(9))
            .await
            .unwrap();
        match datasets.answer(&store, "User:ben", None, &ask(10)).await {
            Err(AnalyticsError::BudgetExhausted { message, .. }) => {
                assert!(
                    message.contains("global budget") && message.contains("delta"),
                    "{message}"
                )
            }
            other => panic!("{:?}", other.map(|o| o.body)),
        }
        let period_start = privgate::store::now_ms() / 3_600_000 * 3_600_000;
        let (mine, all) = store
            .privacy_delta_spent("transactions", "User:ana", period_start)
            .await
            .unwrap();
        assert!(
            mine > 0 && mine <= 200_000_000_000 && all > mine,
            "{mine} {all}"
        );
        assert_eq!(store.privacy_spend_count("transactions").await.unwrap(), 3);
        // Pure epsilon queries still run: they cost no delta.
        let pure = datasets
            .answer(
                &store,
                "User:ana",
                None,
                &request(
                    "SELECT region, COUNT(*) FROM transactions GROUP BY region",
                    0.5,
                ),
            )
            .await
            .unwrap();
        assert_eq!(pure.delta_spent, 0.0);
    }

    pub async fn keyed_queries_need_delta(store: Store, url: String) {
        load(&url, &sample_rows()).await;
        let sql = "SELECT merchant, COUNT(*) FROM transactions GROUP BY merchant";
        let mut d = bounded((3, 2, 2), 1e-6, 1e-6);
        let datasets = Datasets::build(&[d.clone()]).unwrap();
        match datasets
            .answer(&store, "User:ana", None, &request(sql, 1.0))
            .await
        {
            Err(AnalyticsError::Plan(message)) => {
                assert!(
                    message.contains("needs delta > 0") && message.contains("give delta"),
                    "{message}"
                )
            }
            other => panic!("{:?}", other.map(|o| o.body)),
        }
        // Without delta budgets the query is refused at parse, saying what to declare.
        d.analyst_delta = None;
        d.global_delta = None;
        let no_budget = Datasets::build(&[d.clone()]).unwrap();
        let err = no_budget
            .answer(&store, "User:ana", None, &request(sql, 1.0))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("declare analyst_delta and global_delta"),
            "{err}"
        );
        // A configured default delta is used when the query gives none; a huge epsilon
        // puts the threshold just above one unit's contribution, so the large keys come out.
        d.analyst_delta = Some(1e-6);
        d.global_delta = Some(1e-6);
        d.default_query_delta = Some(1e-9);
        let defaulted = Datasets::build(&[d]).unwrap();
        let outcome = defaulted
            .answer(&store, "User:ana", None, &request(sql, 1e4))
            .await
            .unwrap();
        assert!(outcome.delta_spent > 0.0 && outcome.delta_spent <= 1e-9);
        let body = outcome.body;
        let keys = super::super::row_keys(&body);
        assert_eq!(keys, ["m-0", "m-1", "m-2", "m-3"], "{body}");
        assert!(estimate(&body, 0, 1) > 0);
        // Sums and means by key: at this epsilon the answer is the truncated, clamped truth
        // up to the rare unit of noise allowed below.
        let rows = sample_rows();
        let all: RowFilter = Box::new(|_| true);
        let kept = truncate(&rows, &all, 3, Some((2, 2, &merchant)));
        let outcome = defaulted
            .answer(
                &store,
                "User:ana",
                None,
                &request(
                    "SELECT merchant, COUNT(*), SUM(amount), AVG(amount) FROM transactions GROUP BY merchant",
                    1e4,
                ),
            )
            .await
            .unwrap();
        let body = outcome.body;
        for (i, key) in ["m-0", "m-1", "m-2", "m-3"].iter().enumerate() {
            let mine: Vec<&&Row> = kept
                .iter()
                .filter(|r| merchant(r).as_deref() == Some(*key))
                .collect();
            let sum: i64 = mine.iter().map(|r| r.3.unwrap_or(0).clamp(-10, 100)).sum();
            assert_eq!(body["rows"][i][0], *key, "{body}");
            // At this epsilon a count's noise scale is 0.0009 (never off by one in
            // practice) and a sum's 0.09: off by one about 3 times in 100,000 draws, so a
            // sum may be one away from the truth, never more (e^-22).
            assert_eq!(estimate(&body, i, 1), mine.len() as i64, "{body}");
            assert!((estimate(&body, i, 2) - sum).abs() <= 1, "{body}");
            let avg = &body["rows"][i][3];
            let noisy_sum = avg["noisy_sum"].as_f64().unwrap();
            assert!((noisy_sum - sum as f64).abs() <= 1.0, "{body}");
            assert!(
                (avg["estimate"].as_f64().unwrap() - noisy_sum / mine.len() as f64).abs() < 1e-9,
                "{body}"
            );
        }
    }
}

/// A key column in a CSV source: its values are text, released above the threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_dataset_answers_a_keyed_query() {
    let (store, _url, _guard) = sqlite_store().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.csv");
    // 30 customers at merchant 101 (numeric-looking text), one alone at merchant 7.
    let mut csv = String::from("id,customer_id,region,amount,merchant,channel\n");
    for i in 0..30 {
        csv.push_str(&format!("{i},c{i},north,5,101,atm\n"));
    }
    csv.push_str("99,c99,south,5,7,card\n");
    std::fs::write(&path, csv).unwrap();
    let mut d = bounded((2, 1, 2), 1e-6, 1e-6);
    d.source.csv = Some(path);
    let datasets = Datasets::build(&[d]).unwrap();
    let mut ask = request(
        "SELECT merchant, COUNT(*) FROM transactions GROUP BY merchant",
        1e3,
    );
    ask.delta = Some(1e-8);
    let body = datasets
        .answer(&store, "User:ana", None, &ask)
        .await
        .unwrap()
        .body;
    // Epsilon 1e3: the threshold sits just above one unit's contribution (2).
    let threshold = body["key_threshold"].as_i64().unwrap();
    assert!((2..10).contains(&threshold), "{body}");
    assert_eq!(body["rows"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["rows"][0][0], "101", "{body}");
    assert_eq!(estimate(&body, 0, 1), 30, "{body}");
}

//! The analytics engine on both store engines: pushdown against OpenDP's transformations,
//! the budget race, the answer cache, the consent filter and an empty dataset. Datasets sit
//! in the store's own database (as consent-filtered ones must).

use crate::store::{engine_suite, postgres_store, sqlite_store};
use privgate::analytics::dp::snapshot::Snapshot;
use privgate::analytics::dp::{pushdown, query, AnalyticsError, AnswerRequest, Datasets};
use privgate::config::dataset::{ColumnConfig, DatasetConfig, QueryEngine, SourceConfig};
use privgate::store::Store;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

engine_suite!(
    pushdown_matches_opendp_truncation_and_clamping,
    snapshot_and_pushdown_agree_on_random_rows,
    fifty_parallel_queries_spend_exactly_the_budget,
    the_global_cap_holds_across_analysts,
    repeated_and_concurrent_identical_queries_spend_once,
    only_consenting_subjects_are_counted,
    an_empty_dataset_answers_every_category,
    a_snapshot_is_read_again_once_older_than_its_bound,
);

/// (id, customer, region, amount): `amount` None is NULL. (Each row's merchant, a key
/// column, is `merchant_of(id)`.)
pub(super) type Row = (i64, String, Option<&'static str>, Option<i64>);

/// Which rows a WHERE clause keeps, restated in Rust.
pub(super) type RowFilter = Box<dyn Fn(&Row) -> bool>;

/// A row's group under a GROUP BY (None: in no group).
pub(super) type GroupOf<'a> = &'a dyn Fn(&Row) -> Option<String>;

/// The declared regions.
pub(super) const REGIONS: [&str; 3] = ["north", "south", "east"];

/// A row's merchant: four merchants, NULL for every seventh id.
pub(super) fn merchant_of(id: i64) -> Option<String> {
    (id % 7 != 0).then(|| format!("m-{}", id % 4))
}

/// A row's channel (a second categorical column): NULL for every eleventh id.
pub(super) fn channel_of(id: i64) -> Option<&'static str> {
    (id % 11 != 0).then(|| ["atm", "card"][(id % 2) as usize])
}

pub(super) fn dataset(max_rows: u32, analyst_epsilon: f64, global_epsilon: f64) -> DatasetConfig {
    let mut columns = BTreeMap::new();
    columns.insert(
        "amount".to_owned(),
        ColumnConfig::Integer {
            lower: -10,
            upper: 100,
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
    columns.insert("merchant".to_owned(), ColumnConfig::Key {});
    DatasetConfig {
        name: "transactions".into(),
        source: SourceConfig {
            url: None,
            table: "dp_test_transactions".into(),
            csv: None,
        },
        privacy_unit: "customer_id".into(),
        max_rows_per_unit: max_rows,
        truncate_order: "id".into(),
        columns,
        analyst_epsilon,
        global_epsilon,
        budget_period: Duration::from_secs(3600),
        cache_window: Duration::from_secs(600),
        require_consent_purpose: None,
        max_groups_per_unit: Some(max_rows.min(3)),
        max_rows_per_group: Some(max_rows),
        analyst_delta: None,
        global_delta: None,
        default_query_delta: None,
        budget_tiers: Vec::new(),
        engine: None,
        snapshot_max_age: privgate::config::dataset::DEFAULT_SNAPSHOT_MAX_AGE,
    }
}

/// Creates the dataset's table in the store's database and fills it.
pub(super) async fn load(url: &str, rows: &[Row]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE dp_test_transactions (id BIGINT PRIMARY KEY, customer_id TEXT NOT NULL, region TEXT, amount BIGINT, merchant TEXT, channel TEXT)",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (id, customer, region, amount) in rows {
        sqlx::query("INSERT INTO dp_test_transactions (id, customer_id, region, amount, merchant, channel) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(*id)
            .bind(customer.as_str())
            .bind(region.map(str::to_owned))
            .bind(*amount)
            .bind(merchant_of(*id))
            .bind(channel_of(*id))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

/// Regions sample rows carry: the declared ones, one outside the list, and NULL.
const SAMPLE_REGIONS: [Option<&str>; 5] = [
    Some("north"),
    Some("south"),
    Some("east"),
    Some("west"),
    None,
];

/// Deterministic pseudo-random rows: 40 customers with 0 to 6 rows each, values beyond
/// both bounds, NULL values and regions outside the declared list.
pub(super) fn sample_rows() -> Vec<Row> {
    let regions = SAMPLE_REGIONS;
    let mut rows = Vec::new();
    let mut id = 1000;
    for c in 0..40i64 {
        for r in 0..(c * 5 % 7) {
            // Ids descend within a customer for some, so truncation order is not insertion order.
            id += if c % 2 == 0 { 1 } else { 3 };
            let amount = match (c * 31 + r * 17) % 9 {
                0 => None,
                1 => Some(-500),
                2 => Some(250),
                n => Some(n * 11 - 20),
            };
            rows.push((
                if c % 3 == 0 { 10_000 - id } else { id },
                format!("cust-{c}"),
                regions[((c + r) % 5) as usize],
                amount,
            ));
        }
    }
    rows
}

pub(super) use super::reference::{declared_region, reference, truncate};

pub(super) fn request(sql: &str, epsilon: f64) -> AnswerRequest {
    AnswerRequest {
        dataset: "transactions".into(),
        sql: sql.into(),
        epsilon: Some(epsilon),
        accuracy: None,
        delta: None,
        dry_run: false,
    }
}

/// The estimate in row `row`, column `column` of an answer.
pub(super) fn estimate(body: &serde_json::Value, row: usize, column: usize) -> i64 {
    body["rows"][row][column]["estimate"]
        .as_i64()
        .unwrap_or_else(|| panic!("{body}"))
}

pub(super) mod suite {
    use super::*;

    pub async fn pushdown_matches_opendp_truncation_and_clamping(_store: Store, url: String) {
        let rows = sample_rows();
        load(&url, &rows).await;
        let d = dataset(3, 1.0, 1.0);
        let pool = store_pool(&url).await;
        let cases: [(&str, RowFilter); 2] = [
            ("", Box::new(|_| true)),
            (
                " WHERE amount >= 0 AND region <> 'south'",
                Box::new(|r: &Row| {
                    r.3.is_some_and(|a| a >= 0) && r.2.is_some_and(|g| g != "south")
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
            let (counts, sums, _) = reference(&rows, (3, 3, 3), &keep);
            for (i, region) in ["north", "south", "east"].iter().enumerate() {
                let (count, pushed_sums) = tally
                    .cells
                    .get(&vec![region.to_string()])
                    .cloned()
                    .unwrap_or((0, vec![0]));
                assert_eq!(count, counts[i], "count {region}{filter}");
                assert_eq!(pushed_sums[0], sums[i], "sum {region}{filter}");
            }
            let values = pushed_values(
                &pool,
                &d,
                &format!("SELECT MEDIAN(amount) FROM transactions{filter}"),
                "amount",
            )
            .await;
            assert_eq!(
                values,
                reference(&rows, (3, 3, 3), &keep).2,
                "values{filter}"
            );
        }
        pool.close().await;
    }

    /// The snapshot engine against the pushdown on random rows (NULLs, values outside the
    /// declared categories and bounds, units of 0 to 12 rows) for random bounds and filters
    /// (both engines take every GROUP BY bound into account):
    /// `pushed_tally`/`pushed_values` assert the two engines' exact tallies equal.
    pub async fn snapshot_and_pushdown_agree_on_random_rows(_store: Store, url: String) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        let regions = SAMPLE_REGIONS;
        let mut rows: Vec<Row> = Vec::new();
        let mut ids: Vec<i64> = (1..=600).collect();
        for i in (1..ids.len()).rev() {
            ids.swap(i, rng.gen_range(0..=i));
        }
        let mut next = ids.into_iter();
        for c in 0..60 {
            for _ in 0..rng.gen_range(0..=12) {
                let Some(id) = next.next() else { break };
                let amount = (rng.gen_range(0..10) != 0).then(|| rng.gen_range(-300..1300));
                rows.push((id, format!("u{c}"), regions[rng.gen_range(0..5)], amount));
            }
        }
        load(&url, &rows).await;
        let pool = store_pool(&url).await;
        let filters: [(&str, RowFilter); 5] = [
            ("", Box::new(|_| true)),
            (
                " WHERE amount >= 100",
                Box::new(|r: &Row| r.3.is_some_and(|a| a >= 100)),
            ),
            (
                " WHERE region IN ('north', 'west') AND amount < 900",
                Box::new(|r: &Row| {
                    r.2.is_some_and(|g| g == "north" || g == "west") && r.3.is_some_and(|a| a < 900)
                }),
            ),
            (
                " WHERE region <> 'south' AND merchant NOT IN ('m-2')",
                Box::new(|r: &Row| {
                    r.2.is_some_and(|g| g != "south")
                        && merchant_of(r.0).is_some_and(|m| m != "m-2")
                }),
            ),
            (
                " WHERE amount NOT BETWEEN 0 AND 500 AND channel = 'card'",
                Box::new(|r: &Row| {
                    r.3.is_some_and(|a| !(0..=500).contains(&a)) && channel_of(r.0) == Some("card")
                }),
            ),
        ];
        let region_channel = |row: &Row| -> Option<String> {
            Some(format!("{}/{}", declared_region(row)?, channel_of(row.0)?))
        };
        for _ in 0..12 {
            let (m, g, r) = (
                rng.gen_range(1..=8),
                rng.gen_range(1..=4),
                rng.gen_range(1..=6),
            );
            let mut d = dataset(m, 1e6, 1e6);
            d.max_groups_per_unit = Some(g);
            d.max_rows_per_group = Some(r);
            d.analyst_delta = Some(1e-6);
            d.global_delta = Some(1e-6);
            let (filter, keep) = &filters[rng.gen_range(0..filters.len())];
            for (columns, group_by) in [
                ("", ""),
                ("region, ", " GROUP BY region"),
                ("merchant, ", " GROUP BY merchant"),
            ] {
                let sql = format!(
                    "SELECT {columns}COUNT(*), SUM(amount) FROM transactions{filter}{group_by}"
                );
                pushed_tally(&pool, &d, &sql).await;
            }
            // Two GROUP BY columns, also against the rule restated in Rust.
            let sql = format!(
                "SELECT region, channel, COUNT(*) FROM transactions{filter} GROUP BY region, channel"
            );
            let mut expected: HashMap<String, i64> = HashMap::new();
            for row in truncate(
                &rows,
                keep,
                m as usize,
                Some((g as usize, r as usize, &region_channel)),
            ) {
                *expected.entry(region_channel(row).unwrap()).or_default() += 1;
            }
            let q = query::parse(&sql, &d).unwrap();
            let pushed =
                pushdown::run_tally(&pool, &pushdown::tally_sql(&d, &q, None), 2, Vec::new())
                    .await
                    .unwrap();
            let copied = Snapshot::read(&pool, &d)
                .await
                .unwrap()
                .tally(&d, &q, None)
                .unwrap();
            for (engine, tally) in [("pushdown", pushed), ("snapshot", copied)] {
                let got: HashMap<String, i64> = tally
                    .cells
                    .into_iter()
                    .map(|(k, (n, _))| (k.join("/"), n))
                    .collect();
                assert_eq!(got, expected, "{engine}: {sql} {:?}", (m, g, r));
            }
            pushed_values(
                &pool,
                &d,
                &format!("SELECT MEDIAN(amount) FROM transactions{filter}"),
                "amount",
            )
            .await;
        }
        pool.close().await;
    }

    /// The snapshot engine answers from its copy until it is older than
    /// `snapshot_max_age`, then reads the source again: rows written meanwhile count from
    /// then on, never later.
    pub async fn a_snapshot_is_read_again_once_older_than_its_bound(store: Store, url: String) {
        let rows: Vec<Row> = (0..4)
            .map(|i| (i, format!("cust-{i}"), Some("north"), Some(5)))
            .collect();
        load(&url, &rows).await;
        let mut d = dataset(1, 1e9, 1e9);
        d.engine = Some(QueryEngine::Snapshot);
        d.snapshot_max_age = Duration::from_millis(1500);
        let datasets = Datasets::build(&[d]).unwrap();
        let mut epsilon = 1e5;
        let mut count = || {
            epsilon += 1.0;
            let request = request("SELECT COUNT(*) FROM transactions", epsilon);
            let (datasets, store) = (&datasets, &store);
            async move {
                let body = datasets
                    .answer(store, "User:ana", None, &request)
                    .await
                    .unwrap()
                    .body;
                estimate(&body, 0, 0)
            }
        };
        assert_eq!(count().await, 4);
        let read_at = std::time::Instant::now();
        let pool = store_pool(&url).await;
        sqlx::query("INSERT INTO dp_test_transactions (id, customer_id, region, amount) VALUES (100, 'cust-9', 'north', 5)")
            .execute(&pool)
            .await
            .unwrap();
        let within = count().await;
        if read_at.elapsed() < Duration::from_millis(1400) {
            assert_eq!(within, 4, "answered from the copy within its bound");
        }
        tokio::time::sleep(Duration::from_millis(1600).saturating_sub(read_at.elapsed())).await;
        assert_eq!(count().await, 5, "read again once older than the bound");
        pool.close().await;
    }

    pub(crate) async fn store_pool(url: &str) -> sqlx::AnyPool {
        sqlx::any::AnyPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .unwrap()
    }

    /// The exact tally the source database returns for `sql` (no consent filter), checked
    /// equal to the snapshot engine's over the same rows: every test that reads a tally
    /// through here compares both engines.
    pub(crate) async fn pushed_tally(
        pool: &sqlx::AnyPool,
        d: &DatasetConfig,
        sql: &str,
    ) -> pushdown::Tally {
        let q = query::parse(sql, d).unwrap();
        let pushed = pushdown::run_tally(
            pool,
            &pushdown::tally_sql(d, &q, None),
            q.group_by.len(),
            pushdown::sum_columns(&q),
        )
        .await
        .unwrap();
        let copy = Snapshot::read(pool, d).await.unwrap();
        assert_eq!(
            copy.tally(d, &q, None).unwrap(),
            pushed,
            "snapshot vs pushdown: {sql}"
        );
        pushed
    }

    /// The truncated, clamped values of `column`, from both engines (checked equal).
    pub(crate) async fn pushed_values(
        pool: &sqlx::AnyPool,
        d: &DatasetConfig,
        sql: &str,
        column: &str,
    ) -> Vec<i64> {
        let q = query::parse(sql, d).unwrap();
        let mut pushed = pushdown::run_values(pool, &pushdown::values_sql(d, &q, column, None))
            .await
            .unwrap();
        let copy = Snapshot::read(pool, d).await.unwrap();
        let mut copied = copy.values(d, &q, column, None).unwrap();
        pushed.sort();
        copied.sort();
        assert_eq!(copied, pushed, "snapshot vs pushdown values: {sql}");
        pushed
    }

    pub async fn fifty_parallel_queries_spend_exactly_the_budget(store: Store, url: String) {
        load(&url, &sample_rows()).await;
        // Sensitivity 2 at epsilon 0.5: scale 4, a loss of exactly 0.5; the budget holds 10.
        let datasets = std::sync::Arc::new(Datasets::build(&[dataset(2, 5.0, 100.0)]).unwrap());
        // Two replicas: each its own connection pool on the same database.
        let replicas = [store.clone(), Store::open(&url).await.unwrap()];
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (datasets, store) = (datasets.clone(), replicas[i % 2].clone());
            tasks.push(tokio::spawn(async move {
                let sql = format!("SELECT COUNT(*) FROM transactions WHERE amount > {i}");
                datasets
                    .answer(&store, "User:ana", None, &request(&sql, 0.5))
                    .await
            }));
        }
        let (mut answered, mut exhausted) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(outcome) => {
                    assert!(!outcome.cached);
                    answered += 1
                }
                Err(AnalyticsError::BudgetExhausted {
                    message,
                    retry_after_s,
                }) => {
                    assert!(
                        message.contains("refreshes at") && retry_after_s >= 1,
                        "{message}"
                    );
                    exhausted += 1
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((answered, exhausted), (10, 40));
        assert_eq!(store.privacy_spend_count("transactions").await.unwrap(), 10);
        let period_start = privgate::store::now_ms() / 3_600_000 * 3_600_000;
        let (mine, all) = store
            .privacy_budget_spent("transactions", "User:ana", period_start)
            .await
            .unwrap();
        assert_eq!((mine, all), (5_000_000_000, 5_000_000_000));
    }

    pub async fn the_global_cap_holds_across_analysts(store: Store, url: String) {
        load(&url, &sample_rows()).await;
        // Each analyst could spend 5.0, but all together only 7.0: 14 answers of 0.5.
        let datasets = std::sync::Arc::new(Datasets::build(&[dataset(2, 5.0, 7.0)]).unwrap());
        let mut tasks = Vec::new();
        for i in 0..40 {
            let (datasets, store) = (datasets.clone(), store.clone());
            let analyst = ["User:ana", "User:ben", "User:cy", "User:dee"][i % 4];
            tasks.push(tokio::spawn(async move {
                let sql = format!("SELECT COUNT(*) FROM transactions WHERE amount < {i}");
                datasets
                    .answer(&store, analyst, None, &request(&sql, 0.5))
                    .await
            }));
        }
        let mut answered = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => answered += 1,
                Err(AnalyticsError::BudgetExhausted { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(answered, 14);
    }

    pub async fn repeated_and_concurrent_identical_queries_spend_once(store: Store, url: String) {
        load(&url, &sample_rows()).await;
        let datasets = std::sync::Arc::new(Datasets::build(&[dataset(3, 5.0, 5.0)]).unwrap());
        let sql = "SELECT region, COUNT(*) FROM transactions GROUP BY region";
        let first = datasets
            .answer(&store, "User:ana", None, &request(sql, 0.1))
            .await
            .unwrap();
        // The same question spelled differently: the cached answer, nothing spent.
        let again = datasets
            .answer(
                &store,
                "User:ana",
                None,
                &request(
                    "select region, count(*) from transactions group by REGION",
                    0.1,
                ),
            )
            .await
            .unwrap();
        assert!(again.cached && !first.cached);
        assert_eq!(again.body["rows"], first.body["rows"]);
        assert_eq!(again.epsilon_spent, 0.0);
        assert_eq!(store.privacy_spend_count("transactions").await.unwrap(), 1);
        // Ten identical queries at once: one spend, one answer for all.
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (datasets, store) = (datasets.clone(), store.clone());
            tasks.push(tokio::spawn(async move {
                datasets
                    .answer(
                        &store,
                        "User:ben",
                        None,
                        &request("SELECT SUM(amount) FROM transactions", 0.2),
                    )
                    .await
                    .unwrap()
            }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        assert_eq!(answers.iter().filter(|a| !a.cached).count(), 1);
        assert!(answers
            .iter()
            .all(|a| a.body["rows"] == answers[0].body["rows"]));
        assert_eq!(store.privacy_spend_count("transactions").await.unwrap(), 2);
        // A dry run neither spends nor fills the cache.
        let mut dry = request("SELECT AVG(amount) FROM transactions", 0.3);
        dry.dry_run = true;
        let cost = datasets
            .answer(&store, "User:ana", None, &dry)
            .await
            .unwrap();
        assert!((cost.body["epsilon_cost"].as_f64().unwrap() - 0.3).abs() < 1e-9);
        assert!(
            (cost.body["budget"]["epsilon_left"].as_f64().unwrap() - 4.9).abs() < 1e-9,
            "{}",
            cost.body
        );
        assert_eq!(store.privacy_spend_count("transactions").await.unwrap(), 2);
        // Past the cache window the same query is a new (paid) draw.
        let mut expiring = dataset(3, 5.0, 5.0);
        expiring.cache_window = Duration::ZERO;
        let expiring = Datasets::build(&[expiring]).unwrap();
        for _ in 0..2 {
            let outcome = expiring
                .answer(
                    &store,
                    "User:cy",
                    None,
                    &request("SELECT COUNT(*) FROM transactions WHERE amount > 7", 0.1),
                )
                .await
                .unwrap();
            assert!(!outcome.cached);
        }
        assert_eq!(store.privacy_spend_count("transactions").await.unwrap(), 4);
    }

    pub async fn only_consenting_subjects_are_counted(store: Store, url: String) {
        use privgate::consent::NewConsent;
        let rows: Vec<Row> = (0..9)
            .map(|i| (i, format!("cust-{i}"), Some("north"), Some(5)))
            .collect();
        load(&url, &rows).await;
        let now = privgate::store::now_ms();
        let grant = |subject: &str, purpose: &str, expires_at: Option<i64>| NewConsent {
            subject: subject.into(),
            grantee: "bank".into(),
            purposes: vec![purpose.into()],
            permissions: vec!["ReadAccountsBasic".into()],
            expires_at,
        };
        for s in ["cust-0", "cust-1", "cust-2"] {
            store
                .grant_consent(&grant(s, "analytics", None), now)
                .await
                .unwrap();
        }
        let revoked = store
            .grant_consent(&grant("cust-3", "analytics", None), now)
            .await
            .unwrap();
        store.revoke_consent(&revoked.id, now).await.unwrap();
        store
            .grant_consent(&grant("cust-4", "analytics", Some(now - 1)), now - 10)
            .await
            .unwrap();
        store
            .grant_consent(&grant("cust-5", "marketing", None), now)
            .await
            .unwrap();
        // Matched by `analytics_x` only if `_` acted as a LIKE wildcard (it must not).
        store
            .grant_consent(&grant("cust-6", "analyticsyx", None), now)
            .await
            .unwrap();
        store
            .grant_consent(&grant("cust-7", "analytics_x", None), now)
            .await
            .unwrap();
        let late = store
            .grant_consent(&grant("cust-8", "analytics", None), now)
            .await
            .unwrap();
        store.revoke_consent(&late.id, now).await.unwrap();
        // Both engines; each query a different epsilon so that none is a cached answer.
        for (i, engine) in [QueryEngine::Pushdown, QueryEngine::Snapshot]
            .into_iter()
            .enumerate()
        {
            let epsilon = 1e5 + i as f64;
            let mut d = dataset(1, 1e6, 1e6);
            d.engine = Some(engine);
            d.require_consent_purpose = Some("analytics".into());
            let datasets = Datasets::build(&[d.clone()]).unwrap();
            // Epsilon so large that the noise is zero with overwhelming probability.
            let count = |sql: &'static str, epsilon: f64| {
                let datasets = &datasets;
                let store = &store;
                async move {
                    datasets
                        .answer(store, "User:ana", None, &request(sql, epsilon))
                        .await
                        .unwrap()
                        .body
                }
            };
            let body = count("SELECT COUNT(*), SUM(amount) FROM transactions", epsilon).await;
            assert_eq!(
                (estimate(&body, 0, 0), estimate(&body, 0, 1)),
                (3, 15),
                "{engine:?}: {body}"
            );
            // A revocation holds for the next query (the snapshot engine too: consents are
            // read at every query, never copied).
            let granted = store
                .grant_consent(&grant("cust-8", "analytics", None), now)
                .await
                .unwrap();
            let body = count("SELECT COUNT(*) FROM transactions", epsilon).await;
            assert_eq!(estimate(&body, 0, 0), 4, "{engine:?}: {body}");
            store.revoke_consent(&granted.id, now).await.unwrap();
            let body = count("SELECT COUNT(*) FROM transactions", epsilon + 0.5).await;
            assert_eq!(estimate(&body, 0, 0), 3, "{engine:?}: {body}");
            d.require_consent_purpose = Some("analytics_x".into());
            let datasets = Datasets::build(&[d]).unwrap();
            let body = datasets
                .answer(
                    &store,
                    "User:ana",
                    None,
                    &request("SELECT COUNT(*) FROM transactions", epsilon + 0.25),
                )
                .await
                .unwrap()
                .body;
            assert_eq!(estimate(&body, 0, 0), 1, "{engine:?}: {body}");
        }
    }

    pub async fn an_empty_dataset_answers_every_category(store: Store, url: String) {
        load(&url, &[]).await;
        let datasets = Datasets::build(&[dataset(2, 1e6, 1e6)]).unwrap();
        let body = datasets
            .answer(&store, "User:ana", None, &request("SELECT region, COUNT(*), SUM(amount), AVG(amount) FROM transactions GROUP BY region", 1e5))
            .await
            .unwrap()
            .body;
        let rows = body["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 3, "{body}");
        for (i, region) in ["north", "south", "east"].iter().enumerate() {
            assert_eq!(rows[i][0], *region);
            assert_eq!((estimate(&body, i, 1), estimate(&body, i, 2)), (0, 0));
            // No mean of nothing: AVG is null rather than a division by a noisy zero.
            assert!(rows[i][3]["estimate"].is_null(), "{body}");
        }
        let median = datasets
            .answer(
                &store,
                "User:ana",
                None,
                &request("SELECT MEDIAN(amount) FROM transactions", 10.0),
            )
            .await
            .unwrap()
            .body;
        let m = estimate(&median, 0, 0);
        assert!((-10..=100).contains(&m), "{median}");
    }
}

/// A CSV source: loaded into memory once, then answered like a table (SQLite only: the file
/// is the source, whatever the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_dataset_is_answered_like_a_table() {
    let (store, _url, _guard) = sqlite_store().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tx.csv");
    // Customer c1 has 3 rows (2 kept, by id: 9 before 10), amounts beyond the upper bound and
    // empty cells; a quoted field with a comma.
    std::fs::write(
        &path,
        "id,customer_id,region,amount,note\n10,c1,north,500,\"a, b\"\n9,c1,north,7,x\n11,c1,south,1,x\n3,c2,south,,x\n4,c3,east,20,x\n",
    )
    .unwrap();
    let mut d = dataset(2, 1e6, 1e6);
    d.source.csv = Some(path.clone());
    // Every declared column must be in the file: this one has no channel or merchant.
    d.columns.remove("channel");
    d.columns.remove("merchant");
    let datasets = Datasets::build(&[d.clone()]).unwrap();
    let body = datasets
        .answer(
            &store,
            "User:ana",
            None,
            &request(
                "SELECT region, COUNT(*), SUM(amount) FROM transactions GROUP BY region",
                1e5,
            ),
        )
        .await
        .unwrap()
        .body;
    // north: c1's ids 9 and 10 (7 + clamp(500) = 107); south: c2 only (c1's third row is
    // truncated; NULL reads as 0); east: 20.
    let got: Vec<(i64, i64)> = (0..3)
        .map(|i| (estimate(&body, i, 1), estimate(&body, i, 2)))
        .collect();
    assert_eq!(got, [(2, 107), (1, 0), (1, 20)], "{body}");
    // A malformed file refuses the configuration (start-up or reload), naming the row and
    // column but not the content.
    std::fs::write(
        &path,
        "id,customer_id,region,amount\n1,c1,north,secret-value\n",
    )
    .unwrap();
    let message = Datasets::build(&[d]).err().unwrap();
    assert!(
        message.contains("row 2: column `amount` is not an integer") && !message.contains("secret"),
        "{message}"
    );
}

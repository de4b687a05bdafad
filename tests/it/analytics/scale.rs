//! Query latency on large datasets, in SQLite and PostgreSQL: an ignored measurement, not a
//! CI test. Run with
//!
//! ```sh
//! PRIVGATE_TEST_POSTGRES_URL=postgres://... PRIVGATE_SCALE_ROWS=10000000 \
//!   cargo test --release --test it analytics::scale -- --ignored --nocapture --test-threads 1
//! ```
//!
//! It generates the rows inside each database (1 customer per 10 rows, 4 regions, 1,000
//! merchants (a key column), amounts 0..99,999 minor units), then times each query through the whole engine (parse, plan,
//! tally, debit, OpenDP release) and prints one line per query. `PRIVGATE_SCALE_ENGINE`
//! picks the query engine (`snapshot`, the default, or `pushdown`); the snapshot engine's
//! first query, which reads the copy, is timed apart.

use crate::store::{postgres_store, sqlite_store};
use privgate::analytics::dp::pushdown::{self, Pushdown};
use privgate::analytics::dp::query::{self, Literal};
use privgate::analytics::dp::{AnswerRequest, Datasets};
use privgate::config::dataset::{ColumnConfig, DatasetConfig, QueryEngine, SourceConfig};
use privgate::store::{Engine, Store};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const QUERIES: &[&str] = &[
    "SELECT COUNT(*) FROM big",
    "SELECT region, COUNT(*) FROM big GROUP BY region",
    "SELECT region, SUM(amount), AVG(amount) FROM big GROUP BY region",
    "SELECT SUM(amount) FROM big WHERE amount BETWEEN 1000 AND 50000 AND region <> 'west'",
    "SELECT MEDIAN(amount) FROM big",
    "SELECT merchant, COUNT(*) FROM big GROUP BY merchant",
];

/// GROUP BY bounds (groups per unit, rows per group): `PRIVGATE_SCALE_GROUP_BOUNDS=2,5`
/// makes them bind (every truncation step runs); default 4,20 (with 4 regions and
/// `max_rows_per_unit = 20`, a region GROUP BY needs only the per-unit step).
fn group_bounds() -> (u32, u32) {
    std::env::var("PRIVGATE_SCALE_GROUP_BOUNDS")
        .ok()
        .and_then(|v| {
            let (g, r) = v.split_once(',')?;
            Some((g.trim().parse().ok()?, r.trim().parse().ok()?))
        })
        .unwrap_or((4, 20))
}

/// The engine measured: `PRIVGATE_SCALE_ENGINE=pushdown|snapshot` (default snapshot).
fn engine() -> QueryEngine {
    match std::env::var("PRIVGATE_SCALE_ENGINE").as_deref() {
        Ok("pushdown") => QueryEngine::Pushdown,
        _ => QueryEngine::Snapshot,
    }
}

fn rows() -> i64 {
    std::env::var("PRIVGATE_SCALE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
}

fn dataset() -> DatasetConfig {
    let mut columns = BTreeMap::new();
    columns.insert(
        "amount".to_owned(),
        ColumnConfig::Integer {
            lower: 0,
            upper: 100_000,
        },
    );
    columns.insert(
        "region".to_owned(),
        ColumnConfig::Categorical {
            categories: ["north", "south", "east", "west"]
                .map(String::from)
                .to_vec(),
        },
    );
    columns.insert("merchant".to_owned(), ColumnConfig::Key {});
    DatasetConfig {
        name: "big".into(),
        source: SourceConfig {
            url: None,
            table: "big".into(),
            csv: None,
        },
        privacy_unit: "customer_id".into(),
        max_rows_per_unit: 20,
        truncate_order: "id".into(),
        columns,
        analyst_epsilon: 1e6,
        global_epsilon: 1e6,
        budget_period: Duration::from_secs(3600),
        cache_window: Duration::from_secs(1),
        require_consent_purpose: None,
        max_groups_per_unit: Some(group_bounds().0),
        max_rows_per_group: Some(group_bounds().1),
        analyst_delta: Some(0.5),
        global_delta: Some(0.5),
        default_query_delta: Some(1e-8),
        budget_tiers: Vec::new(),
        engine: Some(engine()),
        snapshot_max_age: privgate::config::dataset::DEFAULT_SNAPSHOT_MAX_AGE,
    }
}

async fn generate(store: &Store, url: &str, n: i64) -> Duration {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let started = Instant::now();
    sqlx::query("CREATE TABLE big (id BIGINT PRIMARY KEY, customer_id TEXT NOT NULL, region TEXT NOT NULL, amount BIGINT NOT NULL, merchant TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let customers = (n / 10).max(1);
    let insert = match store.engine() {
        Engine::Postgres => format!(
            "INSERT INTO big SELECT i, 'c' || (i % {customers}), (ARRAY['north','south','east','west'])[1 + ((i * 7919) % 4)::int], \
             (i * 2654435761) % 100000, 'm' || ((i * 104729) % 1000) FROM generate_series(1, {n}::bigint) AS i"
        ),
        Engine::Sqlite => format!(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) \
             INSERT INTO big SELECT i, 'c' || (i % {customers}), \
             CASE (i * 7919) % 4 WHEN 0 THEN 'north' WHEN 1 THEN 'south' WHEN 2 THEN 'east' ELSE 'west' END, \
             (i * 2654435761) % 100000, 'm' || ((i * 104729) % 1000) FROM s"
        ),
    };
    sqlx::query(&insert).execute(&pool).await.unwrap();
    // The truncation's window: one index lets the database read each unit's rows in order.
    sqlx::query("CREATE INDEX big_unit ON big (customer_id, id)")
        .execute(&pool)
        .await
        .unwrap();
    let analyze = match store.engine() {
        Engine::Postgres => "ANALYZE big",
        Engine::Sqlite => "ANALYZE",
    };
    sqlx::query(analyze).execute(&pool).await.unwrap();
    pool.close().await;
    started.elapsed()
}

async fn measure(engine: &str, store: Store, url: String) {
    let n = rows();
    let generated = generate(&store, &url, n).await;
    println!(
        "{engine}: generated {n} rows (+ index) in {:.1} s",
        generated.as_secs_f64()
    );
    let datasets = Datasets::build(&[dataset()]).unwrap();
    let engine = format!("{engine} {:?}", self::engine()).to_lowercase();
    if self::engine() == QueryEngine::Snapshot {
        // The copy is read by the first query (once per `snapshot_max_age`): timed apart.
        let request = AnswerRequest {
            dataset: "big".into(),
            sql: "SELECT COUNT(*) FROM big".into(),
            epsilon: Some(0.5),
            accuracy: None,
            delta: None,
            dry_run: false,
        };
        let started = Instant::now();
        datasets
            .answer(&store, "User:bench", None, &request)
            .await
            .unwrap();
        println!(
            "{engine}: {:>8.0} ms  first query, reading the copy (test process RSS now {} MiB)",
            started.elapsed().as_secs_f64() * 1000.0,
            resident_mib()
        );
    }
    for (i, sql) in QUERIES.iter().enumerate() {
        let request = AnswerRequest {
            dataset: "big".into(),
            sql: sql.to_string(),
            epsilon: Some(1.0 + i as f64 / 1000.0),
            accuracy: None,
            delta: None,
            dry_run: false,
        };
        let started = Instant::now();
        let outcome = datasets
            .answer(&store, "User:bench", None, &request)
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert!(!outcome.cached);
        println!(
            "{engine}: {:>8.0} ms  {sql}",
            elapsed.as_secs_f64() * 1000.0
        );
        if store.engine() == Engine::Postgres && self::engine() == QueryEngine::Pushdown {
            let ms = psql_ms(&url, &statements(sql));
            println!(
                "{engine}: {ms:>8.0} ms  the same statements in psql (engine / psql = {:.2})",
                elapsed.as_secs_f64() * 1000.0 / ms
            );
        }
    }
}

/// This process's resident memory (Linux), MiB.
fn resident_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}

/// The statements the pushdown runs for `sql`: the tally and, for a quantile, its values.
fn statements(sql: &str) -> Vec<Pushdown> {
    let d = dataset();
    let q = query::parse(sql, &d).unwrap();
    let mut out = vec![pushdown::tally_sql(&d, &q, None)];
    if sql.contains("MEDIAN") {
        out.push(pushdown::values_sql(&d, &q, "amount", None));
    }
    out
}

/// Runs `statements` in psql with its own `\timing` (results read and discarded, as the
/// engine reads them) and returns the total milliseconds psql reports.
fn psql_ms(url: &str, statements: &[Pushdown]) -> f64 {
    let mut command = std::process::Command::new("psql");
    command.args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1"]);
    command.args(["-c", "\\timing on", "-c", "\\o /dev/null"]);
    for statement in statements {
        let mut sql = statement.sql.clone();
        // Highest placeholder first, so that $1 does not match the start of $10.
        for (i, literal) in statement.binds.iter().enumerate().rev() {
            let value = match literal {
                Literal::Int(v) => v.to_string(),
                Literal::Text(v) => format!("'{}'", v.replace('\'', "''")),
            };
            sql = sql.replace(&format!("${}", i + 1), &value);
        }
        command.args(["-c", &sql]);
    }
    let output = command.output().expect("psql runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            l.strip_prefix("Time: ")?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: generates millions of rows; run by hand"]
async fn query_latency_on_sqlite() {
    let (store, url, _guard) = sqlite_store().await;
    measure("sqlite", store, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: generates millions of rows; run by hand"]
async fn query_latency_on_postgres() {
    let Some((store, url, _guard)) = postgres_store().await else {
        return;
    };
    measure("postgres", store, url).await;
}

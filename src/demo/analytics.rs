//! The demo's analytics datasets: the synthetic bank's transactions, loaded into the demo
//! store's database (rewritten on every run), and its accounts, written as a CSV file beside
//! the config (a CSV source), for `privgate query` to ask differentially private questions
//! of through the gateway.

use super::data::Bank;
use sqlx::AnyPool;
use std::path::Path;

/// Rows per INSERT statement: one statement per batch keeps loading ~80,000 rows quick.
const BATCH: usize = 500;

/// Every this many transactions one goes to a market stall no other customer uses: a
/// merchant the keyed GROUP BY must not release.
const STALL_EVERY: i64 = 500;

/// Replaces `demo_transactions` in the database at `url` and `accounts.csv` in `dir` with
/// the synthetic bank's data.
pub(crate) async fn load(url: &str, dir: &Path) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let bank = Bank::generate();
    let city = |customer_id: u32| {
        bank.customers[customer_id as usize - 1]
            .address
            .city
            .clone()
    };
    let mut transactions: Vec<Vec<String>> = Vec::new();
    for account in &bank.accounts {
        for t in bank.transactions(account.id) {
            let id = transactions.len() as i64 + 1;
            let merchant = if id % STALL_EVERY == 0 {
                format!("Market stall {id}")
            } else {
                t.counterparty.to_owned()
            };
            transactions.push(vec![
                id.to_string(),
                sql_text(&account.customer_id.to_string()),
                sql_text(&city(account.customer_id)),
                sql_text(t.counterparty),
                sql_text(&merchant),
                t.amount_minor.to_string(),
            ]);
        }
    }
    replace(
        &pool,
        "demo_transactions",
        "id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, city TEXT NOT NULL, counterparty TEXT NOT NULL, merchant TEXT NOT NULL, amount_minor INTEGER NOT NULL",
        &transactions,
    )
    .await?;
    pool.close().await;
    let mut accounts = csv::Writer::from_path(dir.join("accounts.csv"))?;
    accounts.write_record(["id", "customer_id", "city", "kind", "balance_minor"])?;
    for a in &bank.accounts {
        accounts.write_record([
            a.id.to_string(),
            a.customer_id.to_string(),
            city(a.customer_id),
            a.kind.to_owned(),
            a.balance_minor.to_string(),
        ])?;
    }
    accounts.flush()?;
    Ok(())
}

/// A quoted SQL string literal. The demo's own synthetic values only (never user input).
fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn replace(
    pool: &AnyPool,
    table: &str,
    columns: &str,
    rows: &[Vec<String>],
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE TABLE {table} ({columns})"))
        .execute(&mut *tx)
        .await?;
    for batch in rows.chunks(BATCH) {
        let values: Vec<String> = batch
            .iter()
            .map(|r| format!("({})", r.join(", ")))
            .collect();
        sqlx::query(&format!("INSERT INTO {table} VALUES {}", values.join(", ")))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The `[[dataset]]` tables and the route the demo config carries.
pub(crate) const CONFIG: &str = r#"
# Differentially private analytics (docs/analytics.md): analysts (role analyst, purpose
# analytics) ask aggregate questions with `privgate query`; answers carry OpenDP noise and
# spend privacy budget. Transactions are loaded into privgate.db; accounts are a CSV file.
[[route]]
name = "analytics"
path_prefix = "/analytics/v1"
serve = "analytics"

[[dataset]]
name = "transactions"
source = { table = "demo_transactions" }
privacy_unit = "customer_id"
max_rows_per_unit = 40
max_groups_per_unit = 2         # GROUP BY: a customer counts in at most 2 cities/counterparties
max_rows_per_group = 20         # ... with at most 20 rows in each
truncate_order = "id"
analyst_epsilon = 3.0
global_epsilon = 6.0
analyst_delta = 1e-5            # GROUP BY merchant (a key column) needs delta > 0
global_delta = 1e-4
default_query_delta = 1e-6
budget_period = "30d"
cache_window = "1h"
# engine = "snapshot"           # answer from an in-memory copy, read again every snapshot_max_age
# snapshot_max_age = "10m"      # (default "pushdown" for a database: SQL at every query, always current)

[dataset.column.merchant]       # no public list: a merchant is released only above a threshold
type = "key"

[dataset.column.amount_minor]
type = "integer"
lower = -20000
upper = 10000

[dataset.column.city]
type = "categorical"
categories = ["London", "Leeds", "Bristol", "Glasgow", "Cardiff", "Belfast", "York"]

[dataset.column.counterparty]
type = "categorical"
categories = ["Grocer Ltd", "Rail Co", "Energy plc", "Coffee House", "Bookshop", "Pharmacy", "Payroll"]

[[dataset]]
name = "accounts"
source = { csv = "accounts.csv", table = "accounts" }   # written beside this file; answered by the snapshot engine
privacy_unit = "customer_id"
max_rows_per_unit = 3
max_groups_per_unit = 2
max_rows_per_group = 3
truncate_order = "id"
analyst_epsilon = 3.0
global_epsilon = 9.0
budget_period = "30d"
cache_window = "1h"

[[dataset.budget_tier]]         # granted to role senior_analyst by policies/analytics.cedar
name = "senior"
analyst_epsilon = 6.0

[dataset.column.balance_minor]
type = "integer"
lower = -50000
upper = 5000000

[dataset.column.city]
type = "categorical"
categories = ["London", "Leeds", "Bristol", "Glasgow", "Cardiff", "Belfast", "York"]

[dataset.column.kind]
type = "categorical"
categories = ["current", "savings"]
"#;

//! The demo's analytics datasets: the synthetic bank's transactions and accounts, loaded
//! into the demo store's database (rewritten on every run) for `privgate query` to ask
//! differentially private questions of through the gateway.

use super::data::Bank;
use sqlx::AnyPool;

/// Rows per INSERT statement: one statement per batch keeps loading ~80,000 rows quick.
const BATCH: usize = 500;

/// Transactions of customers: (id, customer_id, city, counterparty, amount_minor).
type TransactionRow = (i64, String, String, &'static str, i64);

/// Replaces `demo_transactions` and `demo_accounts` in the database at `url` with the
/// synthetic bank's data.
pub async fn load(url: &str) -> anyhow::Result<()> {
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
    let mut tx_rows: Vec<TransactionRow> = Vec::new();
    for account in &bank.accounts {
        for t in bank.transactions(account.id) {
            let id = tx_rows.len() as i64 + 1;
            tx_rows.push((
                id,
                account.customer_id.to_string(),
                city(account.customer_id),
                t.counterparty,
                t.amount_minor,
            ));
        }
    }
    let accounts: Vec<Vec<String>> = bank
        .accounts
        .iter()
        .map(|a| {
            vec![
                a.id.to_string(),
                sql_text(&a.customer_id.to_string()),
                sql_text(&city(a.customer_id)),
                sql_text(a.kind),
                a.balance_minor.to_string(),
            ]
        })
        .collect();
    let transactions: Vec<Vec<String>> = tx_rows
        .iter()
        .map(|(id, customer, city, counterparty, amount)| {
            vec![
                id.to_string(),
                sql_text(customer),
                sql_text(city),
                sql_text(counterparty),
                amount.to_string(),
            ]
        })
        .collect();
    replace(
        &pool,
        "demo_transactions",
        "id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, city TEXT NOT NULL, counterparty TEXT NOT NULL, amount_minor INTEGER NOT NULL",
        &transactions,
    )
    .await?;
    replace(
        &pool,
        "demo_accounts",
        "id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, city TEXT NOT NULL, kind TEXT NOT NULL, balance_minor INTEGER NOT NULL",
        &accounts,
    )
    .await?;
    pool.close().await;
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
pub const CONFIG: &str = r#"
# Differentially private analytics (docs/analytics.md): analysts (role analyst, purpose
# analytics) ask aggregate questions with `privgate query`; answers carry OpenDP noise and
# spend privacy budget. The tables are the sample bank's, loaded into privgate.db.
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
budget_period = "30d"
cache_window = "1h"

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
source = { table = "demo_accounts" }
privacy_unit = "customer_id"
max_rows_per_unit = 3
max_groups_per_unit = 2
max_rows_per_group = 3
truncate_order = "id"
analyst_epsilon = 3.0
global_epsilon = 6.0
budget_period = "30d"
cache_window = "1h"

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

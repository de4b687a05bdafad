//! How much of a dataset's global privacy budget the current period has left, for the
//! operator's metrics (budget exhaustion is an alert: every analyst is refused until the
//! period ends).

use super::answer::{epsilon_of, nano, period};
use crate::config::DatasetConfig;
use crate::store::{Store, StoreError};

/// Epsilon left of `config`'s global budget this period (never below zero).
pub(crate) async fn global_epsilon_left(
    config: &DatasetConfig,
    store: &Store,
) -> Result<f64, StoreError> {
    let period = period(config, crate::store::now_ms());
    // Any analyst name: only the global figure is read.
    let (_, global_spent) = store
        .privacy_budget_spent(&config.name, "", period.start)
        .await?;
    Ok(epsilon_of(
        (nano(config.global_epsilon) - global_spent).max(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BudgetDebit;

    #[tokio::test]
    async fn what_is_left_follows_every_analysts_debits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/b.db", dir.path().display()))
            .await
            .unwrap();
        let config = super::super::tests::dataset();
        let full = global_epsilon_left(&config, &store).await.unwrap();
        assert!((full - config.global_epsilon).abs() < 1e-9, "{full}");
        let now = crate::store::now_ms();
        for analyst in ["ana", "bob"] {
            let debit = BudgetDebit {
                dataset: &config.name,
                analyst,
                period_start: period(&config, now).start,
                cost_nano: nano(0.25),
                analyst_limit_nano: nano(config.analyst_epsilon),
                global_limit_nano: nano(config.global_epsilon),
                delta_cost_atto: 0,
                analyst_delta_limit_atto: 0,
                global_delta_limit_atto: 0,
                query_hash: "q",
                now_ms: now,
            };
            store.debit_privacy_budget(&debit).await.unwrap();
        }
        let left = global_epsilon_left(&config, &store).await.unwrap();
        assert!(
            (left - (config.global_epsilon - 0.5)).abs() < 1e-9,
            "{left}"
        );
    }
}

//! The privacy-budget ledger and the answer cache of differentially private analytics.
//!
//! A debit checks and spends both the analyst's and the dataset's global budget in one
//! transaction, each with a conditional `UPDATE ... WHERE spent_nano + cost <= limit` (and
//! the same for delta, in atto-delta, in the same statement): on
//! PostgreSQL concurrent updates of a row serialise and re-check the guard, on SQLite the
//! first write takes the database's single write lock. Either both budgets are debited or
//! neither is.

use super::{Store, StoreError};
use sqlx::Row;

/// One debit to make.
#[derive(Debug, Clone)]
pub struct BudgetDebit<'a> {
    /// Dataset name.
    pub dataset: &'a str,
    /// The analyst (principal kind and id).
    pub analyst: &'a str,
    /// Start of the current budget period, Unix ms.
    pub period_start: i64,
    /// The cost, nano-epsilon.
    pub cost_nano: i64,
    /// The analyst's limit per period, nano-epsilon.
    pub analyst_limit_nano: i64,
    /// The dataset's global limit per period, nano-epsilon.
    pub global_limit_nano: i64,
    /// The cost in delta, atto-delta (1e-18; 0 for pure epsilon-DP queries).
    pub delta_cost_atto: i64,
    /// The analyst's delta limit per period, atto-delta (0 when none is declared).
    pub analyst_delta_limit_atto: i64,
    /// The dataset's global delta limit per period, atto-delta.
    pub global_delta_limit_atto: i64,
    /// Hash of the normalized query (for the spends log; never the SQL itself).
    pub query_hash: &'a str,
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// What a debit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebitOutcome {
    /// Both budgets were debited; what each has spent now.
    Debited {
        /// The analyst's spend this period, nano-epsilon.
        analyst_spent_nano: i64,
        /// Everyone's spend this period, nano-epsilon.
        global_spent_nano: i64,
        /// The analyst's delta spend this period, atto-delta.
        analyst_delta_atto: i64,
        /// Everyone's delta spend this period, atto-delta.
        global_delta_atto: i64,
    },
    /// The analyst's budget cannot cover the cost; nothing was debited.
    AnalystExhausted,
    /// The dataset's global budget cannot cover the cost; nothing was debited.
    GlobalExhausted,
}

/// A cached answer, or who is computing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachedAnswer {
    /// The answer (JSON), valid until `expires_at`.
    Ready(String),
    /// Someone holds the claim and is computing it.
    Pending,
    /// Nothing usable: the caller may claim it.
    Absent,
}

fn analyst_scope(analyst: &str) -> String {
    format!("analyst:{analyst}")
}

impl Store {
    /// Debits `cost_nano` from the analyst's and the global budget, or neither.
    pub async fn debit_privacy_budget(
        &self,
        d: &BudgetDebit<'_>,
    ) -> Result<DebitOutcome, StoreError> {
        let analyst = analyst_scope(d.analyst);
        let mut tx = self.pool.begin().await?;
        for scope in [analyst.as_str(), "global"] {
            sqlx::query(
                "INSERT INTO dp_budget (dataset, scope, period_start, spent_nano) VALUES ($1, $2, $3, 0) \
                 ON CONFLICT (dataset, scope, period_start) DO NOTHING",
            )
            .bind(d.dataset)
            .bind(scope)
            .bind(d.period_start)
            .execute(&mut *tx)
            .await?;
        }
        let mut spent = [(0i64, 0i64); 2];
        for (i, (scope, limit, delta_limit)) in [
            (
                analyst.as_str(),
                d.analyst_limit_nano,
                d.analyst_delta_limit_atto,
            ),
            ("global", d.global_limit_nano, d.global_delta_limit_atto),
        ]
        .into_iter()
        .enumerate()
        {
            let row = sqlx::query(
                "UPDATE dp_budget SET spent_nano = spent_nano + $4, spent_delta_atto = spent_delta_atto + $6 \
                 WHERE dataset = $1 AND scope = $2 AND period_start = $3 AND spent_nano + $4 <= $5 \
                 AND spent_delta_atto + $6 <= $7 \
                 RETURNING spent_nano, spent_delta_atto",
            )
            .bind(d.dataset)
            .bind(scope)
            .bind(d.period_start)
            .bind(d.cost_nano)
            .bind(limit)
            .bind(d.delta_cost_atto)
            .bind(delta_limit)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                Some(row) => {
                    spent[i] = (row.try_get("spent_nano")?, row.try_get("spent_delta_atto")?)
                }
                None => {
                    tx.rollback().await?;
                    return Ok(match i {
                        0 => DebitOutcome::AnalystExhausted,
                        _ => DebitOutcome::GlobalExhausted,
                    });
                }
            }
        }
        sqlx::query(
            "INSERT INTO dp_spends (id, dataset, analyst, cost_nano, query_hash, spent_at, delta_cost_atto) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(d.dataset)
        .bind(d.analyst)
        .bind(d.cost_nano)
        .bind(d.query_hash)
        .bind(d.now_ms)
        .bind(d.delta_cost_atto)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(DebitOutcome::Debited {
            analyst_spent_nano: spent[0].0,
            global_spent_nano: spent[1].0,
            analyst_delta_atto: spent[0].1,
            global_delta_atto: spent[1].1,
        })
    }

    /// What the analyst and everyone have spent on `dataset` in the period (nano-epsilon).
    pub async fn privacy_budget_spent(
        &self,
        dataset: &str,
        analyst: &str,
        period_start: i64,
    ) -> Result<(i64, i64), StoreError> {
        self.spent_by_scope(dataset, analyst, period_start, "spent_nano")
            .await
    }

    /// What the analyst and everyone have spent of delta on `dataset` in the period
    /// (atto-delta).
    pub async fn privacy_delta_spent(
        &self,
        dataset: &str,
        analyst: &str,
        period_start: i64,
    ) -> Result<(i64, i64), StoreError> {
        self.spent_by_scope(dataset, analyst, period_start, "spent_delta_atto")
            .await
    }

    /// The analyst's and the global value of one spend `column` (a fixed column name,
    /// never input) in the period; 0 where nothing was spent yet.
    async fn spent_by_scope(
        &self,
        dataset: &str,
        analyst: &str,
        period_start: i64,
        column: &'static str,
    ) -> Result<(i64, i64), StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT scope, {column} AS spent FROM dp_budget WHERE dataset = $1 AND period_start = $2 AND scope IN ($3, 'global')"
        ))
        .bind(dataset)
        .bind(period_start)
        .bind(analyst_scope(analyst))
        .fetch_all(&self.pool)
        .await?;
        let mut spent = (0, 0);
        for row in rows {
            let scope: String = row.try_get("scope")?;
            let value: i64 = row.try_get("spent")?;
            match scope.as_str() {
                "global" => spent.1 = value,
                _ => spent.0 = value,
            }
        }
        Ok(spent)
    }

    /// The number of debits recorded for `dataset` (all analysts, all periods).
    pub async fn privacy_spend_count(&self, dataset: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM dp_spends WHERE dataset = $1")
            .bind(dataset)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// The cached answer to a query, if any is valid at `now_ms`.
    pub async fn cached_answer(
        &self,
        dataset: &str,
        key: &str,
        now_ms: i64,
    ) -> Result<CachedAnswer, StoreError> {
        let row = sqlx::query(
            "SELECT answer, expires_at FROM dp_answers WHERE dataset = $1 AND query_key = $2",
        )
        .bind(dataset)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(CachedAnswer::Absent);
        };
        let expires_at: i64 = row.try_get("expires_at")?;
        Ok(match row.try_get::<Option<String>, _>("answer")? {
            _ if expires_at <= now_ms => CachedAnswer::Absent,
            Some(answer) => CachedAnswer::Ready(answer),
            None => CachedAnswer::Pending,
        })
    }

    /// Claims the right to compute a query's answer; true when this caller holds it. An
    /// expired entry, or a claim older than `stale_before_ms` (its holder died), is taken over.
    pub async fn claim_answer(
        &self,
        dataset: &str,
        key: &str,
        claim: &str,
        now_ms: i64,
        expires_at: i64,
        stale_before_ms: i64,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "INSERT INTO dp_answers (dataset, query_key, claim, claimed_at, expires_at, answer) \
             VALUES ($1, $2, $3, $4, $5, NULL) \
             ON CONFLICT (dataset, query_key) DO UPDATE SET claim = excluded.claim, \
             claimed_at = excluded.claimed_at, expires_at = excluded.expires_at, answer = NULL \
             WHERE dp_answers.expires_at <= $4 OR (dp_answers.answer IS NULL AND dp_answers.claimed_at <= $6) \
             RETURNING claim",
        )
        .bind(dataset)
        .bind(key)
        .bind(claim)
        .bind(now_ms)
        .bind(expires_at)
        .bind(stale_before_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Stores the answer under the caller's claim, and drops the dataset's expired answers
    /// (so the cache holds at most one window's worth of queries).
    pub async fn store_answer(
        &self,
        dataset: &str,
        key: &str,
        claim: &str,
        answer: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE dp_answers SET answer = $4 WHERE dataset = $1 AND query_key = $2 AND claim = $3",
        )
        .bind(dataset)
        .bind(key)
        .bind(claim)
        .bind(answer)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "DELETE FROM dp_answers WHERE dataset = $1 AND expires_at <= $2 AND answer IS NOT NULL",
        )
        .bind(dataset)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up a claim without an answer (the query failed or was refused).
    pub async fn release_answer_claim(
        &self,
        dataset: &str,
        key: &str,
        claim: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM dp_answers WHERE dataset = $1 AND query_key = $2 AND claim = $3 AND answer IS NULL")
            .bind(dataset)
            .bind(key)
            .bind(claim)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The pool, for analytics datasets kept in the gateway's own database.
    pub(crate) fn pool(&self) -> &sqlx::AnyPool {
        &self.pool
    }
}

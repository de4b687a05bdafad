//! Risk indicators shared by replicas: the slices each replica flushes (upserted by key,
//! window, slice and replica, so a replica's rewrite replaces only its own row) and the
//! suspensions a `suspend` threshold records until an operator clears them.

use super::{Store, StoreError};
use sqlx::Row;

/// One replica's counts for one key, window and slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskSliceRow {
    /// The replica (process) that counted them.
    pub replica: String,
    /// `principal:<principal>` or `organisation:<organisation>`.
    pub scope_key: String,
    /// The window's length, ms.
    pub window_ms: i64,
    /// The slice's index (time / slice length).
    pub slice: i64,
    /// The counts, JSON.
    pub tally: String,
}

/// A principal refused until cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// The principal.
    pub principal: String,
    /// The threshold that suspended it.
    pub threshold: String,
    /// When, Unix ms.
    pub suspended_at: i64,
}

impl Store {
    /// Writes `rows` in one transaction, each replacing the same replica's row.
    pub async fn risk_write(&self, rows: &[RiskSliceRow], now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for row in rows {
            sqlx::query(
                "INSERT INTO risk_slices (scope_key, window_ms, slice, replica, tally, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (scope_key, window_ms, slice, replica) \
                 DO UPDATE SET tally = excluded.tally, updated_ms = excluded.updated_ms",
            )
            .bind(&row.scope_key)
            .bind(row.window_ms)
            .bind(row.slice)
            .bind(&row.replica)
            .bind(&row.tally)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every replica's rows for `scope_key` written since `since_ms`.
    pub async fn risk_slices(
        &self,
        scope_key: &str,
        since_ms: i64,
    ) -> Result<Vec<RiskSliceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT scope_key, window_ms, slice, replica, tally FROM risk_slices \
             WHERE scope_key = $1 AND updated_ms >= $2",
        )
        .bind(scope_key)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RiskSliceRow {
                    scope_key: r.try_get("scope_key")?,
                    window_ms: r.try_get("window_ms")?,
                    slice: r.try_get("slice")?,
                    replica: r.try_get("replica")?,
                    tally: r.try_get("tally")?,
                })
            })
            .collect()
    }

    /// Deletes rows last written before `before_ms`.
    pub async fn risk_prune(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM risk_slices WHERE updated_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Suspends `principal` unless it is suspended already or was cleared at or after
    /// `cleared_before` (the counts that caused the clearance may still be in the window);
    /// true when this call suspended it.
    pub async fn risk_suspend(
        &self,
        principal: &str,
        threshold: &str,
        now_ms: i64,
        cleared_before: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO risk_suspensions (principal, threshold, suspended_at, cleared_at) \
             VALUES ($1, $2, $3, NULL) \
             ON CONFLICT (principal) DO UPDATE SET threshold = excluded.threshold, \
             suspended_at = excluded.suspended_at, cleared_at = NULL \
             WHERE risk_suspensions.cleared_at IS NOT NULL AND risk_suspensions.cleared_at < $4",
        )
        .bind(principal)
        .bind(threshold)
        .bind(now_ms)
        .bind(cleared_before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The principal's suspension in force, if any.
    pub async fn risk_suspension(&self, principal: &str) -> Result<Option<Suspension>, StoreError> {
        let row = sqlx::query(
            "SELECT principal, threshold, suspended_at FROM risk_suspensions \
             WHERE principal = $1 AND cleared_at IS NULL",
        )
        .bind(principal)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Suspension {
                principal: r.try_get("principal")?,
                threshold: r.try_get("threshold")?,
                suspended_at: r.try_get("suspended_at")?,
            })
        })
        .transpose()
    }

    /// Lifts the principal's suspension; true when one was in force.
    pub async fn risk_clear(&self, principal: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE risk_suspensions SET cleared_at = $2 WHERE principal = $1 AND cleared_at IS NULL",
        )
        .bind(principal)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

//! TOTP enrollments: each user's sealed secret, its replay state and its failure count.
//!
//! The replay state is the highest time step ever accepted for the user. Accepting a code
//! is one conditional statement (`... SET last_step = $n WHERE last_step < $n`), so of any
//! number of concurrent attempts with one code, on any number of replicas, exactly one
//! advances it and the others find nothing to update. Failures and the lockout are kept
//! the same way: one statement counts a failure and, at the limit, sets `locked_until`.
//!
//! A pending enrollment belongs to the session that started it: another session neither
//! replaces nor confirms it until it is older than the pending time-to-live, both checked
//! inside the one conditional statement that writes.

use super::{Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One user's enrollment as stored (the secret only sealed).
#[derive(Clone)]
pub struct TotpRow {
    /// The user (token `sub`).
    pub user_id: String,
    /// The secret sealed under the keyring's `totp` key, base64url.
    pub sealed: String,
    /// The `totp` key version that sealed it.
    pub key_version: i64,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// 6 or 8.
    pub digits: i64,
    /// Confirmed with a first valid code.
    pub active: bool,
    /// Highest accepted time step.
    pub last_step: i64,
    /// Consecutive failed codes.
    pub failures: i64,
    /// Unix ms until which codes are not checked at all.
    pub locked_until: i64,
    /// Unix ms.
    pub created_at: i64,
    /// The session that started a pending enrollment (a digest, never a token).
    pub session: String,
}

impl std::fmt::Debug for TotpRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRow")
            .field("user_id", &self.user_id)
            .field("algorithm", &self.algorithm)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "user_id, sealed, key_version, algorithm, digits, active, last_step, \
                       failures, locked_until, created_at, pending_session";

impl Store {
    /// Stores a pending enrollment. It replaces a pending one only of the same session, or
    /// one created at or before `expired_before_ms` (past its time-to-live); it never
    /// replaces a confirmed one, which only an operator removes (`privgate totp remove`).
    /// False when nothing was written.
    pub async fn put_totp_enrollment(
        &self,
        row: &TotpRow,
        expired_before_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "INSERT INTO totp_enrollments ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (user_id) DO UPDATE SET sealed = excluded.sealed, \
             key_version = excluded.key_version, algorithm = excluded.algorithm, \
             digits = excluded.digits, active = excluded.active, last_step = excluded.last_step, \
             failures = excluded.failures, locked_until = excluded.locked_until, \
             created_at = excluded.created_at, pending_session = excluded.pending_session \
             WHERE totp_enrollments.active = 0 \
             AND (totp_enrollments.pending_session = excluded.pending_session \
             OR totp_enrollments.created_at <= $12)"
        ))
        .bind(&row.user_id)
        .bind(&row.sealed)
        .bind(row.key_version)
        .bind(&row.algorithm)
        .bind(row.digits)
        .bind(i64::from(row.active))
        .bind(row.last_step)
        .bind(row.failures)
        .bind(row.locked_until)
        .bind(row.created_at)
        .bind(&row.session)
        .bind(expired_before_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The user's enrollment, pending or confirmed.
    pub async fn totp_enrollment(&self, user_id: &str) -> Result<Option<TotpRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM totp_enrollments WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every enrollment, by user.
    pub async fn totp_enrollments(&self) -> Result<Vec<TotpRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM totp_enrollments ORDER BY user_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Deletes the user's enrollment; false when there was none.
    pub async fn remove_totp_enrollment(&self, user_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM totp_enrollments WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Accepts `step` for the user if it is above every step accepted before and the user
    /// is not locked. `confirming` a pending enrollment needs the session that started it
    /// and a creation time after `expired_before_ms`; without it a confirmed enrollment is
    /// needed. Resets the failure count. True for exactly one of concurrent callers.
    pub async fn accept_totp_step(
        &self,
        user_id: &str,
        step: i64,
        confirming: Option<PendingSession<'_>>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (session, expired_before_ms) = confirming
            .map(|p| (p.session, p.expired_before_ms))
            .unwrap_or(("", i64::MIN));
        let done = sqlx::query(
            "UPDATE totp_enrollments SET last_step = $2, failures = 0, active = 1 \
             WHERE user_id = $1 AND last_step < $2 AND locked_until <= $3 AND active = $4 \
             AND ($4 = 1 OR (pending_session = $5 AND created_at > $6))",
        )
        .bind(user_id)
        .bind(step)
        .bind(now_ms)
        .bind(i64::from(confirming.is_none()))
        .bind(session)
        .bind(expired_before_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts a failed code; at `max_failures` the count restarts and the user is locked
    /// until `now_ms + lockout_ms`. Returns `locked_until` (in the past when not locked).
    pub async fn record_totp_failure(
        &self,
        user_id: &str,
        max_failures: i64,
        now_ms: i64,
        lockout_ms: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "UPDATE totp_enrollments SET \
             locked_until = CASE WHEN failures + 1 >= $2 THEN $3 ELSE locked_until END, \
             failures = CASE WHEN failures + 1 >= $2 THEN 0 ELSE failures + 1 END \
             WHERE user_id = $1 RETURNING locked_until",
        )
        .bind(user_id)
        .bind(max_failures)
        .bind(now_ms.saturating_add(lockout_ms))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>("locked_until"))
            .transpose()?
            .unwrap_or(0))
    }
}

fn from_row(row: &AnyRow) -> Result<TotpRow, StoreError> {
    Ok(TotpRow {
        user_id: row.try_get("user_id")?,
        sealed: row.try_get("sealed")?,
        key_version: row.try_get("key_version")?,
        algorithm: row.try_get("algorithm")?,
        digits: row.try_get("digits")?,
        active: row.try_get::<i64, _>("active")? != 0,
        last_step: row.try_get("last_step")?,
        failures: row.try_get("failures")?,
        locked_until: row.try_get("locked_until")?,
        created_at: row.try_get("created_at")?,
        session: row.try_get("pending_session")?,
    })
}

/// Which pending enrollment a confirmation may confirm: the one `session` started, created
/// after `expired_before_ms`.
#[derive(Debug, Clone, Copy)]
pub struct PendingSession<'a> {
    /// The confirming session (a digest).
    pub session: &'a str,
    /// Pending enrollments created at or before this (unix ms) have expired.
    pub expired_before_ms: i64,
}

//! Web console sessions and sign-ins in progress, shared by every replica (the gateway's
//! `console_sessions` module owns what they mean and seals what they hold; here they are
//! only rows).
//!
//! Each row is keyed by a digest of its cookie and holds nothing usable without the cookie:
//! the access token and the PKCE verifier arrive sealed. A session read refreshes its
//! `last_seen_ms` in the one conditional statement that checks both timeouts, so an expired
//! session is never refreshed back to life. Finishing a sign-in is one `DELETE ...
//! RETURNING`: of any number of concurrent finishers, on any number of replicas, exactly one
//! gets the row. Opening a session or beginning a sign-in first sweeps expired rows, then
//! inserts only while the table holds fewer rows than the bound, in one statement.

use super::{Store, StoreError};
use sqlx::Row;

/// A session as stored.
pub struct ConsoleSessionRow {
    /// SHA-256 of the session cookie's value, base64url.
    pub id_digest: String,
    /// The access token, sealed under a key only the cookie's id gives, base64url.
    pub sealed_token: String,
    /// Unix ms of sign-in.
    pub created_ms: i64,
    /// Unix ms of the last page view.
    pub last_seen_ms: i64,
}

/// A sign-in in progress as stored.
pub struct ConsoleSignInRow {
    /// SHA-256 of the sign-in cookie's value, base64url.
    pub id_digest: String,
    /// SHA-256 of the OAuth `state`, base64url.
    pub state_digest: String,
    /// The PKCE verifier, sealed under a key only the sign-in cookie's id gives, base64url.
    pub sealed_verifier: String,
    /// The console page to return to (`''`: the home page); unchecked until read.
    pub return_to: String,
    /// Unix ms the sign-in began.
    pub created_ms: i64,
}

/// Rows last seen at or before `idle_before_ms`, or created at or before
/// `created_before_ms`, have expired.
#[derive(Debug, Clone, Copy)]
pub struct SessionCutoffs {
    /// Sessions idle since this (unix ms) or earlier have timed out.
    pub idle_before_ms: i64,
    /// Sessions created this (unix ms) or earlier have reached their absolute timeout.
    pub created_before_ms: i64,
}

/// What a session read found.
pub enum SessionLookup {
    /// A live session (now refreshed): its sealed token.
    Live(String),
    /// A session that had expired (now removed).
    Expired,
    /// No such session.
    Absent,
}

impl Store {
    /// Removes expired sessions, then stores `row` unless `max` sessions are stored already.
    /// False when the table was full.
    pub async fn open_console_session(
        &self,
        row: &ConsoleSessionRow,
        expired: SessionCutoffs,
        max: i64,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE last_seen_ms <= $1 OR created_ms <= $2")
            .bind(expired.idle_before_ms)
            .bind(expired.created_before_ms)
            .execute(&self.pool)
            .await?;
        let done = sqlx::query(
            "INSERT INTO console_sessions (id_digest, sealed_token, created_ms, last_seen_ms) \
             SELECT $1, $2, $3, $4 WHERE (SELECT COUNT(*) FROM console_sessions) < $5",
        )
        .bind(&row.id_digest)
        .bind(&row.sealed_token)
        .bind(row.created_ms)
        .bind(row.last_seen_ms)
        .bind(max)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The session `id_digest` names: within both timeouts it is refreshed to `now_ms` and
    /// its sealed token returned; past either it is removed.
    pub async fn console_session(
        &self,
        id_digest: &str,
        expired: SessionCutoffs,
        now_ms: i64,
    ) -> Result<SessionLookup, StoreError> {
        let live = sqlx::query(
            "UPDATE console_sessions SET last_seen_ms = $2 \
             WHERE id_digest = $1 AND last_seen_ms > $3 AND created_ms > $4 \
             RETURNING sealed_token",
        )
        .bind(id_digest)
        .bind(now_ms)
        .bind(expired.idle_before_ms)
        .bind(expired.created_before_ms)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = live {
            return Ok(SessionLookup::Live(row.try_get("sealed_token")?));
        }
        // Not live: either there is no such row, or it has expired and goes now.
        match self.close_console_session(id_digest).await? {
            true => Ok(SessionLookup::Expired),
            false => Ok(SessionLookup::Absent),
        }
    }

    /// Removes the session `id_digest` names; false when there was none.
    pub async fn close_console_session(&self, id_digest: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE id_digest = $1")
            .bind(id_digest)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes sign-ins begun at or before `expired_before_ms`, then stores `row` unless
    /// `max` sign-ins are stored already. False when the table was full.
    pub async fn begin_console_sign_in(
        &self,
        row: &ConsoleSignInRow,
        expired_before_ms: i64,
        max: i64,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM console_sign_ins WHERE created_ms <= $1")
            .bind(expired_before_ms)
            .execute(&self.pool)
            .await?;
        let done = sqlx::query(
            "INSERT INTO console_sign_ins \
             (id_digest, state_digest, sealed_verifier, return_to, created_ms) \
             SELECT $1, $2, $3, $4, $5 WHERE (SELECT COUNT(*) FROM console_sign_ins) < $6",
        )
        .bind(&row.id_digest)
        .bind(&row.state_digest)
        .bind(&row.sealed_verifier)
        .bind(&row.return_to)
        .bind(row.created_ms)
        .bind(max)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes the sign-in `id_digest` names and returns it: one statement, so of
    /// concurrent callers exactly one gets it. The caller checks its state and age.
    pub async fn take_console_sign_in(
        &self,
        id_digest: &str,
    ) -> Result<Option<ConsoleSignInRow>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM console_sign_ins WHERE id_digest = $1 \
             RETURNING id_digest, state_digest, sealed_verifier, return_to, created_ms",
        )
        .bind(id_digest)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ConsoleSignInRow {
                id_digest: row.try_get("id_digest")?,
                state_digest: row.try_get("state_digest")?,
                sealed_verifier: row.try_get("sealed_verifier")?,
                return_to: row.try_get("return_to")?,
                created_ms: row.try_get("created_ms")?,
            })
        })
        .transpose()
    }
}

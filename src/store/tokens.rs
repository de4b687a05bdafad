//! The token deny-list: access tokens revoked by `jti`, or every token of a subject issued
//! up to the revocation. Asked on every token-authenticated request: answers come from the
//! store, or within `[store] revocation_window` from a cache (the `fresh` module), so a
//! revocation holds on every replica at most one window after it commits, and on the
//! process that made it from its next request. Each revocation bumps the `tokens` change
//! counter in its transaction.

use super::{bump_counter, Counter, Store, StoreError};
use sqlx::Row;

/// What a revocation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRevocation {
    /// One token, by its `jti`.
    Jti,
    /// Every token of this `sub` issued (`iat`) at or before the revocation.
    Subject,
}

impl TokenRevocation {
    fn kind(self) -> &'static str {
        match self {
            Self::Jti => "jti",
            Self::Subject => "sub",
        }
    }
}

impl Store {
    /// Adds to the deny-list; revoking a subject again moves its cut-off to `now_ms`.
    pub async fn revoke_token(
        &self,
        what: TokenRevocation,
        value: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO token_revocations (kind, value, revoked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (kind, value) DO UPDATE SET revoked_at = excluded.revoked_at",
        )
        .bind(what.kind())
        .bind(value)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let version = bump_counter(&mut tx, Counter::Tokens).await?;
        tx.commit().await?;
        self.committed(Counter::Tokens, version);
        Ok(())
    }

    /// Whether a token is revoked: its `jti` is listed, or its subject was revoked at or
    /// after its `iat` (a token without `iat` counts as issued before any revocation).
    pub async fn token_revoked(
        &self,
        jti: Option<&str>,
        subject: &str,
        issued_at_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let read = self.read_token_revoked(jti, subject, issued_at_ms);
        match &self.fresh {
            Some(fresh) => {
                let key = (jti.map(str::to_owned), subject.to_owned(), issued_at_ms);
                fresh.answer(&fresh.tokens, key, read).await
            }
            None => read.await,
        }
    }

    async fn read_token_revoked(
        &self,
        jti: Option<&str>,
        subject: &str,
        issued_at_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM token_revocations \
             WHERE (kind = 'jti' AND value = $1) \
                OR (kind = 'sub' AND value = $2 AND revoked_at >= $3)",
        )
        .bind(jti)
        .bind(subject)
        .bind(issued_at_ms.unwrap_or(i64::MIN))
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        Ok(n > 0)
    }
}

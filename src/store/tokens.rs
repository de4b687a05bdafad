//! The token deny-list: access tokens revoked by `jti`, or every token of a subject issued
//! up to the revocation. Read on every token-authenticated request, so a revocation made
//! through any replica holds on all of them from the moment it commits (no cache, no
//! staleness window).

use super::{Store, StoreError};
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
        sqlx::query(
            "INSERT INTO token_revocations (kind, value, revoked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (kind, value) DO UPDATE SET revoked_at = excluded.revoked_at",
        )
        .bind(what.kind())
        .bind(value)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
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

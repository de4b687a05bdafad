//! Consent records in the store. Every change bumps the `consent` change counter in the same
//! transaction, so replicas that cache consent can tell, by one cheap read, that they must
//! refresh. The consents in force for a request come from the store or, within
//! `[store] revocation_window`, from a cache (the `fresh` module).

use super::{bump_counter, Counter, Store, StoreError};
use crate::consent::{ConsentRecord, NewConsent};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::sync::Arc;

/// Outcome of a revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked now.
    Revoked,
    /// It was already revoked; nothing changed.
    AlreadyRevoked,
    /// No consent has that id.
    NotFound,
}

impl Store {
    /// Stores a new consent (validated by the caller) and returns it.
    pub async fn grant_consent(
        &self,
        new: &NewConsent,
        now_ms: i64,
    ) -> Result<ConsentRecord, StoreError> {
        let record = ConsentRecord {
            id: uuid::Uuid::new_v4().to_string(),
            subject: new.subject.clone(),
            grantee: new.grantee.clone(),
            purposes: new.purposes.clone(),
            permissions: new.permissions.clone(),
            granted_at: now_ms,
            expires_at: new.expires_at,
            revoked_at: None,
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO consents (id, subject, grantee, purposes, permissions, granted_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(&record.id)
        .bind(&record.subject)
        .bind(&record.grantee)
        .bind(to_json(&record.purposes))
        .bind(to_json(&record.permissions))
        .bind(record.granted_at)
        .bind(record.expires_at)
        .execute(&mut *tx)
        .await?;
        let version = bump_counter(&mut tx, Counter::Consent).await?;
        tx.commit().await?;
        self.committed(Counter::Consent, version);
        Ok(record)
    }

    /// Revokes a consent from `now_ms` on. The guard `revoked_at IS NULL` makes concurrent
    /// revocations race-free: exactly one of them revokes.
    pub async fn revoke_consent(&self, id: &str, now_ms: i64) -> Result<Revocation, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked = sqlx::query(
            "UPDATE consents SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now_ms)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if revoked.is_none() {
            let exists = sqlx::query("SELECT id FROM consents WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            return Ok(if exists.is_some() {
                Revocation::AlreadyRevoked
            } else {
                Revocation::NotFound
            });
        }
        let version = bump_counter(&mut tx, Counter::Consent).await?;
        tx.commit().await?;
        self.committed(Counter::Consent, version);
        Ok(Revocation::Revoked)
    }

    /// One consent by id.
    pub async fn consent(&self, id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Consents, optionally only of one subject and/or grantee, oldest first.
    pub async fn consents(
        &self,
        subject: Option<&str>,
        grantee: Option<&str>,
    ) -> Result<Vec<ConsentRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE ($1 IS NULL OR subject = $1) AND ($2 IS NULL OR grantee = $2) ORDER BY granted_at, id"
        ))
        .bind(subject)
        .bind(grantee)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The consents of `subject` for `grantee` neither revoked nor expired at `now_ms`,
    /// oldest first: all a decision can use. Cached within the revocation window, so a
    /// caller checks expiry again at its own time.
    pub async fn consents_in_force(
        &self,
        subject: &str,
        grantee: &str,
        now_ms: i64,
    ) -> Result<Arc<[ConsentRecord]>, StoreError> {
        let read = self.read_consents_in_force(subject, grantee, now_ms);
        match &self.fresh {
            Some(fresh) => {
                let key = (subject.to_owned(), grantee.to_owned());
                fresh.answer(&fresh.consents, key, read).await
            }
            None => read.await,
        }
    }

    async fn read_consents_in_force(
        &self,
        subject: &str,
        grantee: &str,
        now_ms: i64,
    ) -> Result<Arc<[ConsentRecord]>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE subject = $1 AND grantee = $2 \
             AND (revoked_at IS NULL OR revoked_at > $3) \
             AND (expires_at IS NULL OR expires_at > $3) ORDER BY granted_at, id"
        ))
        .bind(subject)
        .bind(grantee)
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The consent change counter: it grows with every grant and revocation.
    pub async fn consent_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT version FROM change_counters WHERE name = 'consent'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("version")?)
    }
}

const SELECT: &str = "SELECT id, subject, grantee, purposes, permissions, granted_at, expires_at, revoked_at FROM consents";

/// A string list as stored (a JSON array in a text column).
pub(super) fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn from_row(row: &AnyRow) -> Result<ConsentRecord, StoreError> {
    let list = |col: &str| -> Result<Vec<String>, StoreError> {
        let text: String = row.try_get(col)?;
        serde_json::from_str(&text)
            .map_err(|_| StoreError::Invalid(format!("consents.{col} is not a JSON list")))
    };
    Ok(ConsentRecord {
        id: row.try_get("id")?,
        subject: row.try_get("subject")?,
        grantee: row.try_get("grantee")?,
        purposes: list("purposes")?,
        permissions: list("permissions")?,
        granted_at: row.try_get("granted_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

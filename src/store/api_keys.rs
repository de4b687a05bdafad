//! Service API keys: only a lookup id and an Argon2id hash of the secret are stored. A key
//! is read on every use, so a revocation holds on every replica from the moment it commits.

use super::consent::to_json;
use super::{Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One API key as stored.
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    /// The lookup id (the key's public prefix).
    pub id: String,
    /// The service the key identifies.
    pub service: String,
    /// Roles (Cedar `Role` parents).
    pub roles: Vec<String>,
    /// Purposes the service may act for.
    pub purposes: Vec<String>,
    /// Argon2id PHC string of the secret part.
    pub hash: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms, once revoked.
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, service, roles, purposes, hash, created_at, revoked_at";

impl Store {
    /// Adds a key.
    pub async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO api_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL)"
        ))
        .bind(&row.id)
        .bind(&row.service)
        .bind(to_json(&row.roles))
        .bind(to_json(&row.purposes))
        .bind(&row.hash)
        .bind(row.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The key with this lookup id, revoked or not.
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every key, oldest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Revokes a key; false when no unrevoked key has this id.
    pub async fn revoke_api_key(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn list(row: &AnyRow, column: &str) -> Result<Vec<String>, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Invalid(format!("api_keys.{column}: {e}")))
}

fn from_row(row: &AnyRow) -> Result<ApiKeyRow, StoreError> {
    Ok(ApiKeyRow {
        id: row.try_get("id")?,
        service: row.try_get("service")?,
        roles: list(row, "roles")?,
        purposes: list(row, "purposes")?,
        hash: row.try_get("hash")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

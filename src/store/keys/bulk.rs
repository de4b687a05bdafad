//! Whole-keyring operations: a consistent snapshot (backup), rewrap and restore, each one
//! transaction.

use super::super::{Engine, Store, StoreError};
use super::{
    bump_keys_version, data_key_from_row, insert_data_key_row, insert_head, keyring_from_row,
    DataKeyRow, KeyringRow, KeyringTables, SubjectKeyRow, SubjectRow, DATA_KEY_COLUMNS,
};
use sqlx::{Any, Row, Transaction};

impl Store {
    /// Every keyring table, read as one consistent snapshot.
    pub async fn keyring_tables(&self) -> Result<Option<KeyringTables>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.engine == Engine::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let tables = read_tables(&mut tx).await?;
        tx.commit().await?;
        Ok(tables)
    }

    /// Replaces every wrapped key with `rewrap(row)` and the head with `head`, in one
    /// transaction that holds the head locked at `generation` throughout, so no key can be
    /// added under the old KEK meanwhile. The new head's generation is `generation + 1`.
    pub async fn rewrap_keyring<E: From<StoreError>>(
        &self,
        generation: i64,
        head: &KeyringRow,
        mut rewrap_data: impl FnMut(&DataKeyRow) -> Result<String, E>,
        mut rewrap_subject: impl FnMut(&SubjectKeyRow) -> Result<String, E>,
    ) -> Result<bool, E> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let locked = sqlx::query(
            "UPDATE keyring SET kek_source = $1, kdf = $2, check_value = $3, \
             generation = generation + 1, updated_at = $4 WHERE id = 1 AND generation = $5 \
             RETURNING generation",
        )
        .bind(&head.kek_source)
        .bind(&head.kdf)
        .bind(&head.check_value)
        .bind(head.updated_at)
        .bind(generation)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if locked.is_none() {
            return Ok(false);
        }
        let Some(tables) = read_tables(&mut tx).await? else {
            return Ok(false);
        };
        for key in &tables.data_keys {
            let wrapped = rewrap_data(key)?;
            sqlx::query("UPDATE data_keys SET wrapped = $1 WHERE name = $2 AND version = $3")
                .bind(wrapped)
                .bind(&key.name)
                .bind(key.version)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        }
        for key in &tables.subject_keys {
            let wrapped = rewrap_subject(key)?;
            sqlx::query(
                "UPDATE subject_keys SET wrapped = $1 WHERE subject_tag = $2 AND kind = $3",
            )
            .bind(wrapped)
            .bind(&key.subject_tag)
            .bind(&key.kind)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        }
        bump_keys_version(&mut tx).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(true)
    }

    /// Writes a keyring from a backup. Refuses (`false`) if a keyring exists unless
    /// `replace`; replacing keeps the store's tombstones, and a backup's key for a subject
    /// shredded here is not brought back.
    pub async fn restore_keyring(
        &self,
        tables: &KeyringTables,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if replace {
            for statement in [
                "DELETE FROM keyring",
                "DELETE FROM data_keys",
                "DELETE FROM subject_keys",
                "DELETE FROM key_subjects WHERE shredded_at IS NULL",
            ] {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
        }
        if !insert_head(&mut tx, &tables.keyring).await? {
            return Ok(false);
        }
        for key in &tables.data_keys {
            insert_data_key_row(&mut tx, key).await?;
        }
        for subject in &tables.subjects {
            sqlx::query(
                "INSERT INTO key_subjects (subject_tag, created_at, shredded_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (subject_tag) DO NOTHING",
            )
            .bind(&subject.subject_tag)
            .bind(subject.created_at)
            .bind(subject.shredded_at)
            .execute(&mut *tx)
            .await?;
        }
        for key in &tables.subject_keys {
            sqlx::query(
                "INSERT INTO subject_keys (subject_tag, kind, wrapped, created_at) \
                 SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
                 (SELECT 1 FROM key_subjects WHERE subject_tag = $1 AND shredded_at IS NOT NULL)",
            )
            .bind(&key.subject_tag)
            .bind(&key.kind)
            .bind(&key.wrapped)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
        }
        bump_keys_version(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}

async fn read_tables(tx: &mut Transaction<'_, Any>) -> Result<Option<KeyringTables>, StoreError> {
    let head = sqlx::query(
        "SELECT keyring_id, kek_source, kdf, check_value, generation, created_at, updated_at \
         FROM keyring WHERE id = 1",
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(head) = head else {
        return Ok(None);
    };
    let data_keys = sqlx::query(&format!(
        "SELECT {DATA_KEY_COLUMNS} FROM data_keys ORDER BY name, version"
    ))
    .fetch_all(&mut **tx)
    .await?;
    let subjects = sqlx::query(
        "SELECT subject_tag, created_at, shredded_at FROM key_subjects ORDER BY subject_tag",
    )
    .fetch_all(&mut **tx)
    .await?;
    let subject_keys = sqlx::query(
        "SELECT subject_tag, kind, wrapped, created_at FROM subject_keys ORDER BY subject_tag, kind",
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(Some(KeyringTables {
        keyring: keyring_from_row(&head)?,
        data_keys: data_keys
            .iter()
            .map(data_key_from_row)
            .collect::<Result<_, _>>()?,
        subjects: subjects
            .iter()
            .map(|r| {
                Ok(SubjectRow {
                    subject_tag: r.try_get("subject_tag")?,
                    created_at: r.try_get("created_at")?,
                    shredded_at: r.try_get("shredded_at")?,
                })
            })
            .collect::<Result<_, StoreError>>()?,
        subject_keys: subject_keys
            .iter()
            .map(|r| {
                Ok(SubjectKeyRow {
                    subject_tag: r.try_get("subject_tag")?,
                    kind: r.try_get("kind")?,
                    wrapped: r.try_get("wrapped")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, StoreError>>()?,
    }))
}

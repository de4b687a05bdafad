//! The wrapped keyring in the store: one keyring head (KEK check value, KDF parameters), data
//! key versions, per-subject keys and their tombstones. Only wrapped (KEK-encrypted) key
//! material ever reaches these tables; `crate::keys` wraps and unwraps.
//!
//! Every write that changes what a replica may have cached (rotation, retirement, shred,
//! rewrap, restore) bumps the `keys` change counter in the same transaction. Every write of
//! new wrapped material first locks the keyring head at the generation the writer's KEK
//! belongs to, so a replica still holding the KEK from before a rewrap cannot add material
//! that nobody else could unwrap.

use super::{Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

mod bulk;

/// The keyring head: what a KEK must match.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyringRow {
    /// Random id, bound into every wrapped key's associated data.
    pub keyring_id: String,
    /// `passphrase` or `key_file`: what kind of KEK this keyring needs.
    pub kek_source: String,
    /// KDF name and parameters (JSON), salt included.
    pub kdf: String,
    /// A known value sealed under the KEK: opening it proves the KEK is the right one.
    pub check_value: String,
    /// Grows with every rewrap.
    pub generation: i64,
    /// When the keyring was made (Unix ms).
    pub created_at: i64,
    /// Last rewrap or restore (Unix ms).
    pub updated_at: i64,
}

/// One stored data key version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataKeyRow {
    /// Key name.
    pub name: String,
    /// Version, from 1.
    pub version: i64,
    /// `KeyKind` in snake case.
    pub kind: String,
    /// The secret sealed under the KEK (base64).
    pub wrapped: String,
    /// `active` or `retired`.
    pub status: String,
    /// Encryptions reserved so far (AEAD keys; the bound guards these).
    pub uses: i64,
    /// When this version was made (Unix ms).
    pub created_at: i64,
    /// When it was retired (Unix ms).
    pub retired_at: Option<i64>,
}

/// A data subject known to the keyring, by keyed tag; `shredded_at` makes it a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectRow {
    /// HMAC of the subject id under the keyring's subject index key.
    pub subject_tag: String,
    /// First key made (Unix ms).
    pub created_at: i64,
    /// When its keys were destroyed (Unix ms).
    pub shredded_at: Option<i64>,
}

/// One per-subject key, wrapped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectKeyRow {
    /// The subject's tag.
    pub subject_tag: String,
    /// `KeyKind` in snake case.
    pub kind: String,
    /// The secret sealed under the KEK (base64).
    pub wrapped: String,
    /// When it was made (Unix ms).
    pub created_at: i64,
}

/// Everything in the keyring tables, as a backup holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyringTables {
    /// The head.
    pub keyring: KeyringRow,
    /// Every data key version.
    pub data_keys: Vec<DataKeyRow>,
    /// Subjects and tombstones.
    pub subjects: Vec<SubjectRow>,
    /// Per-subject keys.
    pub subject_keys: Vec<SubjectKeyRow>,
}

/// Outcome of a write of new wrapped material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyWrite {
    /// Written now.
    Written,
    /// Already there (another writer won); read it back.
    Exists,
    /// The subject is shredded; nothing was written.
    Shredded,
    /// The keyring was rewrapped since the writer loaded it; nothing was written.
    GenerationChanged,
}

/// A subject key lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectKeyLookup {
    /// The wrapped key.
    Found(String),
    /// None yet.
    Missing,
    /// The subject was shredded.
    Shredded,
}

const DATA_KEY_COLUMNS: &str = "name, version, kind, wrapped, status, uses, created_at, retired_at";

impl Store {
    /// The keyring head, if a keyring exists.
    pub async fn keyring_row(&self) -> Result<Option<KeyringRow>, StoreError> {
        let row = sqlx::query(
            "SELECT keyring_id, kek_source, kdf, check_value, generation, created_at, updated_at \
             FROM keyring WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(keyring_from_row).transpose()
    }

    /// Creates the keyring with its first data keys; `false` if one exists already.
    pub async fn create_keyring(
        &self,
        head: &KeyringRow,
        keys: &[DataKeyRow],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !insert_head(&mut tx, head).await? {
            return Ok(false);
        }
        for key in keys {
            insert_data_key_row(&mut tx, key).await?;
        }
        bump_keys_version(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every data key version, by name then version.
    pub async fn data_key_rows(&self) -> Result<Vec<DataKeyRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DATA_KEY_COLUMNS} FROM data_keys ORDER BY name, version"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(data_key_from_row).collect()
    }

    /// Adds a data key version unless that (name, version) exists; written only while the
    /// keyring is still at `generation`.
    pub async fn insert_data_key(
        &self,
        generation: i64,
        key: &DataKeyRow,
    ) -> Result<KeyWrite, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !lock_generation(&mut tx, generation).await? {
            return Ok(KeyWrite::GenerationChanged);
        }
        if !insert_data_key_row(&mut tx, key).await? {
            return Ok(KeyWrite::Exists);
        }
        bump_keys_version(&mut tx).await?;
        tx.commit().await?;
        Ok(KeyWrite::Written)
    }

    /// Reserves `n` uses of an active key version if that keeps it within `bound`; returns
    /// the uses reserved so far including these, or `None` when the bound (or retirement)
    /// stops it. One conditional statement: concurrent replicas never over-reserve.
    pub async fn reserve_key_uses(
        &self,
        name: &str,
        version: i64,
        n: i64,
        bound: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "UPDATE data_keys SET uses = uses + $1 \
             WHERE name = $2 AND version = $3 AND status = 'active' AND uses + $1 <= $4 \
             RETURNING uses",
        )
        .bind(n)
        .bind(name)
        .bind(version)
        .bind(bound)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<i64, _>("uses")).transpose()?)
    }

    /// Retires the active versions of `name` below `min_version`; returns how many.
    pub async fn retire_data_keys(
        &self,
        name: &str,
        min_version: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE data_keys SET status = 'retired', retired_at = $1 \
             WHERE name = $2 AND version < $3 AND status = 'active'",
        )
        .bind(now_ms)
        .bind(name)
        .bind(min_version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done > 0 {
            bump_keys_version(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// A subject's wrapped key of one kind. A key row beside a tombstone is never returned.
    pub async fn subject_key_row(
        &self,
        tag: &str,
        kind: &str,
    ) -> Result<SubjectKeyLookup, StoreError> {
        let row = sqlx::query(
            "SELECT s.shredded_at, k.wrapped FROM key_subjects s \
             LEFT JOIN subject_keys k ON k.subject_tag = s.subject_tag AND k.kind = $2 \
             WHERE s.subject_tag = $1",
        )
        .bind(tag)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(SubjectKeyLookup::Missing);
        };
        if row.try_get::<Option<i64>, _>("shredded_at")?.is_some() {
            return Ok(SubjectKeyLookup::Shredded);
        }
        Ok(match row.try_get::<Option<String>, _>("wrapped")? {
            Some(wrapped) => SubjectKeyLookup::Found(wrapped),
            None => SubjectKeyLookup::Missing,
        })
    }

    /// Adds a subject's key unless it has one of that kind or is shredded. The subject row
    /// is locked first (a no-op update guarded by "not shredded"), so a concurrent shred
    /// either runs before (and this writes nothing) or after (and deletes this key).
    pub async fn create_subject_key(
        &self,
        generation: i64,
        key: &SubjectKeyRow,
    ) -> Result<KeyWrite, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !lock_generation(&mut tx, generation).await? {
            return Ok(KeyWrite::GenerationChanged);
        }
        sqlx::query(
            "INSERT INTO key_subjects (subject_tag, created_at, shredded_at) VALUES ($1, $2, NULL) \
             ON CONFLICT (subject_tag) DO NOTHING",
        )
        .bind(&key.subject_tag)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        let live = sqlx::query(
            "UPDATE key_subjects SET created_at = created_at \
             WHERE subject_tag = $1 AND shredded_at IS NULL RETURNING subject_tag",
        )
        .bind(&key.subject_tag)
        .fetch_optional(&mut *tx)
        .await?;
        if live.is_none() {
            return Ok(KeyWrite::Shredded);
        }
        let written = insert_subject_key_row(&mut tx, key).await?;
        tx.commit().await?;
        Ok(if written {
            KeyWrite::Written
        } else {
            KeyWrite::Exists
        })
    }

    /// Destroys a subject's keys and leaves a tombstone; `false` if it was shredded before.
    pub async fn shred_subject(&self, tag: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let first = sqlx::query(
            "INSERT INTO key_subjects (subject_tag, created_at, shredded_at) VALUES ($1, $2, $2) \
             ON CONFLICT (subject_tag) DO UPDATE SET shredded_at = excluded.shredded_at \
             WHERE key_subjects.shredded_at IS NULL RETURNING subject_tag",
        )
        .bind(tag)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        sqlx::query("DELETE FROM subject_keys WHERE subject_tag = $1")
            .bind(tag)
            .execute(&mut *tx)
            .await?;
        bump_keys_version(&mut tx).await?;
        tx.commit().await?;
        Ok(first)
    }

    /// How many data subjects have been shredded (tombstones), for operators' eyes.
    pub async fn shredded_subjects(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS shredded FROM key_subjects WHERE shredded_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("shredded")?)
    }

    /// The keys change counter: grows with every rotation, retirement, shred, rewrap and
    /// restore, so replicas know by one cheap read when their caches are stale.
    pub async fn keys_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT version FROM change_counters WHERE name = 'keys'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("version")?)
    }
}

async fn insert_head(tx: &mut Transaction<'_, Any>, head: &KeyringRow) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO keyring (id, keyring_id, kek_source, kdf, check_value, generation, created_at, updated_at) \
         VALUES (1, $1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(&head.keyring_id)
    .bind(&head.kek_source)
    .bind(&head.kdf)
    .bind(&head.check_value)
    .bind(head.generation)
    .bind(head.created_at)
    .bind(head.updated_at)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(inserted.is_some())
}

async fn insert_data_key_row(
    tx: &mut Transaction<'_, Any>,
    key: &DataKeyRow,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(&format!(
        "INSERT INTO data_keys ({DATA_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (name, version) DO NOTHING RETURNING name"
    ))
    .bind(&key.name)
    .bind(key.version)
    .bind(&key.kind)
    .bind(&key.wrapped)
    .bind(&key.status)
    .bind(key.uses)
    .bind(key.created_at)
    .bind(key.retired_at)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(inserted.is_some())
}

async fn insert_subject_key_row(
    tx: &mut Transaction<'_, Any>,
    key: &SubjectKeyRow,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO subject_keys (subject_tag, kind, wrapped, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (subject_tag, kind) DO NOTHING RETURNING subject_tag",
    )
    .bind(&key.subject_tag)
    .bind(&key.kind)
    .bind(&key.wrapped)
    .bind(key.created_at)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(inserted.is_some())
}

/// Locks the keyring head for the rest of the transaction if it is still at `generation`.
async fn lock_generation(
    tx: &mut Transaction<'_, Any>,
    generation: i64,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "UPDATE keyring SET generation = generation WHERE id = 1 AND generation = $1 \
         RETURNING generation",
    )
    .bind(generation)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

async fn bump_keys_version(tx: &mut Transaction<'_, Any>) -> Result<(), StoreError> {
    sqlx::query("UPDATE change_counters SET version = version + 1 WHERE name = 'keys'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn keyring_from_row(row: &AnyRow) -> Result<KeyringRow, StoreError> {
    Ok(KeyringRow {
        keyring_id: row.try_get("keyring_id")?,
        kek_source: row.try_get("kek_source")?,
        kdf: row.try_get("kdf")?,
        check_value: row.try_get("check_value")?,
        generation: row.try_get("generation")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn data_key_from_row(row: &AnyRow) -> Result<DataKeyRow, StoreError> {
    Ok(DataKeyRow {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        kind: row.try_get("kind")?,
        wrapped: row.try_get("wrapped")?,
        status: row.try_get("status")?,
        uses: row.try_get("uses")?,
        created_at: row.try_get("created_at")?,
        retired_at: row.try_get("retired_at")?,
    })
}

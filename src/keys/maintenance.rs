//! The operator's keyring operations (`privgate keys ...`): create, rewrap under a new KEK,
//! back up and restore. Plain key material never leaves the process: rewrap opens each key
//! and seals it again in memory; backups hold only wrapped keys and the KEK check value.

use super::kek::{require_strong, Kdf, Kek, KekMaterial};
use super::keyring::unlock;
use super::stored::{self, INDEX_KEY_NAME};
use super::{KeyError, KeyKind};
use crate::config::Argon2Config;
use crate::store::{now_ms, KeyringRow, KeyringTables, Store};
use std::path::Path;

/// Format tag of backup files.
const BACKUP_FORMAT: &str = "privgate-keyring-backup/v1";
/// Largest backup file read: about two million subject keys.
const MAX_BACKUP_BYTES: u64 = 1 << 30;

/// Creates the store's keyring: a random keyring id, a fresh Argon2id salt (passphrase
/// KEKs), the check value and the subject index key. Refuses if a keyring exists, and
/// refuses passphrases shorter than [`super::kek::MIN_PASSPHRASE_CHARS`].
pub async fn init(
    store: &Store,
    material: &KekMaterial,
    argon2: Argon2Config,
) -> Result<KeyringRow, KeyError> {
    if store.keyring_row().await?.is_some() {
        return Err(KeyError::KeyringExists);
    }
    require_strong(material)?;
    let kdf = Kdf::fresh(material, argon2)?;
    let kek = Kek::derive(material, &kdf)?;
    let keyring_id = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    let head = KeyringRow {
        check_value: kek.check_value(&keyring_id)?,
        kek_source: kdf.source_name().to_owned(),
        kdf: kdf_json(&kdf),
        keyring_id,
        generation: 1,
        created_at: now,
        updated_at: now,
    };
    let index = stored::new_data_key_row(
        &kek,
        &head.keyring_id,
        INDEX_KEY_NAME,
        1,
        KeyKind::Hmac,
        now,
    )?;
    if !store.create_keyring(&head, &[index]).await? {
        return Err(KeyError::KeyringExists);
    }
    Ok(head)
}

/// What a rewrap changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrapped {
    /// Data key versions re-sealed (the subject index key included).
    pub data_keys: usize,
    /// Per-subject keys re-sealed.
    pub subject_keys: usize,
}

/// Re-seals every wrapped key under a new KEK (a new passphrase, or the same one with a
/// fresh salt and `argon2` cost, or a new key file), and replaces the check value, in one
/// transaction. Running gateways holding the old KEK fail closed until restarted.
pub async fn rewrap(
    store: &Store,
    old: &KekMaterial,
    new: &KekMaterial,
    argon2: Argon2Config,
) -> Result<Rewrapped, KeyError> {
    let head = store.keyring_row().await?.ok_or(KeyError::NoKeyring)?;
    let old_kek = unlock(old, &head)?;
    require_strong(new)?;
    let kdf = Kdf::fresh(new, argon2)?;
    let new_kek = Kek::derive(new, &kdf)?;
    let id = head.keyring_id.clone();
    let new_head = KeyringRow {
        kek_source: kdf.source_name().to_owned(),
        kdf: kdf_json(&kdf),
        check_value: new_kek.check_value(&id)?,
        generation: head.generation + 1,
        updated_at: now_ms(),
        ..head.clone()
    };
    let mut counts = Rewrapped {
        data_keys: 0,
        subject_keys: 0,
    };
    let done = store
        .rewrap_keyring(
            head.generation,
            &new_head,
            |row| {
                counts.data_keys += 1;
                stored::rewrap_data_key(&old_kek, &new_kek, &id, row)
            },
            |row| {
                counts.subject_keys += 1;
                stored::rewrap_subject_key(&old_kek, &new_kek, &id, row)
            },
        )
        .await?;
    if !done {
        return Err(KeyError::Refused(
            "the keyring changed while it was being rewrapped; run rewrap again".into(),
        ));
    }
    Ok(counts)
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Backup {
    format: String,
    created_at: i64,
    #[serde(flatten)]
    tables: KeyringTables,
}

/// Writes the wrapped keyring to `out` (created, never overwritten; mode 0600) after
/// checking that `material` opens all of it, so a backup is known to be restorable with
/// that KEK. Returns the tables written.
pub async fn backup(
    store: &Store,
    material: &KekMaterial,
    out: &Path,
) -> Result<KeyringTables, KeyError> {
    let tables = store.keyring_tables().await?.ok_or(KeyError::NoKeyring)?;
    verify_tables(material, &tables)?;
    let backup = Backup {
        format: BACKUP_FORMAT.to_owned(),
        created_at: now_ms(),
        tables,
    };
    let text = serde_json::to_vec_pretty(&backup)
        .map_err(|e| KeyError::Refused(format!("cannot encode the backup: {e}")))?;
    let file_error = |e: std::io::Error| {
        KeyError::Refused(format!("{}: cannot write the backup: {e}", out.display()))
    };
    crate::private_file::write(out, &text, crate::private_file::Existing::Refuse)
        .map_err(file_error)?;
    Ok(backup.tables)
}

/// Restores a backup into the store after checking that `material` opens all of it
/// (nothing is written otherwise). Refuses when the store holds a keyring unless
/// `replace`; replacing keeps this store's shred tombstones.
pub async fn restore(
    store: &Store,
    material: &KekMaterial,
    input: &Path,
    replace: bool,
) -> Result<KeyringTables, KeyError> {
    let read_error =
        |e: String| KeyError::Refused(format!("{}: not a keyring backup: {e}", input.display()));
    let size = std::fs::metadata(input)
        .map_err(|e| read_error(e.to_string()))?
        .len();
    if size > MAX_BACKUP_BYTES {
        return Err(read_error("too large".into()));
    }
    let text = std::fs::read(input).map_err(|e| read_error(e.to_string()))?;
    let backup: Backup = serde_json::from_slice(&text).map_err(|e| read_error(e.to_string()))?;
    if backup.format != BACKUP_FORMAT {
        return Err(read_error(format!("format `{}`", backup.format)));
    }
    verify_tables(material, &backup.tables)?;
    if !replace && store.keyring_row().await?.is_some() {
        return Err(KeyError::KeyringExists);
    }
    if !store.restore_keyring(&backup.tables, replace).await? {
        return Err(KeyError::KeyringExists);
    }
    Ok(backup.tables)
}

/// Checks that `material` is the keyring's KEK and that every wrapped key opens.
pub fn verify_tables(material: &KekMaterial, tables: &KeyringTables) -> Result<(), KeyError> {
    let kek = unlock(material, &tables.keyring)?;
    let id = &tables.keyring.keyring_id;
    if !tables.data_keys.iter().any(|k| k.name == INDEX_KEY_NAME) {
        return Err(KeyError::Corrupted(
            "the subject index key is missing".into(),
        ));
    }
    for row in &tables.data_keys {
        stored::open_data_key(&kek, id, row)?;
    }
    for row in &tables.subject_keys {
        stored::open_subject_key(&kek, id, row)?;
    }
    Ok(())
}

/// The keyring as `keys list` shows it; no material, wrapped or not.
pub async fn listing(store: &Store) -> Result<KeyringListing, KeyError> {
    let tables = store.keyring_tables().await?.ok_or(KeyError::NoKeyring)?;
    let head = &tables.keyring;
    let kdf: Kdf = serde_json::from_str(&head.kdf)
        .map_err(|_| KeyError::Corrupted("the stored KDF parameters are unreadable".into()))?;
    let kek = match kdf {
        Kdf::Argon2id { params, .. } => format!(
            "passphrase (Argon2id m={} KiB, t={}, p={})",
            params.memory_kib, params.iterations, params.parallelism
        ),
        Kdf::None => "key file".to_owned(),
        Kdf::Pkcs11 { key_label } => format!("PKCS#11 key `{key_label}`"),
    };
    let headline = format!(
        "keyring {} (generation {}), created {}, KEK: {kek}",
        head.keyring_id,
        head.generation,
        time_text(head.created_at)
    );
    let shredded = tables
        .subjects
        .iter()
        .filter(|s| s.shredded_at.is_some())
        .count();
    let counts = format!(
        "subjects with keys: {}, per-subject keys: {}, shredded subjects: {shredded}",
        tables.subjects.len() - shredded,
        tables.subject_keys.len()
    );
    let keys = tables
        .data_keys
        .into_iter()
        .filter(|k| k.name != INDEX_KEY_NAME)
        .map(|k| ListedKey {
            created: time_text(k.created_at),
            name: k.name,
            kind: k.kind,
            version: k.version,
            status: k.status,
            uses: k.uses,
        })
        .collect();
    Ok(KeyringListing {
        headline,
        keys,
        counts,
    })
}

/// What `privgate keys list` shows: never key material, wrapped or not.
pub struct KeyringListing {
    /// The keyring's id, generation, creation time and KEK source.
    pub headline: String,
    /// Every data key version (the subject index key left out).
    pub keys: Vec<ListedKey>,
    /// How many subjects have keys and how many were shredded.
    pub counts: String,
}

/// One data key version as listed.
pub struct ListedKey {
    /// Key name.
    pub name: String,
    /// `KeyKind` in snake case.
    pub kind: String,
    /// Version, from 1.
    pub version: i64,
    /// `active` or `retired`.
    pub status: String,
    /// When it was made (RFC 3339, seconds).
    pub created: String,
    /// Encryptions reserved so far.
    pub uses: i64,
}

fn kdf_json(kdf: &Kdf) -> String {
    serde_json::to_string(kdf).unwrap_or_default()
}

fn time_text(ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

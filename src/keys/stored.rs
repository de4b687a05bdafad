//! How keys are stored: a fresh secret becomes a wrapped row, a wrapped row becomes a
//! [`DataKey`] again. The associated data of every wrap binds the keyring id and exactly
//! what the row claims to be (name, version, kind; or subject tag and kind), so a wrapped
//! key copied into another row does not unwrap.

use super::kek::Kek;
use super::{random, DataKey, KeyError, KeyKind};
use crate::store::{DataKeyRow, SubjectKeyRow};
use zeroize::Zeroizing;

/// Status of a version that encrypts and decrypts.
pub(crate) const ACTIVE: &str = "active";
/// Status of a version that no longer decrypts.
pub(crate) const RETIRED: &str = "retired";
/// The keyring's own HMAC key that turns subject ids into tags (never rotated: tags must
/// stay stable). Its name cannot be a user key name (those start with a letter).
pub(crate) const INDEX_KEY_NAME: &str = "_subject_index";

/// Longest key name.
const MAX_NAME_LEN: usize = 64;

/// Refuses names that are not 1 to 64 of `a-z 0-9 _ - .` starting with a letter; the
/// ciphertext format and the associated data rely on names without `|`.
pub(crate) fn check_name(name: &str) -> Result<(), KeyError> {
    let ok = name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadName(name.chars().take(MAX_NAME_LEN).collect()))
    }
}

fn data_aad(keyring_id: &str, name: &str, version: i64, kind: &str) -> Vec<u8> {
    format!("privgate/data-key/v1|{keyring_id}|{name}|{version}|{kind}").into_bytes()
}

fn subject_aad(keyring_id: &str, tag: &str, kind: &str) -> Vec<u8> {
    format!("privgate/subject-key/v1|{keyring_id}|{tag}|{kind}").into_bytes()
}

/// A fresh random secret for `kind`.
pub(crate) fn fresh_secret(kind: KeyKind) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let mut secret = Zeroizing::new(vec![0u8; kind.secret_len()]);
    random(&mut secret)?;
    Ok(secret)
}

/// A new active data key version with a fresh secret, wrapped.
pub(crate) fn new_data_key_row(
    kek: &Kek,
    keyring_id: &str,
    name: &str,
    version: u32,
    kind: KeyKind,
    now_ms: i64,
) -> Result<DataKeyRow, KeyError> {
    let secret = fresh_secret(kind)?;
    let version = i64::from(version);
    Ok(DataKeyRow {
        name: name.to_owned(),
        version,
        kind: kind.as_str().to_owned(),
        wrapped: kek.wrap(&data_aad(keyring_id, name, version, kind.as_str()), &secret)?,
        status: ACTIVE.to_owned(),
        uses: 0,
        created_at: now_ms,
        retired_at: None,
    })
}

/// The kind and version a row claims, checked.
pub(crate) fn row_identity(row: &DataKeyRow) -> Result<(KeyKind, u32), KeyError> {
    let kind = KeyKind::parse(&row.kind).ok_or_else(|| {
        KeyError::Corrupted(format!("key {} has unknown kind `{}`", row.name, row.kind))
    })?;
    let version = u32::try_from(row.version)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            KeyError::Corrupted(format!("key {} has version {}", row.name, row.version))
        })?;
    Ok((kind, version))
}

/// Unwraps a data key row.
pub(crate) fn open_data_key(
    kek: &Kek,
    keyring_id: &str,
    row: &DataKeyRow,
) -> Result<DataKey, KeyError> {
    let (kind, version) = row_identity(row)?;
    let secret = kek
        .unwrap(
            &data_aad(keyring_id, &row.name, row.version, &row.kind),
            &row.wrapped,
        )
        .ok_or_else(|| {
            KeyError::Corrupted(format!(
                "key {} v{version} does not unwrap (modified, or from another keyring)",
                row.name
            ))
        })?;
    DataKey::new(&row.name, version, kind, secret).map_err(|e| KeyError::Corrupted(e.to_string()))
}

/// Re-seals a data key row's secret under `to`, never leaving this process in clear.
pub(crate) fn rewrap_data_key(
    from: &Kek,
    to: &Kek,
    keyring_id: &str,
    row: &DataKeyRow,
) -> Result<String, KeyError> {
    let key = open_data_key(from, keyring_id, row)?;
    to.wrap(
        &data_aad(keyring_id, &row.name, row.version, &row.kind),
        key.secret(),
    )
}

/// A new subject key row with a fresh secret, wrapped; returns the key too.
pub(crate) fn new_subject_key_row(
    kek: &Kek,
    keyring_id: &str,
    tag: &str,
    kind: KeyKind,
    now_ms: i64,
) -> Result<(SubjectKeyRow, Zeroizing<Vec<u8>>), KeyError> {
    let secret = fresh_secret(kind)?;
    let row = SubjectKeyRow {
        subject_tag: tag.to_owned(),
        kind: kind.as_str().to_owned(),
        wrapped: kek.wrap(&subject_aad(keyring_id, tag, kind.as_str()), &secret)?,
        created_at: now_ms,
    };
    Ok((row, secret))
}

/// Unwraps a subject key's secret.
pub(crate) fn open_subject_key(
    kek: &Kek,
    keyring_id: &str,
    row: &SubjectKeyRow,
) -> Result<(KeyKind, Zeroizing<Vec<u8>>), KeyError> {
    let kind = KeyKind::parse(&row.kind).ok_or_else(|| {
        KeyError::Corrupted(format!("a subject key has unknown kind `{}`", row.kind))
    })?;
    let secret = kek
        .unwrap(
            &subject_aad(keyring_id, &row.subject_tag, &row.kind),
            &row.wrapped,
        )
        .filter(|s| s.len() == kind.secret_len())
        .ok_or_else(|| {
            KeyError::Corrupted(
                "a subject key does not unwrap (modified, or from another keyring)".into(),
            )
        })?;
    Ok((kind, secret))
}

/// Re-seals a subject key's secret under `to`.
pub(crate) fn rewrap_subject_key(
    from: &Kek,
    to: &Kek,
    keyring_id: &str,
    row: &SubjectKeyRow,
) -> Result<String, KeyError> {
    let (_, secret) = open_subject_key(from, keyring_id, row)?;
    to.wrap(
        &subject_aad(keyring_id, &row.subject_tag, &row.kind),
        &secret,
    )
}

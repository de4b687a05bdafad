//! Key material: the one AEAD wrapper every sealed value goes through, and data keys as the
//! rest of the gateway sees them (a name, a version, a kind and the secret bytes, never
//! printed). Where keys come from lives beside this: the key-encryption key ([`kek`]),
//! the wrapped keyring in the store and its in-memory cache ([`Keyring`]), per-subject
//! keys and crypto-shredding, and the operator's keyring operations ([`maintenance`]).
//!
//! Contract: key material exists in clear only in this process, only in zeroizing buffers,
//! and never in `Debug`, logs or errors. The store holds only wrapped keys.

pub mod aead;
mod error;
pub(crate) mod hsm;
pub mod kek;
mod keyring;
pub mod maintenance;
mod stored;
mod subject;

pub use error::KeyError;
pub use keyring::{Keyring, KeyringSettings, UNKNOWN_KEY_RECHECK};
pub use subject::{SubjectTag, SHRED_DONE, SUBJECT_KEY_NAME};

use ring::rand::SecureRandom;
use std::fmt;
use zeroize::Zeroizing;

/// What a data key is for, which fixes its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// AES-256-GCM (randomized encryption, key wrapping): 32 bytes.
    Aead,
    /// AES-256-SIV, RFC 5297 (deterministic tokens): 64 bytes (two AES-256 keys).
    Siv,
    /// FF1 over AES-256, NIST SP 800-38G (format-preserving encryption): 32 bytes.
    Ff1,
    /// HMAC-SHA256 (keyed pseudonyms, date shifts): 32 bytes.
    Hmac,
}

impl KeyKind {
    /// Length of the secret in bytes.
    pub const fn secret_len(self) -> usize {
        match self {
            KeyKind::Siv => 64,
            KeyKind::Aead | KeyKind::Ff1 | KeyKind::Hmac => 32,
        }
    }
}

impl KeyKind {
    /// Every kind.
    pub const ALL: [KeyKind; 4] = [KeyKind::Aead, KeyKind::Siv, KeyKind::Ff1, KeyKind::Hmac];

    /// The kind's name as configured and stored (`aead`, `siv`, `ff1`, `hmac`).
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyKind::Aead => "aead",
            KeyKind::Siv => "siv",
            KeyKind::Ff1 => "ff1",
            KeyKind::Hmac => "hmac",
        }
    }

    /// The kind a stored or typed name means.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Fills `out` from the system random generator.
pub(crate) fn random(out: &mut [u8]) -> Result<(), KeyError> {
    ring::rand::SystemRandom::new()
        .fill(out)
        .map_err(|_| KeyError::Random)
}

/// One version of a named data key, unwrapped in memory. The secret is zeroized on drop
/// and `Debug` shows only the name, version and kind.
pub struct DataKey {
    name: String,
    version: u32,
    kind: KeyKind,
    secret: Zeroizing<Vec<u8>>,
    /// The AES-GCM key built from `secret` on first use (an `Aead` key's).
    aead: std::sync::OnceLock<aead::AeadKey>,
    /// The HMAC-SHA256 key built from `secret` on first use (an `Hmac` key's); boxed, so
    /// the keys of other kinds (most of the subject key cache) do not carry its room.
    hmac: std::sync::OnceLock<Box<ring::hmac::Key>>,
}

/// A secret whose length does not match its kind.
#[derive(Debug, thiserror::Error)]
#[error("key {name} v{version}: a {kind:?} key must be {expected} bytes")]
pub struct KeyLengthError {
    name: String,
    version: u32,
    kind: KeyKind,
    expected: usize,
}

impl DataKey {
    /// A key from its secret bytes; the length must match the kind.
    pub fn new(
        name: impl Into<String>,
        version: u32,
        kind: KeyKind,
        secret: Zeroizing<Vec<u8>>,
    ) -> Result<Self, KeyLengthError> {
        let name = name.into();
        if secret.len() != kind.secret_len() {
            return Err(KeyLengthError {
                name,
                version,
                kind,
                expected: kind.secret_len(),
            });
        }
        Ok(Self {
            name,
            version,
            kind,
            secret,
            aead: std::sync::OnceLock::new(),
            hmac: std::sync::OnceLock::new(),
        })
    }

    /// The key's name (e.g. `pan`, or `subject` keys' per-subject name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's version (1 for the first; rotation adds one).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// What the key is for.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The secret bytes, for the crypto crate that uses them; never log or copy them.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The secret as an AES-256-GCM key, built on first use and kept with the key (the
    /// keyring caches keys, so a version's key is built once, not per value).
    pub fn aead(&self) -> Result<&aead::AeadKey, aead::AeadError> {
        if let Some(key) = self.aead.get() {
            return Ok(key);
        }
        let key = aead::AeadKey::new(&self.secret)?;
        Ok(self.aead.get_or_init(|| key))
    }

    /// The secret as an HMAC-SHA256 key, built on first use and kept with the key: its
    /// padded-key hashes are worked out once per key version, not per message (the audit
    /// record's subject pseudonym is one message a request).
    pub fn hmac(&self) -> &ring::hmac::Key {
        self.hmac
            .get_or_init(|| Box::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.secret)))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_like_serde() {
        for kind in KeyKind::ALL {
            assert_eq!(KeyKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert_eq!(KeyKind::parse("AEAD"), None);
    }

    #[test]
    fn debug_prints_no_material_and_lengths_are_checked() {
        let key = DataKey::new("pan", 3, KeyKind::Aead, Zeroizing::new(vec![0xAB; 32])).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("pan") && shown.contains('3'), "{shown}");
        assert!(
            !shown.contains("171") && !shown.to_lowercase().contains("ab, "),
            "{shown}"
        );
        assert!(DataKey::new("pan", 1, KeyKind::Siv, Zeroizing::new(vec![0; 32])).is_err());
        assert!(DataKey::new("pan", 1, KeyKind::Siv, Zeroizing::new(vec![0; 64])).is_ok());
    }
}

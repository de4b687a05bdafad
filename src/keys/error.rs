//! The keyring's one error type. Messages name keys by name and version only: never key
//! material, never a passphrase, never a data subject's id.

use super::KeyKind;
use crate::store::StoreError;

/// Why a keyring operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key of that name, or no such version of it.
    #[error("unknown key {name}{}", version.map(|v| format!(" v{v}")).unwrap_or_default())]
    Unknown {
        /// Key name.
        name: String,
        /// The version asked for, if one was.
        version: Option<u32>,
    },
    /// The version was retired: data under it no longer decrypts.
    #[error("key {name} v{version} is retired: data encrypted under it can no longer be decrypted (re-encrypt it under a current version before retiring)")]
    Retired {
        /// Key name.
        name: String,
        /// The retired version.
        version: u32,
    },
    /// The data subject's keys were destroyed (crypto-shredded): nothing sealed under them
    /// decrypts, and field protection shows none of the subject's values.
    #[error("the data subject's keys were shredded: values sealed under them can no longer be decrypted")]
    Shredded,
    /// The KEK does not open the keyring's check value.
    #[error("wrong passphrase or different keyring: the key-encryption key does not open this keyring's check value")]
    WrongKek,
    /// Stored key material does not authenticate or has the wrong shape.
    #[error("keyring corrupted: {0}")]
    Corrupted(String),
    /// The store holds no keyring.
    #[error("no keyring in the store: create one with `privgate keys init`")]
    NoKeyring,
    /// `init` or `restore` found a keyring already there.
    #[error("the store already holds a keyring (restore with --force replaces it)")]
    KeyringExists,
    /// The keyring was rewrapped or restored after this process loaded it.
    #[error("the keyring was rewrapped or restored since this process loaded it: restart with the current key-encryption key")]
    KekChanged,
    /// A key of that name exists with another kind.
    #[error("key {name} is a {existing:?} key, not {requested:?}")]
    KindMismatch {
        /// Key name.
        name: String,
        /// Its kind in the keyring.
        existing: KeyKind,
        /// The kind asked for.
        requested: KeyKind,
    },
    /// A name that cannot be a key name.
    #[error("key name `{0}` must be 1 to 64 of a-z 0-9 _ - . and start with a letter")]
    BadName(String),
    /// A request the keyring refuses (e.g. retiring every version, more uses than the bound).
    #[error("{0}")]
    Refused(String),
    /// The KEK source could not be read or is unsafe (file permissions, empty passphrase).
    #[error("key-encryption key: {0}")]
    KekSource(String),
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

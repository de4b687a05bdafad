//! Where field protection gets its keys: the keyring in the gateway, an in-memory set in
//! unit tests. Protection only ever asks for a key by name (newest version for new values,
//! the version a value names for old ones) or by data subject.

use crate::keys::{DataKey, KeyError, KeyKind, Keyring};
use std::future::Future;
use std::sync::Arc;

/// Why a key could not be had; protection refuses the request rather than pass plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyUnavailable {
    /// The key (or that version) does not exist, or is retired.
    #[error("key {0} is unknown or retired")]
    Unknown(String),
    /// The data subject's key was destroyed (crypto-shredding): their values read as erased.
    #[error("the data subject's key was shredded")]
    Shredded,
    /// The keyring or its store failed.
    #[error("keyring unavailable: {0}")]
    Unavailable(String),
}

/// A source of data keys.
pub trait KeySource: Sync {
    /// The newest active version of `name` (created at version 1 if absent), for new values.
    fn current(
        &self,
        name: &str,
        kind: KeyKind,
    ) -> impl Future<Output = Result<Arc<DataKey>, KeyUnavailable>> + Send;

    /// Version `version` of `name`, for values protected under it.
    fn version(
        &self,
        name: &str,
        version: u32,
    ) -> impl Future<Output = Result<Arc<DataKey>, KeyUnavailable>> + Send;

    /// The data subject's own key of `kind` (created on first use unless shredded).
    fn subject_key(
        &self,
        subject: &str,
        kind: KeyKind,
    ) -> impl Future<Output = Result<Arc<DataKey>, KeyUnavailable>> + Send;

    /// Whether the data subject was shredded (their keys destroyed), whatever key any one
    /// class uses. Never creates anything.
    fn subject_shredded(
        &self,
        subject: &str,
    ) -> impl Future<Output = Result<bool, KeyUnavailable>> + Send;
}

/// The shred rule, in one place: no value bound to a shredded data subject is shown (in
/// any view, of any class) or protected anew, whatever key its class uses. Per-subject
/// classes are also unreadable cryptographically (their keys are gone); classes under
/// shared keys (tokens, FPE, date shifts, hashes, masks, unprotected classes) die here.
/// A value no rule ties to a subject cannot be matched, which is why per-subject classes
/// refuse such values and SECURITY.md says which routes bind none.
///
/// One per body: each distinct subject is asked once whether it was shredded, and each of
/// its keys is fetched once (the keyring derives the subject's tag, an HMAC, per ask). A
/// key that could not be had is not remembered: the next value asks again, and a subject
/// shredded after its first key was fetched reads so from the next body on.
pub(super) struct SubjectKeys<'a, K> {
    keys: &'a K,
    /// Asked once per value: foldhash, not SipHash (a body holds few distinct subjects and
    /// many values).
    answers: foldhash::HashMap<&'a str, bool>,
    fetched: Vec<(String, KeyKind, Arc<DataKey>)>,
}

impl<'a, K: KeySource> SubjectKeys<'a, K> {
    pub(super) fn new(keys: &'a K) -> Self {
        Self {
            keys,
            answers: foldhash::HashMap::default(),
            fetched: Vec::new(),
        }
    }

    /// Whether `subject`'s values are erased (it was shredded); `false` without a subject.
    pub(super) async fn erased(
        &mut self,
        subject: Option<&'a str>,
    ) -> Result<bool, KeyUnavailable> {
        let Some(subject) = subject else {
            return Ok(false);
        };
        if let Some(erased) = self.answers.get(subject) {
            return Ok(*erased);
        }
        let erased = self.keys.subject_shredded(subject).await?;
        self.answers.insert(subject, erased);
        Ok(erased)
    }

    /// The subject's own key of `kind` ([`KeySource::subject_key`]), fetched once per body.
    pub(super) async fn key(
        &mut self,
        subject: &str,
        kind: KeyKind,
    ) -> Result<Arc<DataKey>, KeyUnavailable> {
        let known = self
            .fetched
            .iter()
            .find(|(s, k, _)| s == subject && *k == kind);
        if let Some((_, _, key)) = known {
            return Ok(key.clone());
        }
        let key = self.keys.subject_key(subject, kind).await?;
        self.fetched.push((subject.to_owned(), kind, key.clone()));
        Ok(key)
    }

    /// The key source, for keys that are not the subjects' own.
    pub(super) fn source(&self) -> &'a K {
        self.keys
    }
}

/// The key a class uses for new values: the newest version, or the version its spec fixes
/// when its outputs carry none (fpe, date shift; created at version 1 if absent).
pub(super) async fn class_key(
    keys: &impl KeySource,
    spec: &super::transform::ProtectSpec,
    class: &str,
    kind: KeyKind,
) -> Result<Arc<DataKey>, KeyUnavailable> {
    let name = spec.key_name(class).unwrap_or(class);
    let current = keys.current(name, kind).await?;
    match spec.fixed_key_version() {
        Some(version) if version != current.version() => keys.version(name, version).await,
        _ => Ok(current),
    }
}

fn unavailable(e: KeyError) -> KeyUnavailable {
    match e {
        KeyError::Shredded => KeyUnavailable::Shredded,
        KeyError::Unknown { .. } | KeyError::Retired { .. } => {
            KeyUnavailable::Unknown(e.to_string())
        }
        other => KeyUnavailable::Unavailable(other.to_string()),
    }
}

/// The keyring as protection uses it: new values get the newest version (AES-GCM uses
/// counted against the usage bound; keys created at version 1 on first use), old values
/// the version they name, per-subject keys come from the subject index.
impl KeySource for Keyring {
    async fn current(&self, name: &str, kind: KeyKind) -> Result<Arc<DataKey>, KeyUnavailable> {
        // `ensure` creates version 1 on first use and refuses a name of another kind.
        let newest = self.ensure(name, kind).await.map_err(unavailable)?;
        if kind != KeyKind::Aead {
            return Ok(newest);
        }
        // One encryption: counted against the version's usage bound (rotating at it).
        self.encryption_key(name, 1).await.map_err(unavailable)
    }

    async fn version(&self, name: &str, version: u32) -> Result<Arc<DataKey>, KeyUnavailable> {
        Keyring::version(self, name, version)
            .await
            .map_err(unavailable)
    }

    async fn subject_key(
        &self,
        subject: &str,
        kind: KeyKind,
    ) -> Result<Arc<DataKey>, KeyUnavailable> {
        Keyring::subject_key(self, subject, kind)
            .await
            .map_err(unavailable)
    }

    async fn subject_shredded(&self, subject: &str) -> Result<bool, KeyUnavailable> {
        Keyring::is_shredded(self, subject)
            .await
            .map_err(unavailable)
    }
}

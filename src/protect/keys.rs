//! Where field protection gets its keys: the keyring in the gateway, an in-memory set in
//! unit tests. Protection only ever asks for a key by name (newest version for new values,
//! the version a value names for old ones) or by data subject.

use crate::keys::{DataKey, KeyError, KeyKind, Keyring, SubjectTag};
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
    /// A data subject as this source knows it: the keyring knows subjects only by their
    /// tag (an HMAC of the id). Field protection works it out once per subject and body and
    /// passes it to [`Self::subject_key`] and [`Self::subject_shredded`].
    type Subject: Send + Sync;

    /// The data subject `subject_id`, as [`Self::subject_key`] and
    /// [`Self::subject_shredded`] take it.
    fn subject(&self, subject_id: &str) -> Self::Subject;

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
        subject: &Self::Subject,
        kind: KeyKind,
    ) -> impl Future<Output = Result<Arc<DataKey>, KeyUnavailable>> + Send;

    /// Whether the data subject was shredded (their keys destroyed), whatever key any one
    /// class uses. Never creates anything.
    fn subject_shredded(
        &self,
        subject: &Self::Subject,
    ) -> impl Future<Output = Result<bool, KeyUnavailable>> + Send;
}

/// The shred rule, in one place: no value bound to a shredded data subject is shown (in
/// any view, of any class) or protected anew, whatever key its class uses. Per-subject
/// classes are also unreadable cryptographically (their keys are gone); classes under
/// shared keys (tokens, FPE, date shifts, hashes, masks, unprotected classes) die here.
/// A value no rule ties to a subject cannot be matched, which is why per-subject classes
/// refuse such values and SECURITY.md says which routes bind none.
///
/// One per body: each distinct subject is known to the key source once (for the keyring,
/// one HMAC for its tag however many of its values and key kinds the body holds), asked
/// once whether it was shredded, and each of its keys is fetched once. A key that could not
/// be had is not remembered: the next value asks again, and a subject shredded after its
/// first key was fetched reads so from the next body on.
pub(super) struct SubjectKeys<'a, K: KeySource> {
    keys: &'a K,
    /// The body's subjects, in the order first met...
    subjects: Vec<Known<K::Subject>>,
    /// ...and where each is, by id: looked up once per value, so a page of many subjects
    /// costs a lookup a value, not a scan of the subjects before it. foldhash, not SipHash:
    /// each id is inserted once, and the body's size bounds the table.
    by_id: foldhash::HashMap<String, usize>,
    /// The id asked for last and where it is: a body's values of one subject name it by one
    /// string (the route's subject, or an element's id shared by its values), so most
    /// values are told by the string's address and length, without hashing. Borrowed for
    /// as long as this lives, so an address cannot be reused by another id meanwhile.
    last: Option<(&'a str, usize)>,
}

/// One data subject of a body: the key source's handle, and what was learnt of it.
struct Known<S> {
    subject: S,
    erased: Option<bool>,
    /// A subject's keys are of a few kinds: a scan.
    fetched: Vec<(KeyKind, Arc<DataKey>)>,
}

impl<'a, K: KeySource> SubjectKeys<'a, K> {
    pub(super) fn new(keys: &'a K) -> Self {
        Self {
            keys,
            subjects: Vec::new(),
            by_id: foldhash::HashMap::default(),
            last: None,
        }
    }

    /// The body's entry for `id`, made on its first value.
    fn known(&mut self, id: &'a str) -> &mut Known<K::Subject> {
        if let Some((last, at)) = self.last {
            if std::ptr::eq(last, id) {
                return &mut self.subjects[at];
            }
        }
        let at = match self.by_id.get(id) {
            Some(&at) => at,
            None => {
                self.subjects.push(Known {
                    subject: self.keys.subject(id),
                    erased: None,
                    fetched: Vec::new(),
                });
                self.by_id.insert(id.to_owned(), self.subjects.len() - 1);
                self.subjects.len() - 1
            }
        };
        self.last = Some((id, at));
        &mut self.subjects[at]
    }

    /// Whether `subject`'s values are erased (it was shredded); `false` without a subject.
    pub(super) async fn erased(
        &mut self,
        subject: Option<&'a str>,
    ) -> Result<bool, KeyUnavailable> {
        let Some(id) = subject else {
            return Ok(false);
        };
        let keys = self.keys;
        let known = self.known(id);
        if let Some(erased) = known.erased {
            return Ok(erased);
        }
        let erased = keys.subject_shredded(&known.subject).await?;
        known.erased = Some(erased);
        Ok(erased)
    }

    /// The subject's own key of `kind` ([`KeySource::subject_key`]), fetched once per body.
    pub(super) async fn key(
        &mut self,
        subject: &'a str,
        kind: KeyKind,
    ) -> Result<Arc<DataKey>, KeyUnavailable> {
        let keys = self.keys;
        let known = self.known(subject);
        if let Some((_, key)) = known.fetched.iter().find(|(k, _)| *k == kind) {
            return Ok(key.clone());
        }
        let key = keys.subject_key(&known.subject, kind).await?;
        known.fetched.push((kind, key.clone()));
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
    type Subject = SubjectTag;

    fn subject(&self, subject_id: &str) -> SubjectTag {
        self.subject_tag(subject_id)
    }

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
        subject: &SubjectTag,
        kind: KeyKind,
    ) -> Result<Arc<DataKey>, KeyUnavailable> {
        self.subject_key_by_tag(subject, kind)
            .await
            .map_err(unavailable)
    }

    async fn subject_shredded(&self, subject: &SubjectTag) -> Result<bool, KeyUnavailable> {
        self.is_shredded_by_tag(subject).await.map_err(unavailable)
    }
}

//! Per-subject keys and crypto-shredding.
//!
//! Each data subject gets its own key of each kind on first use. The store knows subjects
//! only by tag: HMAC-SHA256 of the subject id under the keyring's subject index key, so
//! neither the key table nor the tombstones hold a subject id in clear. Shredding deletes
//! the subject's keys and leaves a tombstone; from then on [`Keyring::subject_key`] returns
//! [`KeyError::Shredded`] and never makes a new key for that subject, and
//! [`Keyring::is_shredded`] answers `true`: field protection asks it before any value of
//! the subject, so classes under shared keys are refused too. Other replicas drop their
//! cached copy within the keyring's refresh interval (the shred bumps the change counter).

use super::stored;
use super::{DataKey, KeyError, KeyKind, Keyring};
use crate::store::{now_ms, KeyWrite, SubjectKeyLookup, SubjectKeyRow};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use std::sync::Arc;

/// The name every per-subject [`DataKey`] carries (version 1): the subject itself is bound
/// by the transforms' associated data, never written into a key name.
pub const SUBJECT_KEY_NAME: &str = "subject";

/// What a first shred of a subject did, exactly (the operation's recorded outcome; names
/// no subject). `privgate keys shred` adds which field classes fall under each part.
pub const SHRED_DONE: &str = "subject's keys destroyed: values encrypted under them \
    (per-subject classes) can no longer be decrypted by anyone; every gateway on this store \
    (others within [keys] refresh_interval) shows every value its field rules bind to this \
    subject as \"[erased]\" in every view, whatever the class's key, and protects none anew; \
    not reached: values under shared class keys (tokens, FPE) outside the gateway, which \
    still reverse with that key, clear copies made downstream, and backups or database \
    history from before the shred";

/// Subject keys kept unwrapped in memory (and subjects' shredded flags); past this the cache
/// starts over. An entry with its AES-GCM key built is 1 to 1.4 KiB (measured by
/// `a_full_subject_key_cache_stays_within_its_memory_bound`: 1,289 bytes at this bound,
/// 1,007 at 100,000; 1,340 to 1,360 since a key has room for its built HMAC key), so this
/// bounds the cache near 22 MiB however many subjects pass through. (It was 100,000
/// entries on an estimate of 150 bytes each: about 100 MiB, which a 10-minute load of new
/// customers was still filling.) A working set of more subjects re-reads their keys after each start-over:
/// one indexed store read and an unwrap each.
const SUBJECT_CACHE_MAX: usize = 16_384;

/// What [`SUBJECT_CACHE_MAX`] entries may take, with the allocator's slack.
#[cfg(test)]
const SUBJECT_CACHE_BYTES: u64 = 24 << 20;

/// A data subject as the store knows it: HMAC-SHA256 of its id under the keyring's subject
/// index key, base64url. Worked out once per subject and body by field protection (one HMAC
/// however many of the subject's keys a body needs); `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectTag(String);

impl std::fmt::Debug for SubjectTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectTag(..)")
    }
}

impl Keyring {
    /// The subject's key of `kind`, made on first use. Concurrent first uses, on any number
    /// of replicas, all get the one key that was stored first.
    pub async fn subject_key(
        &self,
        subject_id: &str,
        kind: KeyKind,
    ) -> Result<Arc<DataKey>, KeyError> {
        self.subject_key_by_tag(&self.subject_tag(subject_id), kind)
            .await
    }

    /// [`Self::subject_key`] for a subject whose tag is known.
    pub async fn subject_key_by_tag(
        &self,
        tag: &SubjectTag,
        kind: KeyKind,
    ) -> Result<Arc<DataKey>, KeyError> {
        self.refresh_if_stale().await?;
        if let Some(key) = self.cache().subjects.get(&(tag.0.clone(), kind)) {
            return Ok(key.clone());
        }
        // Boxed, in a statement of its own: the store's queries are kilobytes of state,
        // needed on a subject's first use only, that every lookup's future (and each
        // caller's) would otherwise carry and copy (docs/architecture.md, "The request
        // path").
        let from_store = Box::pin(self.subject_key_from_store(tag, kind));
        from_store.await
    }

    /// [`Self::subject_key_by_tag`] for a key not in the cache: read, or made and stored.
    async fn subject_key_from_store(
        &self,
        tag: &SubjectTag,
        kind: KeyKind,
    ) -> Result<Arc<DataKey>, KeyError> {
        let tag = &tag.0;
        let inner = &self.inner;
        let seen = self.cache().counter;
        for _ in 0..2 {
            match inner.store.subject_key_row(tag, kind.as_str()).await? {
                SubjectKeyLookup::Shredded => return Err(KeyError::Shredded),
                SubjectKeyLookup::Found(wrapped) => {
                    let row = SubjectKeyRow {
                        subject_tag: tag.clone(),
                        kind: kind.as_str().to_owned(),
                        wrapped,
                        created_at: 0,
                    };
                    let (_, secret) =
                        stored::open_subject_key(&inner.kek, &inner.head.keyring_id, &row)?;
                    return self.cached(seen, tag.clone(), kind, secret);
                }
                SubjectKeyLookup::Missing => {
                    let (row, secret) = stored::new_subject_key_row(
                        &inner.kek,
                        &inner.head.keyring_id,
                        tag,
                        kind,
                        now_ms(),
                    )?;
                    match inner
                        .store
                        .create_subject_key(inner.head.generation, &row)
                        .await?
                    {
                        KeyWrite::Written => return self.cached(seen, tag.clone(), kind, secret),
                        KeyWrite::Shredded => return Err(KeyError::Shredded),
                        KeyWrite::GenerationChanged => {
                            self.mark_stale();
                            return Err(KeyError::KekChanged);
                        }
                        // Another writer won: read its key on the next turn.
                        KeyWrite::Exists => {}
                    }
                }
            }
        }
        Err(KeyError::Corrupted(
            "a subject key was stored but cannot be read back".into(),
        ))
    }

    /// Whether the subject was shredded. Field protection asks this before showing or
    /// protecting any value of the subject, whatever key the value's class uses, so values
    /// under shared class keys (tokens, FPE) die with a shred too. Answered from memory
    /// while the cache is fresh (see [`Keyring`]: a shred on any replica is seen within the
    /// refresh interval), else by one store read.
    pub async fn is_shredded(&self, subject_id: &str) -> Result<bool, KeyError> {
        self.is_shredded_by_tag(&self.subject_tag(subject_id)).await
    }

    /// [`Self::is_shredded`] for a subject whose tag is known.
    pub async fn is_shredded_by_tag(&self, tag: &SubjectTag) -> Result<bool, KeyError> {
        self.refresh_if_stale().await?;
        let tag = &tag.0;
        let seen = {
            let cache = self.cache();
            if let Some(shredded) = cache.shredded.get(tag) {
                return Ok(*shredded);
            }
            cache.counter
        };
        let shredded = matches!(
            self.inner
                .store
                .subject_key_row(tag, KeyKind::Hmac.as_str())
                .await?,
            SubjectKeyLookup::Shredded
        );
        let mut cache = self.cache();
        // Only if no reload happened meanwhile: an answer read before a shred that a reload
        // has already taken in must not be cached after it.
        if cache.counter == seen {
            if cache.shredded.len() >= SUBJECT_CACHE_MAX {
                cache.shredded.clear();
            }
            cache.shredded.insert(tag.clone(), shredded);
        }
        Ok(shredded)
    }

    /// Destroys every key of the subject and leaves a tombstone. Returns `false` if the
    /// subject was shredded before (nothing more to do).
    pub async fn shred(&self, subject_id: &str) -> Result<bool, KeyError> {
        let SubjectTag(tag) = self.subject_tag(subject_id);
        let first = self.inner.store.shred_subject(&tag, now_ms()).await?;
        let mut cache = self.cache();
        cache.subjects.retain(|(t, _), _| *t != tag);
        cache.shredded.insert(tag, true);
        Ok(first)
    }

    /// The subject's tag in the store.
    pub fn subject_tag(&self, subject_id: &str) -> SubjectTag {
        let tag = ring::hmac::sign(&self.inner.index_key, subject_id.as_bytes());
        SubjectTag(B64URL.encode(tag.as_ref()))
    }

    /// Keeps a key read or made while the cache's counter was `seen`; not if a reload
    /// came in between (it may have been a shred of this subject: the key would outlive it).
    fn cached(
        &self,
        seen: i64,
        tag: String,
        kind: KeyKind,
        secret: zeroize::Zeroizing<Vec<u8>>,
    ) -> Result<Arc<DataKey>, KeyError> {
        let key = Arc::new(
            DataKey::new(SUBJECT_KEY_NAME, 1, kind, secret)
                .map_err(|e| KeyError::Corrupted(e.to_string()))?,
        );
        let mut cache = self.cache();
        if cache.counter != seen {
            return Ok(key);
        }
        if cache.subjects.len() >= SUBJECT_CACHE_MAX {
            cache.subjects.clear();
        }
        cache.subjects.insert((tag, kind), key.clone());
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;
    use crate::risk::tests::rss;
    use rusty_fork::rusty_fork_test;
    use std::collections::HashMap;

    rusty_fork_test! {
    /// The cache full to its bound, entries as the keyring holds them (a subject's tag and
    /// its AES-GCM key, built as a first use builds it), stays within
    /// [`SUBJECT_CACHE_BYTES`]: the memory the bound's comment promises. Measured in a
    /// process of its own: tests running beside it would move the resident size.
    #[test]
    fn a_full_subject_key_cache_stays_within_its_memory_bound() {
        let before = rss();
        let mut subjects: HashMap<(String, KeyKind), Arc<DataKey>> = HashMap::new();
        let mut shredded: HashMap<String, bool> = HashMap::new();
        for i in 0..SUBJECT_CACHE_MAX {
            let tag = B64URL.encode(ring::digest::digest(
                &ring::digest::SHA256,
                &i.to_le_bytes(),
            ));
            let secret = zeroize::Zeroizing::new(vec![i as u8; 32]);
            let key = DataKey::new(SUBJECT_KEY_NAME, 1, KeyKind::Aead, secret).unwrap();
            key.aead().unwrap();
            subjects.insert((tag.clone(), KeyKind::Aead), Arc::new(key));
            shredded.insert(tag, false);
        }
        let grown = rss().saturating_sub(before);
        println!(
            "{} subject keys cached: RSS +{:.1} MiB, {} bytes an entry",
            subjects.len(),
            grown as f64 / 1048576.0,
            grown / SUBJECT_CACHE_MAX as u64
        );
        assert!(grown <= SUBJECT_CACHE_BYTES, "RSS grew {grown}");
        assert!(grown > 0);
    }
    }
}

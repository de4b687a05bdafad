//! The keyring as a running gateway uses it: loaded once at start (KEK checked, every
//! active data key unwrapped), then served from memory.
//!
//! Freshness: every call first makes sure the cache was checked against the store's `keys`
//! change counter within `refresh_interval` (one cheap read); a rotation, retirement or
//! shred made by any replica is therefore honoured here within `refresh_interval` plus one
//! store round trip. If the store cannot be read when a check is due, the call fails
//! (closed) and the next call tries again. A lookup of a key name or version the cache does
//! not know checks the store once more before failing: another process (the CLI, a
//! replica) may have just created it. Such forced checks are rate-limited
//! ([`UNKNOWN_KEY_RECHECK`]) and coalesced, so naming versions that do not exist cannot turn
//! every request into a store read; the lookup then fails closed as before.
//!
//! Usage bound: AES-GCM versions count encryptions. A replica reserves blocks of uses in the
//! store with one conditional update (`uses + n <= bound`) before making them, so replicas
//! together never exceed the bound; a crash loses at most the unspent rest of its blocks,
//! which stay counted: rotation comes early, never late. A version whose next block does
//! not fit is followed by a new version, inserted if absent (one replica wins, the others
//! read its row).

use super::kek::{read_material, Kdf, Kek, KekMaterial};
use super::stored::{self, check_name, INDEX_KEY_NAME};
use super::{DataKey, KeyError, KeyKind};
use crate::config::KeysConfig;
use crate::store::{now_ms, DataKeyRow, KeyWrite, KeyringRow, Store};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most uses reserved from the store at once: one store write per 1024 AES-GCM encryptions
/// per replica and key, and at most 1024 uses per replica lost (counted, never made) when a
/// replica stops.
const USE_BLOCK: u64 = 1024;
/// Blocks are at most 1/64 of the bound, so the block that no longer fits under the bound
/// (and is given up by rotating) is a small share of the key's life.
const USE_BLOCK_DIVISOR: u64 = 64;
/// Attempts at reserving uses before giving up; each failed one rotates (or finds that
/// another replica rotated), so more than two are only needed under heavy contention.
const RESERVE_ATTEMPTS: usize = 8;

/// Least time between two checks of the store forced by lookups of an unknown key name or
/// version: at most ten extra reads of the change counter a second per process, however
/// many requests name keys that do not exist. A key created elsewhere is usable here at
/// once, or (right after another forced check) at most this long after, instead of after up
/// to `refresh_interval`.
pub const UNKNOWN_KEY_RECHECK: Duration = Duration::from_millis(100);

/// Run-time settings of a keyring (from `[keys]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyringSettings {
    /// Encryptions per AES-GCM key version before rotation.
    pub aead_max_uses: u64,
    /// How stale the cache may get.
    pub refresh_interval: Duration,
}

impl Default for KeyringSettings {
    fn default() -> Self {
        Self {
            aead_max_uses: crate::config::keys::AEAD_MAX_USES,
            refresh_interval: crate::config::keys::KEYS_REFRESH_INTERVAL,
        }
    }
}

impl KeyringSettings {
    /// The settings a `[keys]` section gives.
    pub fn from_config(config: &KeysConfig) -> Self {
        Self {
            aead_max_uses: config.aead_max_uses,
            refresh_interval: config.refresh_interval,
        }
    }

    fn use_block(&self) -> u64 {
        (self.aead_max_uses / USE_BLOCK_DIVISOR).clamp(1, USE_BLOCK)
    }
}

/// The data keys, unwrapped in memory; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Keyring {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) store: Store,
    pub(super) kek: Kek,
    pub(super) head: KeyringRow,
    pub(super) settings: KeyringSettings,
    /// HMAC key that turns subject ids into tags.
    pub(super) index_key: ring::hmac::Key,
    pub(super) cache: Mutex<Cache>,
    /// One store write of reservations or rotations at a time per process.
    writer: tokio::sync::Mutex<()>,
    /// One forced check for an unknown key at a time; the others wait and use its result.
    recheck: tokio::sync::Mutex<()>,
}

pub(super) struct Cache {
    /// The store's change counter when this cache was last loaded.
    pub(super) counter: i64,
    checked_at: Instant,
    /// When a lookup of an unknown key last forced a check (rate-limits those checks).
    rechecked_at: Option<Instant>,
    /// The keyring was rewrapped or restored under us: everything fails closed.
    stale: bool,
    names: HashMap<String, Named>,
    pub(super) subjects: HashMap<(String, KeyKind), Arc<DataKey>>,
    /// Whether each subject tag looked up is shredded; dropped with `subjects` whenever
    /// the change counter moves (a shred moves it), so a shred elsewhere is seen in time.
    pub(super) shredded: HashMap<String, bool>,
    /// Uses reserved in the store and not yet made, per (name, version).
    reserved: HashMap<(String, u32), u64>,
}

#[derive(Clone)]
struct Named {
    kind: KeyKind,
    /// Versions; `None` for retired ones (never unwrapped).
    versions: BTreeMap<u32, Option<Arc<DataKey>>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keyring_id", &self.inner.head.keyring_id)
            .field("generation", &self.inner.head.generation)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Opens the store's keyring with the KEK the `[keys]` section names.
    pub async fn open_configured(store: Store, config: &KeysConfig) -> Result<Self, KeyError> {
        let material = read_material(&config.kek)?;
        Self::open(store, &material, KeyringSettings::from_config(config)).await
    }

    /// Opens the store's keyring: derives the KEK, checks it against the check value (a
    /// wrong one is [`KeyError::WrongKek`]) and unwraps every active data key (one that does
    /// not unwrap is [`KeyError::Corrupted`]).
    pub async fn open(
        store: Store,
        material: &KekMaterial,
        settings: KeyringSettings,
    ) -> Result<Self, KeyError> {
        let head = store.keyring_row().await?.ok_or(KeyError::NoKeyring)?;
        let kek = unlock(material, &head)?;
        let counter = store.keys_version().await?;
        let rows = store.data_key_rows().await?;
        let index = rows
            .iter()
            .find(|r| r.name == INDEX_KEY_NAME)
            .ok_or_else(|| KeyError::Corrupted("the subject index key is missing".into()))?;
        let index = stored::open_data_key(&kek, &head.keyring_id, index)?;
        let index_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, index.secret());
        let names = load_names(&kek, &head.keyring_id, &rows, &HashMap::new())?;
        Ok(Self {
            inner: Arc::new(Inner {
                cache: Mutex::new(Cache {
                    counter,
                    checked_at: Instant::now(),
                    rechecked_at: None,
                    stale: false,
                    names,
                    subjects: HashMap::new(),
                    shredded: HashMap::new(),
                    reserved: HashMap::new(),
                }),
                store,
                kek,
                head,
                settings,
                index_key,
                writer: tokio::sync::Mutex::new(()),
                recheck: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The newest active version of `name`, for new encryptions with kinds that have no
    /// usage bound (SIV, FF1, HMAC). AES-GCM encryptions go through [`Self::encryption_key`].
    pub async fn current(&self, name: &str) -> Result<Arc<DataKey>, KeyError> {
        check_name(name)?;
        self.refresh_if_stale().await?;
        self.known_or_recheck(|cache| newest(cache, name)).await
    }

    /// One version of `name`, for decryption: [`KeyError::Retired`] if it was retired,
    /// [`KeyError::Unknown`] if there is no such name or version.
    pub async fn version(&self, name: &str, version: u32) -> Result<Arc<DataKey>, KeyError> {
        check_name(name)?;
        self.refresh_if_stale().await?;
        self.known_or_recheck(|cache| find_version(cache, name, version))
            .await
    }

    /// `lookup` in the cache; if it names a key the cache does not know, once more after a
    /// (rate-limited, coalesced) check of the store, since another process may have just
    /// created it. Any other answer is final.
    async fn known_or_recheck<T>(
        &self,
        lookup: impl Fn(&Cache) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        match lookup(&self.cache()) {
            Err(KeyError::Unknown { .. }) => {}
            known => return known,
        }
        {
            let _one = self.inner.recheck.lock().await;
            // A check that finished while this task waited (forced or regular) counts.
            // A forced check that finished while this task waited counts; regular checks do
            // not, since the key may have been created since the last of them.
            let claimed = {
                let mut cache = self.cache();
                let due = cache
                    .rechecked_at
                    .is_none_or(|at| at.elapsed() >= UNKNOWN_KEY_RECHECK);
                due.then(|| cache.rechecked_at.replace(Instant::now()))
            };
            if let Some(before) = claimed {
                if let Err(e) = self.refresh().await {
                    self.cache().rechecked_at = before;
                    return Err(e);
                }
            }
        }
        lookup(&self.cache())
    }
    /// The key for `uses` new encryptions under `name`: the newest active version, with the
    /// uses counted against the bound when it is an AES-GCM key (rotating in a new version
    /// when the bound is reached). Other kinds are returned uncounted.
    pub async fn encryption_key(&self, name: &str, uses: u64) -> Result<Arc<DataKey>, KeyError> {
        check_name(name)?;
        let bound = self.inner.settings.aead_max_uses;
        if uses > bound {
            return Err(KeyError::Refused(format!(
                "{uses} encryptions at once exceed the key usage bound {bound}"
            )));
        }
        for _ in 0..RESERVE_ATTEMPTS {
            self.refresh_if_stale().await?;
            let key = newest(&self.cache(), name)?;
            if key.kind() != KeyKind::Aead || self.take_reserved(&key, uses) {
                return Ok(key);
            }
            let _writer = self.inner.writer.lock().await;
            // Another task may have reserved or rotated while this one waited.
            let key = newest(&self.cache(), name)?;
            if self.take_reserved(&key, uses) {
                return Ok(key);
            }
            let block = uses.max(self.inner.settings.use_block());
            // Boxed, in a statement of its own, like `add_version`: once a block of uses.
            let reserve = Box::pin(self.inner.store.reserve_key_uses(
                name,
                key.version().into(),
                to_i64(block),
                to_i64(bound),
            ));
            let reserved = reserve.await?;
            if reserved.is_some() {
                // This caller's uses come out of the new block at once.
                *self
                    .cache()
                    .reserved
                    .entry((name.to_owned(), key.version()))
                    .or_default() += block - uses;
                return Ok(key);
            }
            tracing::info!(
                key = name,
                version = key.version(),
                "key usage bound reached; rotating"
            );
            self.add_version(name, key.kind(), key.version() + 1)
                .await?;
        }
        Err(KeyError::Refused(format!(
            "could not reserve uses of key {name}: the store keeps refusing"
        )))
    }

    /// Makes sure a key `name` of `kind` exists (creating version 1 if not) and returns its
    /// newest active version. A key of that name with another kind is an error.
    pub async fn ensure(&self, name: &str, kind: KeyKind) -> Result<Arc<DataKey>, KeyError> {
        check_name(name)?;
        self.refresh_if_stale().await?;
        let known = self.cache().names.get(name).map(|n| n.kind);
        if known.is_none() {
            self.add_version(name, kind, 1).await?;
        }
        let cache = self.cache();
        let named = cache.names.get(name).ok_or_else(|| KeyError::Unknown {
            name: name.to_owned(),
            version: None,
        })?;
        if named.kind != kind {
            return Err(KeyError::KindMismatch {
                name: name.to_owned(),
                existing: named.kind,
                requested: kind,
            });
        }
        newest(&cache, name)
    }

    /// Adds a new version of `name`; returns its number.
    pub async fn rotate(&self, name: &str) -> Result<u32, KeyError> {
        check_name(name)?;
        self.reload().await?;
        let (kind, latest) = self.latest(name)?;
        self.add_version(name, kind, latest + 1).await?;
        Ok(self.latest(name)?.1)
    }

    /// Retires every version of `name` below `min_version`: data under them no longer
    /// decrypts ([`KeyError::Retired`]). The newest version cannot be retired. Returns how
    /// many versions were retired now.
    pub async fn retire(&self, name: &str, min_version: u32) -> Result<u64, KeyError> {
        check_name(name)?;
        self.reload().await?;
        let (_, latest) = self.latest(name)?;
        if min_version > latest {
            return Err(KeyError::Refused(format!(
                "key {name} has no version {min_version}: retiring below it would retire every version (rotate first)"
            )));
        }
        let done = self
            .inner
            .store
            .retire_data_keys(name, min_version.into(), now_ms())
            .await?;
        self.reload().await?;
        Ok(done)
    }

    /// Every key name with its kind and versions (`true` for active), for listings.
    pub async fn names(&self) -> Result<Vec<(String, KeyKind, Vec<(u32, bool)>)>, KeyError> {
        self.refresh_if_stale().await?;
        let cache = self.cache();
        let mut out: Vec<_> = cache
            .names
            .iter()
            .filter(|(name, _)| *name != INDEX_KEY_NAME)
            .map(|(name, n)| {
                let versions = n.versions.iter().map(|(v, k)| (*v, k.is_some())).collect();
                (name.clone(), n.kind, versions)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Re-reads the keyring from the store now, whatever the change counter says.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let counter = self.inner.store.keys_version().await?;
        self.check_head().await?;
        let rows = self.inner.store.data_key_rows().await?;
        let previous = self.cache().names.clone();
        let names = load_names(
            &self.inner.kek,
            &self.inner.head.keyring_id,
            &rows,
            &previous,
        )?;
        let mut cache = self.cache();
        cache.names = names;
        cache.subjects.clear();
        cache.shredded.clear();
        cache.counter = counter;
        cache.checked_at = Instant::now();
        Ok(())
    }

    pub(super) async fn refresh_if_stale(&self) -> Result<(), KeyError> {
        let before = {
            let mut cache = self.cache();
            if cache.stale {
                return Err(KeyError::KekChanged);
            }
            if cache.checked_at.elapsed() < self.inner.settings.refresh_interval {
                return Ok(());
            }
            // Claim this check: concurrent callers keep serving the cache meanwhile.
            std::mem::replace(&mut cache.checked_at, Instant::now())
        };
        let result = self.refresh().await;
        if result.is_err() {
            self.cache().checked_at = before;
        }
        result
    }

    /// [`Self::refresh_from_store`], boxed: the store's queries are kilobytes of state,
    /// needed once a refresh interval, that every key lookup's future (and each caller's,
    /// up to the request's) would otherwise carry and copy (docs/architecture.md, "The
    /// request path").
    fn refresh(&self) -> Pin<Box<impl Future<Output = Result<(), KeyError>> + '_>> {
        Box::pin(self.refresh_from_store())
    }

    async fn refresh_from_store(&self) -> Result<(), KeyError> {
        let counter = self.inner.store.keys_version().await?;
        if counter == self.cache().counter {
            return Ok(());
        }
        self.reload().await
    }

    /// Fails closed, for good, if the keyring was rewrapped or replaced under this process.
    async fn check_head(&self) -> Result<(), KeyError> {
        let head = self.inner.store.keyring_row().await?;
        let ours = &self.inner.head;
        let same = head.is_some_and(|h| {
            h.keyring_id == ours.keyring_id
                && h.generation == ours.generation
                && h.check_value == ours.check_value
        });
        if !same {
            self.mark_stale();
            return Err(KeyError::KekChanged);
        }
        Ok(())
    }

    pub(super) fn mark_stale(&self) {
        let mut cache = self.cache();
        cache.stale = true;
        cache.names.clear();
        cache.subjects.clear();
        cache.shredded.clear();
    }

    /// [`Self::add_version_to_store`], boxed like [`Self::refresh`]: a key's first version or
    /// a rotation, rare, whose store writes every lookup of a key would otherwise carry.
    fn add_version<'a>(
        &'a self,
        name: &'a str,
        kind: KeyKind,
        version: u32,
    ) -> Pin<Box<impl Future<Output = Result<(), KeyError>> + 'a>> {
        Box::pin(self.add_version_to_store(name, kind, version))
    }

    /// Inserts `version` of `name` unless it exists, then reloads.
    async fn add_version_to_store(
        &self,
        name: &str,
        kind: KeyKind,
        version: u32,
    ) -> Result<(), KeyError> {
        let row = stored::new_data_key_row(
            &self.inner.kek,
            &self.inner.head.keyring_id,
            name,
            version,
            kind,
            now_ms(),
        )?;
        match self
            .inner
            .store
            .insert_data_key(self.inner.head.generation, &row)
            .await?
        {
            KeyWrite::GenerationChanged => {
                self.mark_stale();
                return Err(KeyError::KekChanged);
            }
            KeyWrite::Written => tracing::info!(key = name, version, "key version added"),
            KeyWrite::Exists | KeyWrite::Shredded => {}
        }
        self.reload().await
    }

    fn latest(&self, name: &str) -> Result<(KeyKind, u32), KeyError> {
        let cache = self.cache();
        let named = cache.names.get(name).ok_or_else(|| KeyError::Unknown {
            name: name.to_owned(),
            version: None,
        })?;
        let latest = named.versions.keys().next_back().copied().unwrap_or(0);
        Ok((named.kind, latest))
    }

    fn take_reserved(&self, key: &DataKey, uses: u64) -> bool {
        let mut cache = self.cache();
        match cache
            .reserved
            .get_mut(&(key.name().to_owned(), key.version()))
        {
            Some(left) if *left >= uses => {
                *left -= uses;
                true
            }
            _ => false,
        }
    }

    pub(super) fn cache(&self) -> MutexGuard<'_, Cache> {
        // A panic while holding the lock leaves plain data behind, still consistent.
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Derives the KEK a keyring needs and checks it against the check value.
pub(super) fn unlock(material: &KekMaterial, head: &KeyringRow) -> Result<Kek, KeyError> {
    let kdf: Kdf = serde_json::from_str(&head.kdf)
        .map_err(|_| KeyError::Corrupted("the stored KDF parameters are unreadable".into()))?;
    if head.check_value.is_empty() {
        return Err(KeyError::Corrupted("the keyring has no check value".into()));
    }
    let kek = Kek::derive(material, &kdf)?;
    kek.verify(&head.keyring_id, &head.check_value)?;
    Ok(kek)
}

fn find_version(cache: &Cache, name: &str, version: u32) -> Result<Arc<DataKey>, KeyError> {
    let unknown = || KeyError::Unknown {
        name: name.to_owned(),
        version: Some(version),
    };
    match cache
        .names
        .get(name)
        .ok_or_else(unknown)?
        .versions
        .get(&version)
    {
        None => Err(unknown()),
        Some(None) => Err(KeyError::Retired {
            name: name.to_owned(),
            version,
        }),
        Some(Some(key)) => Ok(key.clone()),
    }
}

fn newest(cache: &Cache, name: &str) -> Result<Arc<DataKey>, KeyError> {
    let named = cache.names.get(name).ok_or_else(|| KeyError::Unknown {
        name: name.to_owned(),
        version: None,
    })?;
    named
        .versions
        .values()
        .rev()
        .find_map(Clone::clone)
        .ok_or_else(|| KeyError::Retired {
            name: name.to_owned(),
            version: named.versions.keys().next_back().copied().unwrap_or(0),
        })
}

/// Builds the name table from rows, reusing keys already unwrapped.
fn load_names(
    kek: &Kek,
    keyring_id: &str,
    rows: &[DataKeyRow],
    previous: &HashMap<String, Named>,
) -> Result<HashMap<String, Named>, KeyError> {
    let mut names: HashMap<String, Named> = HashMap::new();
    for row in rows {
        let (kind, version) = stored::row_identity(row)?;
        let key = match row.status.as_str() {
            stored::RETIRED => None,
            stored::ACTIVE => match previous
                .get(&row.name)
                .and_then(|n| n.versions.get(&version).cloned().flatten())
            {
                Some(key) => Some(key),
                None => Some(Arc::new(stored::open_data_key(kek, keyring_id, row)?)),
            },
            other => {
                return Err(KeyError::Corrupted(format!(
                    "key {} v{version} has unknown status `{other}`",
                    row.name
                )))
            }
        };
        let named = names.entry(row.name.clone()).or_insert_with(|| Named {
            kind,
            versions: BTreeMap::new(),
        });
        if named.kind != kind {
            return Err(KeyError::Corrupted(format!(
                "key {} has versions of different kinds",
                row.name
            )));
        }
        named.versions.insert(version, key);
    }
    Ok(names)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;

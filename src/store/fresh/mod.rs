//! Cached answers to the two questions asked on every request, "is this token revoked?" and
//! "which consents of this subject for this grantee are in force?", within a bounded
//! staleness window (`[store] revocation_window`).
//!
//! The contract: an answer is served from the cache at time `t` only if
//! 1. the change counter it was read under (`tokens` or `consent`, bumped in the same
//!    transaction as every change) is still the counter this process knows, and
//! 2. this process confirmed that counter with a read of the store that *started* at or
//!    after `t - window` (see [`watch`]), and
//! 3. the answer itself was read at or after `t - window`.
//!
//! A change committed at `c` is seen by every confirming read started after `c`, so from
//! `c + window` on no cached answer read before `c` passes rule 2: a withdrawn consent or
//! revoked token is honoured at most `window` after it commits, on every replica. A watcher
//! that is down or late makes rule 2 fail, so reads go to the store (towards freshness,
//! never towards stale answers; a store that is down fails those reads closed). Changes made
//! through this process advance its counter as they commit, so they hold on its very next
//! request. A window of zero turns the caches off: every request reads the store.

mod watch;
pub(super) use watch::Watcher;

use super::StoreError;
use quick_cache::sync::Cache;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Entries per cache: bounded memory whatever the traffic (least recently used go first).
const CAPACITY: usize = 16_384;

/// The change counters a cached answer can depend on (rows of `change_counters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Counter {
    /// Consent grants and revocations.
    Consent,
    /// Token revocations.
    Tokens,
}

impl Counter {
    const ALL: [Counter; 2] = [Counter::Consent, Counter::Tokens];

    /// The counter's row name in `change_counters`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Counter::Consent => "consent",
            Counter::Tokens => "tokens",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What this process knows of one counter: its highest version seen and when a read of the
/// store that saw it (or a later version) started.
#[derive(Default)]
struct Known {
    version: AtomicI64,
    /// Nanoseconds from [`Changes::epoch`] to the start of the confirming read, plus one;
    /// zero: never confirmed.
    confirmed: AtomicU64,
}

/// The change counters as this process knows them.
pub(super) struct Changes {
    epoch: Instant,
    window: Duration,
    known: [Known; 2],
}

impl Changes {
    fn new(window: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            window,
            known: Default::default(),
        }
    }

    fn known(&self, counter: Counter) -> &Known {
        &self.known[counter as usize]
    }

    /// The counter's version if a read that started within the window confirmed it (rule
    /// 2); `None`: the cache must not be used.
    pub(super) fn current(&self, counter: Counter, now: Instant) -> Option<i64> {
        let known = self.known(counter);
        // Acquire pairs with `confirmed`'s release: the version read is the confirmed one
        // or a later one, never an older one.
        let confirmed = known.confirmed.load(Ordering::Acquire);
        let version = known.version.load(Ordering::Acquire);
        let confirmed_at = self.epoch + Duration::from_nanos(confirmed.checked_sub(1)?);
        (now.saturating_duration_since(confirmed_at) <= self.window).then_some(version)
    }

    /// A read of the store that started at `read_started` saw `version`.
    pub(super) fn confirmed(&self, counter: Counter, version: i64, read_started: Instant) {
        let known = self.known(counter);
        known.version.fetch_max(version, Ordering::AcqRel);
        let nanos = read_started
            .saturating_duration_since(self.epoch)
            .as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1;
        known.confirmed.fetch_max(nanos, Ordering::AcqRel);
    }

    /// A change committed with `version` (made here, or notified): answers read under an
    /// older version are stale from now on. Confirms nothing by itself.
    pub(super) fn advanced(&self, counter: Counter, version: i64) {
        self.known(counter)
            .version
            .fetch_max(version, Ordering::AcqRel);
    }
}

/// An answer and the counter version and time it was read under.
#[derive(Clone)]
struct Entry<V> {
    version: i64,
    read_at: Instant,
    value: V,
}

impl<V> Entry<V> {
    /// Rules 1 and 3 of the module contract (`current` comes from [`Changes::current`],
    /// which applies rule 2).
    fn usable(&self, current: Option<i64>, now: Instant, window: Duration) -> bool {
        current == Some(self.version) && now.saturating_duration_since(self.read_at) <= window
    }
}

/// A bounded cache of answers that depend on one counter.
pub(super) struct FreshCache<K, V> {
    counter: Counter,
    entries: Cache<K, Entry<V>>,
}

impl<K: Eq + Hash + Clone, V: Clone> FreshCache<K, V> {
    fn new(counter: Counter) -> Self {
        Self {
            counter,
            entries: Cache::new(CAPACITY),
        }
    }
}

/// The caches of one store and the watcher that keeps them honest.
pub(super) struct Freshness {
    changes: Changes,
    /// `(jti, subject, issued at ms)` -> revoked.
    pub(super) tokens: FreshCache<(Option<String>, String, Option<i64>), bool>,
    /// `(subject, grantee)` -> consents in force when read, oldest first.
    pub(super) consents: FreshCache<(String, String), Arc<[crate::consent::ConsentRecord]>>,
    watcher: Watcher,
    started: Once,
    stop: CancellationToken,
}

impl std::fmt::Debug for Freshness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Freshness")
            .field("window", &self.changes.window)
            .finish_non_exhaustive()
    }
}

impl Drop for Freshness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Freshness {
    /// Caches with `window` (non-zero) kept honest by a watcher on `pool`; the watcher starts
    /// with the first cached read (so CLI commands that only write start none).
    pub(super) fn new(window: Duration, watcher: Watcher) -> Arc<Self> {
        Arc::new(Self {
            changes: Changes::new(window),
            tokens: FreshCache::new(Counter::Tokens),
            consents: FreshCache::new(Counter::Consent),
            watcher,
            started: Once::new(),
            stop: CancellationToken::new(),
        })
    }

    /// The answer for `key`: cached if the module contract allows, else `read` from the store
    /// (and cached under the counter version known before the read began).
    pub(super) async fn answer<K, V, F>(
        self: &Arc<Self>,
        cache: &FreshCache<K, V>,
        key: K,
        read: F,
    ) -> Result<V, StoreError>
    where
        K: Eq + Hash + Clone,
        V: Clone,
        F: Future<Output = Result<V, StoreError>>,
    {
        self.started
            .call_once(|| watch::start(Arc::downgrade(self), &self.watcher, &self.stop));
        let now = Instant::now();
        let current = self.changes.current(cache.counter, now);
        if let Some(entry) = cache.entries.get(&key) {
            if entry.usable(current, now, self.changes.window) {
                return Ok(entry.value);
            }
        }
        let value = read.await?;
        if let Some(version) = current {
            let entry = Entry {
                version,
                read_at: now,
                value: value.clone(),
            };
            cache.entries.insert(key, entry);
        }
        Ok(value)
    }

    /// A change this process committed (the counter's new `version`): holds from its next
    /// request on.
    pub(super) fn committed(&self, counter: Counter, version: i64) {
        self.changes.advanced(counter, version);
    }

    /// Stops the watcher (the store is closing).
    pub(super) fn stop(&self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests;

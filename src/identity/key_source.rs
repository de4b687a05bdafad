//! An issuer's key set, cached: fetched in the background every `jwks_refresh`, fetched
//! again when a token names an unknown `kid` (at most once per `jwks_refetch_cooldown`, so
//! made-up key ids cannot make the gateway hammer the issuer), and kept when a fetch fails:
//! the last good key set stays in use until a good one replaces it.
//!
//! The refresh task holds only a weak reference, so it ends with the configuration
//! generation that owns the source.

use super::fetch::JwksOrigin;
use super::jwks::KeySet;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The cached keys of one issuer.
pub(super) struct KeySource {
    issuer: String,
    origin: JwksOrigin,
    keys: ArcSwap<KeySet>,
    fetched_at: Mutex<Option<Instant>>,
    epoch: AtomicU64,
    last_kid_refetch: tokio::sync::Mutex<Option<Instant>>,
    cooldown: Duration,
}

impl KeySource {
    /// A source with no keys yet; call [`KeySource::start`] to fetch.
    pub(super) fn new(issuer: &str, origin: JwksOrigin, cooldown: Duration) -> Arc<Self> {
        Arc::new(Self {
            issuer: issuer.to_owned(),
            origin,
            keys: ArcSwap::from_pointee(KeySet::default()),
            fetched_at: Mutex::new(None),
            epoch: AtomicU64::new(0),
            last_kid_refetch: tokio::sync::Mutex::new(None),
            cooldown,
        })
    }

    /// Starts the background refresh (first fetch at once) when a runtime is running;
    /// `privgate check` builds generations without serving, and fetches nothing.
    pub(super) fn start(self: &Arc<Self>, every: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(source) = weak.upgrade() else { return };
                source.refresh().await;
            }
        });
    }

    /// Loads a local file source now (so a generation starts with its keys).
    pub(super) fn load_now(&self, bytes: &[u8]) -> Result<(), String> {
        let set = KeySet::parse(&self.issuer, bytes).map_err(|e| e.to_string())?;
        self.install(set);
        Ok(())
    }

    /// The current key set.
    pub(super) fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Changes whenever a key set is installed: verifications made under an older epoch
    /// may rest on a key that is gone.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Seconds since the last successful fetch, if there was one.
    pub(super) fn age(&self) -> Option<Duration> {
        self.fetched_at
            .lock()
            .ok()
            .and_then(|t| t.map(|t| t.elapsed()))
    }

    /// Fetches again because a token named a key the set lacks; returns the (possibly new)
    /// set. Concurrent callers wait for one fetch; within the cooldown nothing is fetched.
    pub(super) async fn refetch_for_unknown_kid(&self) -> Arc<KeySet> {
        let mut last = self.last_kid_refetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.cooldown) {
            return self.keys();
        }
        *last = Some(Instant::now());
        self.refresh().await;
        self.keys()
    }

    /// One fetch; on failure the last good key set stays.
    async fn refresh(&self) {
        let outcome = match self.origin.fetch().await {
            Ok(bytes) => KeySet::parse(&self.issuer, &bytes).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(set) => {
                tracing::debug!(issuer = %self.issuer, keys = set.len(), "JWKS fetched");
                self.install(set);
            }
            Err(error) => {
                tracing::warn!(issuer = %self.issuer, %error, "JWKS fetch failed; keeping the last good key set");
            }
        }
    }

    fn install(&self, set: KeySet) {
        if set.is_empty() {
            tracing::warn!(issuer = %self.issuer, "JWKS has no usable key");
        }
        self.keys.store(Arc::new(set));
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut at) = self.fetched_at.lock() {
            *at = Some(Instant::now());
        }
    }
}

//! A replica's indicators: per principal and per organisation, a ring of slices for each
//! configured window, in a bounded cache; merged with the other replicas' slices read from
//! the store, and written there for them.
//!
//! Contract:
//! - memory is bounded by `[risk] max_memory_mib` whatever the number of principals: the
//!   least recently seen entries are dropped first (each is weighed by the bytes it holds,
//!   re-weighed as it grows); a dropped entry's flushed slices stay in the store and are
//!   read back when it returns;
//! - a replica writes the slices it changed every `flush_interval` (one transaction) and
//!   reads another replica's at most `refresh_interval` old, so spreading requests over
//!   replicas hides at most one flush interval's worth of them;
//! - counts are per-process: a restarted replica's earlier slices are another replica's to
//!   the new process, so a restart forgets nothing that was flushed.

use super::tally::{Observation, Tally};
use super::window::{first_live, Ring};
use crate::store::{RiskSliceRow, Store, StoreError};
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Entries the cache expects to hold (sizing its table; memory is bounded by weight).
const ESTIMATED_ENTRIES: usize = 100_000;

/// Bytes an entry costs besides its rings' contents: its shared allocation (lock, entry,
/// weight cell), its two ring vectors' buffers, the cache's slot and the key's allocation
/// header; measured against resident memory in `memory_stays_bounded_at_100_000_principals`.
const ENTRY_OVERHEAD: usize = 256;

/// The store key of a principal's indicators.
pub(crate) fn principal_key(principal: &str) -> String {
    format!("principal:{principal}")
}

/// The store key of an organisation's indicators.
pub(crate) fn organisation_key(organisation: &str) -> String {
    format!("organisation:{organisation}")
}

/// One principal's or organisation's indicators on this replica.
#[derive(Default)]
struct Entry {
    /// This process's slices, one ring per window.
    local: Vec<Ring>,
    /// The other replicas' slices, merged per window, and when they were read.
    remote: Vec<Ring>,
    remote_read_ms: Option<i64>,
}

impl Entry {
    /// Bytes it holds now, for the cache's weigher.
    fn bytes(&self) -> u64 {
        let rings = self.local.len() + self.remote.len();
        let bytes = ENTRY_OVERHEAD
            + rings * std::mem::size_of::<Ring>()
            + self.local.iter().map(Ring::heap_size).sum::<usize>()
            + self.remote.iter().map(Ring::heap_size).sum::<usize>();
        bytes as u64
    }
}

type Shared = Arc<Mutex<Entry>>;

/// A cached entry with its weight when (re-)inserted: the cache subtracts exactly what it
/// added when the entry is replaced or dropped, so the weight must not change in place.
#[derive(Clone)]
struct Held {
    entry: Shared,
    bytes: u64,
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<String, Held> for ByBytes {
    fn weight(&self, key: &String, held: &Held) -> u64 {
        (key.len() as u64 + held.bytes).max(1)
    }
}

/// Every window's counts for one key at one moment (local and remote merged), in the
/// order of the configured windows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Totals(pub(crate) Vec<Tally>);

/// The indicators of one replica.
pub(crate) struct Tracker {
    /// Window lengths in ms, in configured order.
    windows: Vec<i64>,
    replica: String,
    refresh_ms: i64,
    entries: Cache<String, Held, ByBytes>,
    /// (key, window index, slice index) changed since the last flush.
    dirty: Mutex<HashSet<(String, usize, i64)>>,
    store: Option<Store>,
}

impl Tracker {
    /// A tracker over `windows` (ms), holding at most `max_bytes` of entries, sharing
    /// counts through `store` (none: this replica's counts only).
    pub(crate) fn new(
        windows: Vec<i64>,
        max_bytes: u64,
        refresh_ms: i64,
        store: Option<Store>,
    ) -> Self {
        Self {
            windows,
            replica: uuid::Uuid::new_v4().to_string(),
            refresh_ms,
            entries: Cache::with_weighter(ESTIMATED_ENTRIES, max_bytes, ByBytes),
            dirty: Mutex::new(HashSet::new()),
            store,
        }
    }

    /// The length of window `index`, ms.
    pub(crate) fn window_ms(&self, index: usize) -> i64 {
        self.windows.get(index).copied().unwrap_or(0)
    }

    /// Entries held and their weight in bytes (memory accounting).
    pub(crate) fn held(&self) -> (usize, u64) {
        (self.entries.len(), self.entries.weight())
    }

    fn entry(&self, key: &str) -> (Shared, bool) {
        if let Some(held) = self.entries.get(key) {
            return (held.entry, false);
        }
        let entry = Entry {
            local: vec![Ring::default(); self.windows.len()],
            remote: vec![Ring::default(); self.windows.len()],
            remote_read_ms: None,
        };
        let bytes = entry.bytes();
        let shared: Shared = Arc::new(Mutex::new(entry));
        self.insert(key.to_owned(), shared.clone(), bytes);
        (shared, true)
    }

    /// (Re-)inserts `entry` weighing `bytes`.
    fn insert(&self, key: String, entry: Shared, bytes: u64) {
        self.entries.insert(key, Held { entry, bytes });
    }

    /// The window's index and length for a stored row, if it is one of ours.
    fn window_of(&self, window_ms: i64) -> Option<usize> {
        self.windows.iter().position(|w| *w == window_ms)
    }

    /// The key's counts now, every replica's together: reads the other replicas' slices
    /// first when what was read of them is older than the refresh interval.
    pub(crate) async fn totals(&self, key: &str, now_ms: i64) -> Result<Totals, StoreError> {
        let (entry, fresh) = self.entry(key);
        let stale = {
            let guard = entry.lock().unwrap_or_else(|e| e.into_inner());
            guard
                .remote_read_ms
                .is_none_or(|read| now_ms - read >= self.refresh_ms)
        };
        if let (true, Some(store)) = (stale, &self.store) {
            let since = now_ms - self.windows.iter().max().copied().unwrap_or(0);
            let rows = store.risk_slices(key, since).await?;
            let bytes = {
                let mut guard = entry.lock().unwrap_or_else(|e| e.into_inner());
                self.apply(&mut guard, rows, fresh, now_ms);
                guard.bytes()
            };
            self.insert(key.to_owned(), entry.clone(), bytes);
        } else if stale {
            let mut guard = entry.lock().unwrap_or_else(|e| e.into_inner());
            guard.remote_read_ms = Some(now_ms);
        }
        let guard = entry.lock().unwrap_or_else(|e| e.into_inner());
        let totals = self
            .windows
            .iter()
            .enumerate()
            .map(|(w, window_ms)| {
                let mut total = guard.local[w].total(*window_ms, now_ms);
                total.merge(&guard.remote[w].total(*window_ms, now_ms));
                total
            })
            .collect();
        Ok(Totals(totals))
    }

    /// Replaces the remote view with `rows`; on a `fresh` entry (new to the cache), this
    /// process's own rows seed its local rings (it was dropped and is back).
    fn apply(&self, entry: &mut Entry, rows: Vec<RiskSliceRow>, fresh: bool, now_ms: i64) {
        entry.remote = vec![Ring::default(); self.windows.len()];
        for row in rows {
            let Some(w) = self.window_of(row.window_ms) else {
                continue;
            };
            if row.slice < first_live(row.window_ms, now_ms) {
                continue;
            }
            let tally: Tally = match serde_json::from_str(&row.tally) {
                Ok(tally) => tally,
                Err(e) => {
                    tracing::warn!(error = %e, "risk slice in the store is malformed; skipped");
                    continue;
                }
            };
            if row.replica != self.replica {
                entry.remote[w].restore(row.slice, tally);
            } else if fresh {
                entry.local[w].restore(row.slice, tally);
            }
        }
        entry.remote_read_ms = Some(now_ms);
    }

    /// Adds one request to each of `keys`.
    pub(crate) fn observe(&self, keys: &[String], now_ms: i64, seen: &Observation<'_>) {
        let mut changed = Vec::new();
        for key in keys {
            let (entry, _) = self.entry(key);
            let bytes = {
                let mut guard = entry.lock().unwrap_or_else(|e| e.into_inner());
                for (w, window_ms) in self.windows.iter().enumerate() {
                    let slice = guard.local[w].observe(*window_ms, now_ms, seen);
                    changed.push((key.clone(), w, slice));
                }
                guard.bytes()
            };
            // Re-inserted so the cache weighs it as it is now.
            self.insert(key.clone(), entry, bytes);
        }
        if self.store.is_some() {
            self.dirty
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(changed);
        }
    }

    /// Writes the slices changed since the last flush (one transaction) and deletes
    /// slices older than the longest window. Slices of entries dropped meanwhile are lost.
    pub(crate) async fn flush(&self, now_ms: i64) -> Result<usize, StoreError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let changed: Vec<_> =
            std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
        let mut rows = Vec::with_capacity(changed.len());
        for (key, w, slice) in &changed {
            let (w, slice) = (*w, *slice);
            let Some(held) = self.entries.peek(key) else {
                continue;
            };
            let guard = held.entry.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(tally) = guard.local[w].slice(slice) {
                let tally =
                    serde_json::to_string(tally).map_err(|e| StoreError::Invalid(e.to_string()))?;
                rows.push(RiskSliceRow {
                    replica: self.replica.clone(),
                    scope_key: key.clone(),
                    window_ms: self.windows[w],
                    slice,
                    tally,
                });
            }
        }
        let written = rows.len();
        if !rows.is_empty() {
            if let Err(e) = store.risk_write(&rows, now_ms).await {
                // Marked again, so the next flush writes them (with whatever came since).
                self.dirty
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(changed);
                return Err(e);
            }
        }
        let longest = self.windows.iter().max().copied().unwrap_or(0);
        store.risk_prune(now_ms - 2 * longest).await?;
        Ok(written)
    }
}

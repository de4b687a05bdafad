//! A bounded cache of tokens whose signature was verified, so a client repeating its token
//! costs a hash, a map lookup and a copy of its identity instead of a public-key
//! verification (PS256/ES256 take ~0.4-0.5 ms each with the RustCrypto backend; see
//! `docs/identity.md`) and the mapping of its claims.
//!
//! Only the signature check and the claim mapping (which depends on the claims and the
//! issuer's configuration alone) are skipped on a hit. The entry is keyed by the SHA-256 of
//! the whole token (any changed byte misses), remembers the issuer's key-set epoch (a
//! refreshed key set, which may have withdrawn the key, makes the entry stale) and the
//! token's time window, which is checked again on every hit. Everything after verification
//! (binding, revocation, step-up, policy) runs on every request regardless.

use super::Identity;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Entries kept. Each holds a token's claims (typically under 2 KiB); 4096 covers the
/// distinct tokens of a busy gateway over a token lifetime while bounding memory to a few
/// MiB. When full, expired entries go first, then everything (a burst of re-verification).
pub(super) const VERIFIED_TOKEN_CACHE_ENTRIES: usize = 4096;

/// A token verified earlier.
#[derive(Clone)]
pub(super) struct VerifiedEntry {
    /// The issuer (`iss`) that verified it.
    pub issuer: String,
    /// The identity its claims give under the issuer's claim mapping, worked out once:
    /// each hit clones it rather than reading a dozen claims again (a cache lives as long
    /// as its issuers' configuration).
    pub identity: Arc<Identity>,
    /// The issuer's key-set epoch when it was verified.
    pub epoch: u64,
    /// `exp` (seconds); checked with the issuer's leeway on each hit.
    pub expires: i64,
    /// `nbf` (seconds), when present.
    pub not_before: Option<i64>,
    /// Reused until then (seconds): introspection answers are reused only briefly.
    pub reuse_until: i64,
}

/// The cache, keyed by SHA-256 of the token.
#[derive(Default)]
pub(super) struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], VerifiedEntry>>,
}

/// The cache key of a token.
pub(super) fn token_digest(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

impl VerifiedTokens {
    /// The entry for `digest`, if present.
    pub(super) fn get(&self, digest: &[u8; 32]) -> Option<VerifiedEntry> {
        self.entries.lock().ok()?.get(digest).cloned()
    }

    /// Forgets an entry (stale epoch or outside its time window).
    pub(super) fn remove(&self, digest: &[u8; 32]) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(digest);
        }
    }

    /// Remembers a verified token.
    pub(super) fn insert(&self, digest: [u8; 32], entry: VerifiedEntry, now_s: i64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= VERIFIED_TOKEN_CACHE_ENTRIES {
            entries.retain(|_, e| e.expires > now_s);
            if entries.len() >= VERIFIED_TOKEN_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(digest, entry);
    }
}

impl VerifiedEntry {
    /// An entry for claims `issuer` vouched for under key-set `epoch`; its time window is
    /// the claims' `exp`/`nbf` (a missing or non-integer `exp` makes it never current).
    pub(super) fn new(
        issuer: &str,
        claims: &Map<String, Value>,
        identity: Arc<Identity>,
        epoch: u64,
        reuse_until: i64,
    ) -> Self {
        Self {
            issuer: issuer.to_owned(),
            expires: claims
                .get("exp")
                .and_then(Value::as_i64)
                .unwrap_or(i64::MIN),
            not_before: claims.get("nbf").and_then(Value::as_i64),
            identity,
            epoch,
            reuse_until,
        }
    }

    /// Whether the token is inside its validity window now, with `leeway_s`.
    pub(super) fn current(&self, now_s: i64, leeway_s: i64) -> bool {
        let not_expired = self.expires.saturating_add(leeway_s) >= now_s;
        let started = self
            .not_before
            .is_none_or(|nbf| nbf.saturating_sub(leeway_s) <= now_s);
        not_expired && started && now_s <= self.reuse_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Caller, CallerKind, Credential};

    fn entry(expires: i64, not_before: Option<i64>) -> VerifiedEntry {
        VerifiedEntry {
            issuer: "i".into(),
            identity: Arc::new(Identity::from_client(Arc::new(Caller {
                kind: CallerKind::User,
                credential: Credential::Token,
                id: "u".into(),
                roles: Vec::new(),
                organisation: None,
                purposes: Vec::new(),
            }))),
            epoch: 1,
            expires,
            not_before,
            reuse_until: i64::MAX,
        }
    }

    #[test]
    fn the_time_window_is_checked_with_leeway() {
        let cases = [
            (entry(100, None), 100, true),
            (entry(100, None), 130, true),
            (entry(100, None), 131, false),
            (entry(500, Some(200)), 170, true),
            (entry(500, Some(200)), 169, false),
        ];
        for (e, now, current) in cases {
            assert_eq!(e.current(now, 30), current, "now {now}");
        }
    }

    #[test]
    fn the_cache_stays_bounded_dropping_expired_entries_first() {
        let cache = VerifiedTokens::default();
        for i in 0..VERIFIED_TOKEN_CACHE_ENTRIES {
            let expires = if i == 0 { 1_000 } else { 10 };
            cache.insert(token_digest(&i.to_string()), entry(expires, None), 0);
        }
        cache.insert(token_digest("new"), entry(1_000, None), 100);
        assert!(cache.get(&token_digest("0")).is_some());
        assert!(cache.get(&token_digest("new")).is_some());
        assert!(cache.get(&token_digest("1")).is_none());
        assert!(cache.entries.lock().unwrap().len() <= VERIFIED_TOKEN_CACHE_ENTRIES);
    }
}

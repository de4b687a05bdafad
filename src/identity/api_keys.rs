//! Service API keys: `Authorization: ApiKey pgk_<id>_<secret>`.
//!
//! Contract:
//! - A key is `pgk_`, a lookup id (8 random bytes, 16 lower-case hex digits, shown in
//!   `privgate apikey list`), `_`, and a secret (32 random bytes, base64url without
//!   padding). Only the id and an Argon2id hash of the secret are stored (OWASP's
//!   m = 19 MiB, t = 2, p = 1); the key is printed once, at creation.
//! - On every request the key's row is read from the store, so a revocation holds on
//!   every replica as soon as it commits. Argon2 verification (tens of milliseconds and
//!   19 MiB by design) runs once per key per generation: a verified key's SHA-256 is
//!   remembered together with the stored hash it matched, and a hit compares those in
//!   constant time instead. A malformed, unknown, wrong or revoked key is refused
//!   (401 `invalid_api_key`); the caller never falls back to another credential.
//! - The caller becomes a Cedar `PrivGate::Service::"apikey:<service>"` (its own namespace:
//!   no `[[client]]` or token can be it) with the key's roles and purposes, and no
//!   organisation.

use super::error::IdentityError;
use super::Identity;
use crate::policy::{Caller, CallerKind, Credential};
use crate::store::{ApiKeyRow, Store};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{HeaderMap, AUTHORIZATION};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// The key prefix: tells secret scanners and people what a leaked string is.
const KEY_PREFIX: &str = "pgk_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// OWASP's Argon2id minimum for password storage (m = 19 MiB, t = 2, p = 1).
const ARGON2_M_KIB: u32 = 19 * 1024;
const ARGON2_T: u32 = 2;
const ARGON2_P: u32 = 1;

/// Verified keys remembered per generation; past this the memory is cleared (keys are
/// then verified with Argon2 again), so presenting many keys cannot grow it without bound.
const VERIFIED_CAPACITY: usize = 1024;

fn argon2() -> Argon2<'static> {
    let params = argon2::Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
        .unwrap_or_else(|_| argon2::Params::default());
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// A new key: what to print once, and what to store.
pub(crate) struct NewApiKey {
    /// The whole key, for the caller.
    pub key: Zeroizing<String>,
    /// The row to store (id and hash only).
    pub row: ApiKeyRow,
}

/// Makes a key for `service`.
pub(crate) fn create(
    service: &str,
    roles: Vec<String>,
    purposes: Vec<String>,
    now_ms: i64,
) -> anyhow::Result<NewApiKey> {
    let mut id = [0u8; ID_BYTES];
    crate::keys::random(&mut id)?;
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    crate::keys::random(&mut secret[..])?;
    let mut salt = [0u8; 16];
    crate::keys::random(&mut salt)?;
    let id = crate::audit::hex(&id);
    let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(&secret[..]));
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = argon2()
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("Argon2id: {e}"))?
        .to_string();
    Ok(NewApiKey {
        key: Zeroizing::new(format!("{KEY_PREFIX}{id}_{}", secret.as_str())),
        row: ApiKeyRow {
            id,
            service: service.to_owned(),
            roles,
            purposes,
            hash,
            created_at: now_ms,
            revoked_at: None,
        },
    })
}

/// The API key the request carries (`Authorization: ApiKey ...`), if any. Several
/// `Authorization` headers are left to the bearer rules, which refuse them.
pub(crate) fn presented(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let value = value.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    scheme
        .eq_ignore_ascii_case("apikey")
        .then(|| rest.trim_matches(' '))
}

/// Splits `pgk_<id>_<secret>`; `None` when it does not have that shape.
fn parse(key: &str) -> Option<(&str, &str)> {
    let (id, secret) = key.strip_prefix(KEY_PREFIX)?.split_once('_')?;
    let id_ok =
        id.len() == 2 * ID_BYTES && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let secret_ok = URL_SAFE_NO_PAD
        .decode(secret)
        .is_ok_and(|s| s.len() == SECRET_BYTES);
    (id_ok && secret_ok).then_some((id, secret))
}

/// Keys verified in this generation: SHA-256 of the key to the stored hash it matched.
#[derive(Default)]
pub(crate) struct VerifiedApiKeys(Mutex<HashMap<[u8; 32], String>>);

impl VerifiedApiKeys {
    /// Identifies the service presenting `key`, reading its row from the store now.
    pub(crate) async fn identify(
        &self,
        key: &str,
        store: Option<&Store>,
    ) -> Result<Identity, IdentityError> {
        let (id, secret) = parse(key).ok_or(IdentityError::InvalidApiKey("malformed"))?;
        let store = store.ok_or_else(|| IdentityError::ApiKeysUnavailable("no store".into()))?;
        let row = store
            .api_key(id)
            .await
            .map_err(|e| IdentityError::ApiKeysUnavailable(e.to_string()))?
            .ok_or(IdentityError::InvalidApiKey("unknown"))?;
        if row.revoked_at.is_some() {
            return Err(IdentityError::InvalidApiKey("revoked"));
        }
        if !self.verify(key, secret, &row.hash) {
            return Err(IdentityError::InvalidApiKey("wrong secret"));
        }
        Ok(Identity::from_client(Arc::new(Caller {
            kind: CallerKind::Service,
            credential: Credential::ApiKey,
            id: row.service,
            roles: row.roles,
            organisation: None,
            purposes: row.purposes,
        })))
    }

    fn verify(&self, key: &str, secret: &str, stored_hash: &str) -> bool {
        let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(digest.as_ref());
        let remembered = self.lock().get(&fingerprint).cloned();
        // The lookup compares SHA-256 digests of the presented key: timing can at most
        // reveal digest bytes, which say nothing about any key. Both hashes compared next
        // come from the store, not from the caller.
        if let Some(hash) = remembered {
            return hash == stored_hash;
        }
        let ok = PasswordHash::new(stored_hash)
            .is_ok_and(|h| argon2().verify_password(secret.as_bytes(), &h).is_ok());
        if ok {
            let mut map = self.lock();
            if map.len() >= VERIFIED_CAPACITY {
                map.clear();
            }
            map.insert(fingerprint, stored_hash.to_owned());
        }
        ok
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_only_in_their_one_shape() {
        let key = create("batch", vec![], vec![], 0).unwrap();
        assert!(parse(&key.key).is_some());
        assert!(!key.row.hash.contains(&key.key[21..]));
        let good_id = &key.row.id;
        let cases = [
            String::new(),
            "pgk_".into(),
            format!("pgk_{good_id}"),
            format!("pgk_{good_id}_"),
            format!("pgx_{}", &key.key[4..]),
            format!("pgk_{}_{}", good_id.to_uppercase(), &key.key[21..]),
            format!("pgk_{good_id}_{}x", &key.key[21..]),
            format!("pgk_{}_{}", &good_id[1..], &key.key[21..]),
        ];
        for case in cases {
            assert!(parse(&case).is_none(), "{case}");
        }
    }

    #[test]
    fn measure_argon2_verification() {
        let key = create("batch", vec![], vec![], 0).unwrap();
        let (_, secret) = parse(&key.key).unwrap();
        let verified = VerifiedApiKeys::default();
        let started = std::time::Instant::now();
        assert!(verified.verify(&key.key, secret, &key.row.hash));
        let first = started.elapsed();
        let started = std::time::Instant::now();
        assert!(verified.verify(&key.key, secret, &key.row.hash));
        let again = started.elapsed();
        eprintln!("api key verification: first {first:?}, remembered {again:?}");
        assert!(!verified.verify(&key.key, secret, "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        let other = create("batch", vec![], vec![], 0).unwrap();
        let (_, other_secret) = parse(&other.key).unwrap();
        assert!(!verified.verify(&other.key, other_secret, &key.row.hash));
    }
}

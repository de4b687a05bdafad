//! JSON Web Key Sets (RFC 7517): parsing an issuer's published keys into verification keys,
//! each with the algorithms its type allows.
//!
//! A key's algorithms come from its type (RSA: RS*/PS*, EC P-256: ES256, EC P-384: ES384,
//! OKP Ed25519: EdDSA), narrowed by its `alg` member when present. Symmetric (`oct`) keys,
//! encryption keys, RSA keys under [`MIN_RSA_BITS`] and keys that do not parse are skipped
//! and logged; one bad key never discards the rest of the set. A document that lists keys
//! none of which is usable is refused as a whole: it is garbage or a broken publication, and
//! installing it would refuse every token (the key source keeps its last good set instead).
//! An empty `keys` array is a set: the issuer withdrew every key.

use crate::config::defaults::MIN_RSA_BITS;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// One verification key and the algorithms it may verify.
#[derive(Clone)]
pub(super) struct VerificationKey {
    /// `kid`, when the key has one.
    pub kid: Option<String>,
    /// Algorithms its type (and `alg` member) allow.
    pub algorithms: Vec<Algorithm>,
    /// The key.
    pub key: DecodingKey,
}

/// The usable keys of one JWKS document.
#[derive(Clone, Default)]
pub(super) struct KeySet {
    keys: Vec<VerificationKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|k| k.kid.as_deref()).collect();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

/// Why a JWKS document as a whole was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum JwksError {
    /// Not JSON, or no `keys` array.
    #[error("not a JWKS document: {0}")]
    Malformed(String),
    /// Keys listed, none usable.
    #[error("none of the {0} keys listed is usable")]
    NoUsableKey(usize),
}

impl KeySet {
    /// Parses a JWKS document; `issuer` names the source in logs about skipped keys.
    pub(super) fn parse(issuer: &str, bytes: &[u8]) -> Result<Self, JwksError> {
        let doc: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| JwksError::Malformed(e.to_string()))?;
        let entries = doc
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| JwksError::Malformed("no `keys` array".into()))?;
        let mut keys = Vec::new();
        for entry in entries {
            match usable_key(entry) {
                Ok(key) => keys.push(key),
                Err(why) => {
                    let kid = entry.get("kid").and_then(|k| k.as_str()).unwrap_or("");
                    tracing::warn!(%issuer, %kid, reason = why, "JWKS key skipped");
                }
            }
        }
        if keys.is_empty() && !entries.is_empty() {
            return Err(JwksError::NoUsableKey(entries.len()));
        }
        Ok(Self { keys })
    }

    /// The usable keys, in document order (the fuzz targets read them).
    #[cfg(feature = "fuzzing")]
    pub(super) fn keys(&self) -> impl Iterator<Item = &VerificationKey> {
        self.keys.iter()
    }

    /// Number of usable keys.
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no usable key.
    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key a token header names. Without a `kid` only a set of exactly one key answers,
    /// so a token can never make the gateway try every key.
    pub(super) fn find(&self, kid: Option<&str>) -> Option<&VerificationKey> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None => match self.keys.as_slice() {
                [only] => Some(only),
                _ => None,
            },
        }
    }
}

fn usable_key(entry: &serde_json::Value) -> Result<VerificationKey, &'static str> {
    let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|_| "does not parse")?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return Err("not a signature key (`use`)");
    }
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let modulus = URL_SAFE_NO_PAD
                .decode(rsa.n.trim_end_matches('='))
                .map_err(|_| "RSA modulus is not base64url")?;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant * 8 < MIN_RSA_BITS {
                return Err("RSA key under 2048 bits");
            }
            vec![
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
            ]
        }
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err("unsupported elliptic curve"),
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric keys are never taken from a JWKS")
        }
        _ => return Err("unsupported key type"),
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type,
        Some(declared) => {
            let declared: Algorithm = declared
                .to_string()
                .parse()
                .map_err(|_| "`alg` is not a signature algorithm")?;
            if !by_type.contains(&declared) {
                return Err("`alg` does not fit the key type");
            }
            vec![declared]
        }
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "key parameters are invalid")?;
    Ok(VerificationKey {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa_jwk(kid: &str, modulus_bytes: usize) -> serde_json::Value {
        let mut n = vec![0xc5u8; modulus_bytes];
        n[modulus_bytes - 1] |= 1;
        serde_json::json!({
            "kty": "RSA", "kid": kid, "e": "AQAB", "n": URL_SAFE_NO_PAD.encode(n)
        })
    }

    fn set(keys: Vec<serde_json::Value>) -> KeySet {
        let doc = serde_json::json!({ "keys": keys }).to_string();
        KeySet::parse("test", doc.as_bytes()).unwrap()
    }

    #[test]
    fn small_rsa_keys_and_symmetric_keys_are_skipped() {
        let keys = set(vec![
            rsa_jwk("weak", 128),
            rsa_jwk("strong", 256),
            serde_json::json!({ "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" }),
            serde_json::json!({ "kty": "RSA", "kid": "garbage" }),
        ]);
        assert_eq!(keys.len(), 1);
        assert!(keys.find(Some("weak")).is_none());
        assert!(keys.find(Some("hmac")).is_none());
        let strong = keys.find(Some("strong")).unwrap();
        assert!(strong.algorithms.contains(&Algorithm::PS256));
        assert!(!strong.algorithms.contains(&Algorithm::HS256));
    }

    #[test]
    fn declared_alg_narrows_and_must_fit_the_key_type() {
        let mut ps = rsa_jwk("ps", 256);
        ps["alg"] = "PS256".into();
        let mut lying = rsa_jwk("lying", 256);
        lying["alg"] = "ES256".into();
        let mut enc = rsa_jwk("enc", 256);
        enc["use"] = "enc".into();
        let keys = set(vec![ps, lying, enc]);
        assert_eq!(
            keys.find(Some("ps")).unwrap().algorithms,
            [Algorithm::PS256]
        );
        assert!(keys.find(Some("lying")).is_none());
        assert!(keys.find(Some("enc")).is_none());
    }

    #[test]
    fn a_token_without_kid_matches_only_a_single_key_set() {
        assert!(set(vec![rsa_jwk("a", 256)]).find(None).is_some());
        assert!(set(vec![rsa_jwk("a", 256), rsa_jwk("b", 256)])
            .find(None)
            .is_none());
    }

    #[test]
    fn documents_without_keys_are_refused() {
        for doc in ["", "{}", "{\"keys\": 3}", "[]"] {
            assert!(KeySet::parse("t", doc.as_bytes()).is_err(), "{doc}");
        }
    }

    #[test]
    fn a_document_listing_only_unusable_keys_is_refused_but_an_empty_one_is_a_set() {
        // Garbage must not replace a good set (the source keeps its last good one); an
        // issuer withdrawing every key publishes an empty array, which is honoured.
        let doc = serde_json::json!({ "keys": [
            { "kty": "RSA", "n": 7 },
            { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
        ]})
        .to_string();
        assert!(matches!(
            KeySet::parse("t", doc.as_bytes()),
            Err(JwksError::NoUsableKey(2))
        ));
        assert!(KeySet::parse("t", b"{\"keys\": []}").unwrap().is_empty());
    }
}

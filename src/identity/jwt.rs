//! Verifying JWT access tokens (RFC 9068 profile, FAPI 2.0 resource-server checks).
//!
//! The issuer is picked by the token's `iss` (read before verification only to choose the
//! issuer; it is then verified like every other claim). The algorithm must be in that
//! issuer's allow-list AND be one the chosen key's type allows: the header's `alg` only
//! selects among what configuration already permits, so key confusion (an HS256 token
//! "signed" with an RSA public key) cannot verify. HMAC algorithms verify only against the
//! issuer's configured shared secret, never a JWKS key. `none` does not parse.
//!
//! Checked: signature, `exp` (required), `iss` (required, exact), `aud` (required, one of
//! the configured audiences), `sub` (required), `nbf` (when present), with the issuer's
//! leeway; `typ` = `at+jwt` when configured; no `crit` header parameters.
//!
//! A token that is not a compact JWS (not three dot-separated parts) is opaque: it is
//! introspected (RFC 7662) at the one issuer that configures an introspection endpoint.

use super::error::IdentityError;
use super::fetch::JwksOrigin;
use super::introspect::{check_answer, Introspector};
use super::key_source::KeySource;
use super::verified::{token_digest, VerifiedEntry, VerifiedTokens};
use super::{claims, Identity};
use crate::config::{ConfigError, IssuerConfig};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Header, Validation};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Smallest HMAC secret accepted (bytes): the output size of HS256 (RFC 7518 section 3.2).
const MIN_HMAC_SECRET_BYTES: usize = 32;

/// One configured issuer, ready to verify its tokens.
pub(super) struct TokenIssuer {
    /// Its configuration (claim mapping, forwarding).
    pub config: IssuerConfig,
    algorithms: Vec<Algorithm>,
    keys: Option<Arc<KeySource>>,
    secret: Option<DecodingKey>,
    introspector: Option<Introspector>,
}

/// The configured issuers, by `iss`.
#[derive(Default)]
pub(super) struct Issuers {
    by_iss: HashMap<String, TokenIssuer>,
    verified: VerifiedTokens,
}

impl Issuers {
    /// Builds every issuer; local JWKS files and secrets are read now (problems name the
    /// file), remote key sets start fetching in the background.
    pub(super) fn build(configs: &[IssuerConfig]) -> Result<Self, ConfigError> {
        let mut by_iss = HashMap::new();
        for config in configs {
            by_iss.insert(config.issuer.clone(), TokenIssuer::build(config)?);
        }
        Ok(Self {
            by_iss,
            verified: VerifiedTokens::default(),
        })
    }

    /// Whether any issuer is configured.
    pub(super) fn is_empty(&self) -> bool {
        self.by_iss.is_empty()
    }

    /// Age of each issuer's key set (for the key-set-age gauge).
    pub(super) fn key_set_ages(&self) -> Vec<(&str, Option<Duration>)> {
        self.by_iss
            .iter()
            .filter_map(|(iss, i)| Some((iss.as_str(), i.keys.as_ref()?.age())))
            .collect()
    }

    /// Verifies a compact JWS access token and gives the identity its claims map to (a
    /// token verified before, under the same key set and still inside its time window,
    /// skips the signature check and the mapping; a token whose claims map to no identity
    /// is refused and not remembered).
    pub(super) async fn verify(&self, token: &str) -> Result<Arc<Identity>, IdentityError> {
        let digest = token_digest(token);
        let now = crate::store::now_ms() / 1000;
        if let Some(hit) = self.cached(&digest, now) {
            return Ok(hit);
        }
        if token.matches('.').count() != 2 {
            // Boxed, in a statement of its own: an HTTP exchange is kilobytes of state that
            // every verification's future (and each caller's) would otherwise carry and copy
            // (docs/architecture.md, "The request path").
            let introspect = Box::pin(self.introspect(token, digest, now));
            return introspect.await;
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| IdentityError::InvalidToken("malformed token or header"))?;
        if header.crit.is_some() {
            return Err(IdentityError::InvalidToken("unsupported critical header"));
        }
        let claimed: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| IdentityError::InvalidToken("malformed token payload"))?;
        let issuer = claimed
            .get("iss")
            .and_then(Value::as_str)
            .and_then(|iss| self.by_iss.get(iss))
            .ok_or(IdentityError::InvalidToken("unknown issuer"))?;
        let epoch = issuer.key_epoch();
        let claims = issuer.verify(token, &header).await?;
        let identity = Arc::new(claims::identity(&issuer.config, &claims)?);
        let entry = VerifiedEntry::new(
            &issuer.config.issuer,
            &claims,
            identity.clone(),
            epoch,
            i64::MAX,
        );
        self.verified.insert(digest, entry, now);
        Ok(identity)
    }

    /// An opaque token: asked of the one issuer with an introspection endpoint.
    async fn introspect(
        &self,
        token: &str,
        digest: [u8; 32],
        now: i64,
    ) -> Result<Arc<Identity>, IdentityError> {
        let (issuer, introspector) = self
            .by_iss
            .values()
            .find_map(|i| Some((i, i.introspector.as_ref()?)))
            .ok_or(IdentityError::InvalidToken("malformed token or header"))?;
        let answer = introspector.introspect(token).await?;
        check_answer(&answer, &issuer.config, now)?;
        let identity = Arc::new(claims::identity(&issuer.config, &answer)?);
        let reuse = i64::try_from(issuer.config.introspection_cache.as_secs()).unwrap_or(0);
        let entry = VerifiedEntry::new(
            &issuer.config.issuer,
            &answer,
            identity.clone(),
            issuer.key_epoch(),
            now.saturating_add(reuse),
        );
        self.verified.insert(digest, entry, now);
        Ok(identity)
    }

    fn cached(&self, digest: &[u8; 32], now: i64) -> Option<Arc<Identity>> {
        let entry = self.verified.get(digest)?;
        let issuer = self.by_iss.get(&entry.issuer)?;
        let leeway = i64::try_from(issuer.config.leeway.as_secs()).unwrap_or(0);
        if entry.epoch != issuer.key_epoch() || !entry.current(now, leeway) {
            self.verified.remove(digest);
            return None;
        }
        Some(entry.identity)
    }
}

impl TokenIssuer {
    fn build(config: &IssuerConfig) -> Result<Self, ConfigError> {
        let algorithms = config
            .algorithms
            .iter()
            .filter_map(|a| a.parse::<Algorithm>().ok())
            .collect();
        let secret = match &config.shared_secret_file {
            None => None,
            Some(path) => {
                let bytes = zeroize::Zeroizing::new(
                    std::fs::read(path)
                        .map_err(|e| ConfigError::one(path, format!("cannot read: {e}")))?,
                );
                let trimmed = bytes.trim_ascii_end();
                if trimmed.len() < MIN_HMAC_SECRET_BYTES {
                    return Err(ConfigError::one(
                        path,
                        format!("shared secret must be at least {MIN_HMAC_SECRET_BYTES} bytes"),
                    ));
                }
                Some(DecodingKey::from_secret(trimmed))
            }
        };
        let keys = match JwksOrigin::from_config(config)? {
            None => None,
            Some(origin) => {
                let source =
                    KeySource::new(&config.issuer, origin.clone(), config.jwks_refetch_cooldown);
                if let JwksOrigin::File(path) = &origin {
                    let bytes = std::fs::read(path)
                        .map_err(|e| ConfigError::one(path, format!("cannot read: {e}")))?;
                    source
                        .load_now(&bytes)
                        .map_err(|e| ConfigError::one(path, e))?;
                }
                source.start(config.jwks_refresh);
                Some(source)
            }
        };
        Ok(Self {
            config: config.clone(),
            algorithms,
            keys,
            secret,
            introspector: Introspector::from_config(config)?,
        })
    }

    /// The key-set epoch verifications are made under (0 for shared-secret-only issuers).
    fn key_epoch(&self) -> u64 {
        self.keys.as_ref().map_or(0, |k| k.epoch())
    }

    async fn verify(
        &self,
        token: &str,
        header: &Header,
    ) -> Result<Map<String, Value>, IdentityError> {
        let alg = header.alg;
        if !self.algorithms.contains(&alg) {
            return Err(IdentityError::InvalidToken("algorithm not accepted"));
        }
        if self.config.require_typ_at_jwt && !is_at_jwt(header.typ.as_deref()) {
            return Err(IdentityError::InvalidToken("typ is not at+jwt"));
        }
        let key = if alg.family() == AlgorithmFamily::Hmac {
            self.secret
                .clone()
                .ok_or(IdentityError::InvalidToken("algorithm not accepted"))?
        } else {
            self.public_key(header).await?
        };
        let validation = self.validation(alg);
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| IdentityError::InvalidToken(rejection(e.kind())))
    }

    /// The JWKS key the header names, fetching once more (within the cooldown) when the
    /// cached set lacks it; the key's type must allow the header's algorithm.
    async fn public_key(&self, header: &Header) -> Result<DecodingKey, IdentityError> {
        let source = self
            .keys
            .as_ref()
            .ok_or(IdentityError::InvalidToken("algorithm not accepted"))?;
        let kid = header.kid.as_deref();
        let mut set = source.keys();
        if set.find(kid).is_none() {
            // Boxed, in a statement of its own: a JWKS fetch is kilobytes of state.
            let refetch = Box::pin(source.refetch_for_unknown_kid());
            set = refetch.await;
        }
        let key = set
            .find(kid)
            .ok_or(IdentityError::InvalidToken("unknown signing key"))?;
        if !key.algorithms.contains(&header.alg) {
            return Err(IdentityError::InvalidToken(
                "algorithm does not fit the key",
            ));
        }
        Ok(key.key.clone())
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.leeway = self.config.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = true;
        v.set_issuer(&[&self.config.issuer]);
        v.set_audience(&self.config.audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v
    }
}

/// RFC 9068 section 2.1: `at+jwt`, or its full media type, compared case-insensitively.
fn is_at_jwt(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    })
}

/// A log-safe reason for a refused token (never the token or a claim value).
fn rejection(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not yet valid (nbf)",
        ErrorKind::InvalidAudience => "audience not accepted",
        ErrorKind::InvalidIssuer => "issuer mismatch",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::MissingRequiredClaim(_) => "required claim missing",
        ErrorKind::InvalidAlgorithm => "algorithm does not fit the key",
        _ => "invalid token",
    }
}

#[cfg(test)]
mod tests;

//! The identify phase: who is calling, and how they authenticated.
//!
//! A caller is either the subject of a verified JWT access token (`Authorization: Bearer`,
//! from a configured `[[issuer]]`), or a registered client presenting a pinned mutual-TLS
//! certificate (`[[client]]`). A token wins when both are present: the certificate then
//! serves as the token's binding (RFC 8705). A presented token that fails any check is
//! refused; it never falls back to the certificate.
//!
//! Contract: [`IdentityService::identify`] returns an [`Identity`] only after the token's
//! signature, registered claims, certificate binding, revocation state and the route's
//! requirements (bound tokens, step-up) all pass; otherwise an [`IdentityError`] the
//! gateway turns into a 400/401 with the matching `WWW-Authenticate` challenge.

mod bearer;
mod claims;
mod clients;
mod error;
mod fetch;
mod introspect;
mod jwks;
mod jwt;
mod key_source;
mod step_up;
mod verified;

pub use clients::ClientRegistry;
pub use error::IdentityError;
pub use jwks::KeySet;
pub use step_up::{RouteRequirements, StepUpChallenge};

use crate::config::{ClientConfig, ConfigError, IssuerConfig};
use crate::gateway::tls::PeerCertificate;
use crate::policy::Caller;
use crate::store::Store;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use jwt::Issuers;
use std::time::Duration;

/// Who is calling, as the identify phase established it.
#[derive(Clone)]
pub struct Identity {
    /// The policy principal.
    pub caller: Caller,
    /// Authentication context class (`acr`).
    pub acr: Option<String>,
    /// Authentication methods (RFC 8176 `amr`).
    pub amr: Vec<String>,
    /// When the user authenticated (`auth_time`, seconds since the epoch).
    pub auth_time: Option<i64>,
    /// The token is bound to this connection's client certificate (RFC 8705).
    pub certificate_bound: bool,
    /// Facts about the token, when the caller came with one.
    pub token: Option<TokenFacts>,
}

/// What the gateway keeps of a verified token (never the token itself).
#[derive(Clone)]
pub struct TokenFacts {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `client_id` (or `azp`).
    pub client_id: Option<String>,
    /// `jti`.
    pub jti: Option<String>,
    /// `iat` (seconds since the epoch).
    pub issued_at: Option<i64>,
    /// `scope` values.
    pub scopes: Vec<String>,
    /// `cnf.x5t#S256`, when the token is certificate-bound.
    pub bound_thumbprint: Option<String>,
    /// Claim headers to set upstream.
    pub forward: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("kind", &self.caller.kind)
            .field("id", &self.caller.id)
            .field("token", &self.token.is_some())
            .field("certificate_bound", &self.certificate_bound)
            .finish_non_exhaustive()
    }
}

impl Identity {
    fn from_client(caller: Caller) -> Self {
        Self {
            caller,
            acr: None,
            amr: Vec::new(),
            auth_time: None,
            certificate_bound: false,
            token: None,
        }
    }

    /// Seconds since the user authenticated; unknown counts as never fresh.
    pub fn auth_age_seconds(&self, now_s: i64) -> i64 {
        self.auth_time
            .map_or(i64::MAX, |t| now_s.saturating_sub(t).max(0))
    }

    /// Prepares the upstream request's identity headers: the bearer token is consumed here
    /// (upstreams get the configured claim headers instead, so they cannot replay it).
    /// Incoming copies of claim headers were already stripped as internal headers.
    pub fn set_upstream_headers(&self, headers: &mut HeaderMap) {
        let Some(token) = &self.token else { return };
        headers.remove(http::header::AUTHORIZATION);
        for (name, value) in &token.forward {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Everything the identify phase needs from one configuration generation.
#[derive(Default)]
pub struct IdentityService {
    clients: ClientRegistry,
    issuers: Issuers,
    forwarded_headers: Vec<HeaderName>,
}

impl IdentityService {
    /// Builds registered clients and token issuers from (validated) configuration.
    pub fn build(clients: &[ClientConfig], issuers: &[IssuerConfig]) -> Result<Self, ConfigError> {
        let forwarded_headers = issuers
            .iter()
            .flat_map(|i| i.forward_claims.values())
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        Ok(Self {
            clients: ClientRegistry::new(clients),
            issuers: Issuers::build(issuers)?,
            forwarded_headers,
        })
    }

    /// Headers only the gateway sets (claim headers): incoming copies are always removed.
    pub fn internal_headers(&self) -> &[HeaderName] {
        &self.forwarded_headers
    }

    /// Age of each issuer's cached key set, for metrics.
    pub fn key_set_ages(&self) -> Vec<(&str, Option<Duration>)> {
        self.issuers.key_set_ages()
    }

    /// Identifies the caller of a request on a route with these requirements.
    pub async fn identify(
        &self,
        peer: Option<&PeerCertificate>,
        headers: &HeaderMap,
        query: Option<&str>,
        route: &RouteRequirements,
        store: Option<&Store>,
        now_s: i64,
    ) -> Result<Identity, IdentityError> {
        let token = if self.issuers.is_empty() {
            None
        } else {
            bearer::bearer_token(headers, query)?
        };
        let identity = match token {
            Some(token) => {
                let verified = self.issuers.verify(token).await?;
                let mut identity = claims::identity(&verified)?;
                identity.certificate_bound = check_binding(&identity, peer)?;
                check_revocation(&identity, store).await?;
                if route.require_bound_token && !identity.certificate_bound {
                    return Err(IdentityError::InvalidToken(
                        "token is not certificate-bound",
                    ));
                }
                identity
            }
            None if route.require_bound_token => return Err(IdentityError::Missing),
            None => self
                .clients
                .identify(peer)
                .cloned()
                .map(Identity::from_client)
                .ok_or(IdentityError::Missing)?,
        };
        if !route.step_up_met(&identity, now_s) {
            return Err(IdentityError::StepUp(route.challenge()));
        }
        Ok(identity)
    }
}

/// The deny-list (`privgate token revoke`), read now; without a store tokens fail closed.
async fn check_revocation(identity: &Identity, store: Option<&Store>) -> Result<(), IdentityError> {
    let Some(token) = &identity.token else {
        return Ok(());
    };
    let store = store.ok_or_else(|| IdentityError::RevocationUnavailable("no store".into()))?;
    let issued_at_ms = token.issued_at.map(|s| s.saturating_mul(1000));
    let revoked = store
        .token_revoked(token.jti.as_deref(), &token.subject, issued_at_ms)
        .await
        .map_err(|e| IdentityError::RevocationUnavailable(e.to_string()))?;
    if revoked {
        return Err(IdentityError::InvalidToken("revoked"));
    }
    Ok(())
}

/// RFC 8705 section 3: a token with `cnf.x5t#S256` is only good on a connection whose
/// client certificate has that SHA-256 thumbprint (base64url, no padding).
fn check_binding(
    identity: &Identity,
    peer: Option<&PeerCertificate>,
) -> Result<bool, IdentityError> {
    let Some(expected) = identity
        .token
        .as_ref()
        .and_then(|t| t.bound_thumbprint.as_deref())
    else {
        return Ok(false);
    };
    let presented = peer
        .map(|p| URL_SAFE_NO_PAD.encode(p.thumbprint_sha256))
        .ok_or(IdentityError::InvalidToken(
            "bound token without a client certificate",
        ))?;
    if presented != expected {
        return Err(IdentityError::InvalidToken("bound to another certificate"));
    }
    Ok(true)
}

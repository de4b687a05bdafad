//! The identify phase: who is calling, and how they authenticated.
//!
//! A caller is either the subject of a verified JWT access token (`Authorization: Bearer`,
//! from a configured `[[issuer]]`), or a registered client presenting a pinned mutual-TLS
//! certificate (`[[client]]`). A token wins when both are present: the certificate then
//! serves as the token's binding (RFC 8705). A presented token that fails any check is
//! refused; it never falls back to the certificate.
//!
//! A service may instead present an API key (`Authorization: ApiKey pgk_...`, see
//! [`api_keys`]); a user with a token may add a gateway-native one-time code (`X-OTP`, see
//! [`totp`]), which, when valid, adds `otp` to the identity's `amr` with authentication age
//! 0 for this request.
//!
//! Contract: [`IdentityService::identify`] returns an [`Identity`] only after the token's
//! signature, registered claims, certificate binding, revocation state, any one-time code
//! and the route's requirements (bound tokens, step-up) all pass; otherwise an
//! [`IdentityError`] the gateway turns into a 400/401/429 with the matching
//! `WWW-Authenticate` challenge.

pub(crate) mod api_keys;
mod bearer;
mod claims;
mod clients;
mod error;
mod fetch;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod introspect;
mod jwks;
mod jwt;
mod key_source;
mod step_up;
pub(crate) mod totp;
mod verified;

pub(crate) use bearer::refuse_token_in_query;
pub(crate) use clients::ClientRegistry;
pub(crate) use error::IdentityError;
pub(crate) use fetch::issuer_client;
pub(crate) use step_up::RouteRequirements;
// Named by `IdentityError::StepUp`; the rescue step writes its challenge.
pub(crate) use step_up::StepUpChallenge;

use crate::certs::PeerCertificate;
use crate::config::{ClientConfig, ConfigError, IssuerConfig, TotpConfig};
use crate::keys::Keyring;
use crate::policy::Caller;
use crate::store::Store;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use jwt::Issuers;
use std::sync::Arc;
use std::time::Duration;

/// Who is calling, as the identify phase established it.
#[derive(Clone)]
pub struct Identity {
    /// The policy principal (shared: a cached token's or a client's identity hands each
    /// request the same caller, and its decision requests share it too).
    pub caller: Arc<Caller>,
    /// Authentication context class (`acr`).
    pub acr: Option<String>,
    /// Authentication methods (RFC 8176 `amr`; shared with the decision requests).
    pub amr: Arc<[String]>,
    /// When the user authenticated (`auth_time`, seconds since the epoch).
    pub auth_time: Option<i64>,
    /// The token is bound to this connection's client certificate (RFC 8705).
    pub certificate_bound: bool,
    /// Facts about the token, when the caller came with one. Shared: the verified-token
    /// cache hands each request a copy of the identity, and these facts never change.
    pub token: Option<Arc<TokenFacts>>,
    /// The caller presented an API key (consumed here, like a bearer token).
    pub api_key: bool,
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
    /// `sid` (OpenID Connect session id), when the issuer sends one.
    pub session_id: Option<String>,
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

/// How far ahead of this clock a token's `auth_time` may be (clocks differ).
pub(crate) const AUTH_TIME_SKEW_S: i64 = 60;

impl Identity {
    fn from_client(caller: Arc<Caller>) -> Self {
        Self {
            caller,
            acr: None,
            amr: Arc::default(),
            auth_time: None,
            certificate_bound: false,
            token: None,
            api_key: false,
        }
    }

    /// Seconds since the user authenticated, the one reading of `auth_time` that route
    /// step-up and policies share. Unknown counts as never fresh, and so does a sign-in
    /// more than [`AUTH_TIME_SKEW_S`] in the future: it is no evidence of a recent one, and
    /// a token carrying it would otherwise stay fresh for as long as it is valid.
    pub fn auth_age_seconds(&self, now_s: i64) -> i64 {
        match self.auth_time.map(|t| now_s.saturating_sub(t)) {
            Some(age) if age >= -AUTH_TIME_SKEW_S => age.max(0),
            _ => i64::MAX,
        }
    }

    /// Prepares the upstream request's identity headers: the bearer token is consumed here
    /// (upstreams get the configured claim headers instead, so they cannot replay it).
    /// Incoming copies of claim headers were already stripped as internal headers.
    pub fn set_upstream_headers(&self, headers: &mut HeaderMap) {
        if self.api_key {
            headers.remove(http::header::AUTHORIZATION);
        }
        let Some(token) = &self.token else { return };
        headers.remove(http::header::AUTHORIZATION);
        for (name, value) in &token.forward {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Everything the identify phase needs from one configuration generation.
#[derive(Default)]
pub(crate) struct IdentityService {
    clients: ClientRegistry,
    issuers: Issuers,
    forwarded_headers: Vec<HeaderName>,
    totp: Option<TotpConfig>,
    api_keys: api_keys::VerifiedApiKeys,
}

/// What the identify phase may use besides the configuration: the store (revocations, API
/// keys, one-time codes) and the keyring (TOTP secrets).
#[derive(Clone, Copy, Default)]
pub(crate) struct IdentityState<'a> {
    /// The gateway's store.
    pub store: Option<&'a Store>,
    /// The gateway's keyring.
    pub keyring: Option<&'a Keyring>,
    /// Check `X-OTP` (the TOTP endpoints check their codes themselves).
    pub check_otp: bool,
}

impl IdentityService {
    /// Builds registered clients and token issuers from (validated) configuration.
    pub(crate) fn build(
        clients: &[ClientConfig],
        issuers: &[IssuerConfig],
        totp: Option<&TotpConfig>,
    ) -> Result<Self, ConfigError> {
        let forwarded_headers = issuers
            .iter()
            .flat_map(|i| i.forward_claims.values())
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        Ok(Self {
            clients: ClientRegistry::new(clients),
            issuers: Issuers::build(issuers)?,
            forwarded_headers,
            totp: totp.cloned(),
            api_keys: api_keys::VerifiedApiKeys::default(),
        })
    }

    /// The id of the registered client (`[[client]]`) behind a verified certificate, if any.
    pub(crate) fn registered_client(&self, certificate: Option<&PeerCertificate>) -> Option<&str> {
        self.clients.identify(certificate).map(|c| c.id.as_str())
    }

    /// Headers only the gateway sets (claim headers): incoming copies are always removed.
    pub(crate) fn internal_headers(&self) -> &[HeaderName] {
        &self.forwarded_headers
    }

    /// Age of each issuer's cached key set, for metrics.
    pub(crate) fn key_set_ages(&self) -> Vec<(&str, Option<Duration>)> {
        self.issuers.key_set_ages()
    }

    /// `[totp]`, when configured.
    pub(crate) fn totp_settings(&self) -> Option<&TotpConfig> {
        self.totp.as_ref()
    }

    /// Identifies the caller of a request on a route with these requirements.
    pub(crate) async fn identify(
        &self,
        peer: Option<&PeerCertificate>,
        headers: &HeaderMap,
        query: Option<&str>,
        route: &RouteRequirements,
        state: IdentityState<'_>,
        now_s: i64,
    ) -> Result<Identity, IdentityError> {
        let mut identity = match api_keys::presented(headers) {
            Some(_) if route.require_bound_token => {
                return Err(IdentityError::InvalidApiKey("route requires a bound token"))
            }
            Some(key) => {
                let mut identity = self.api_keys.identify(key, state.store).await?;
                identity.api_key = true;
                identity
            }
            None => {
                self.token_or_client(peer, headers, query, route, state.store)
                    .await?
            }
        };
        if state.check_otp {
            self.add_otp(&mut identity, headers, state, now_s).await?;
        }
        if !route.step_up_met(&identity, now_s) {
            return Err(IdentityError::StepUp(route.challenge()));
        }
        Ok(identity)
    }

    /// A valid `X-OTP` code of a token's user adds `otp` to `amr`, authenticated now.
    /// Without `[totp]`, or from a caller that is no token user, the header is ignored.
    async fn add_otp(
        &self,
        identity: &mut Identity,
        headers: &HeaderMap,
        state: IdentityState<'_>,
        now_s: i64,
    ) -> Result<(), IdentityError> {
        let Some(code) = headers.get(OTP_HEADER) else {
            return Ok(());
        };
        if identity.token.is_none() || identity.caller.kind != crate::policy::CallerKind::User {
            return Ok(());
        }
        let Some(settings) = &self.totp else {
            return Ok(());
        };
        let ctx = totp::TotpContext::new(settings, state)?;
        let code = code
            .to_str()
            .map_err(|_| IdentityError::OtpInvalid("not ASCII"))?;
        let now_ms = now_s.saturating_mul(1000);
        totp::check_code(
            ctx,
            &identity.caller.id,
            code.trim(),
            totp::CodeUse::Request,
            now_ms,
        )
        .await?;
        if !identity.amr.iter().any(|m| m == "otp") {
            identity.amr = [&identity.amr[..], &["otp".to_owned()]].concat().into();
        }
        identity.auth_time = Some(now_s);
        Ok(())
    }

    async fn token_or_client(
        &self,
        peer: Option<&PeerCertificate>,
        headers: &HeaderMap,
        query: Option<&str>,
        route: &RouteRequirements,
        store: Option<&Store>,
    ) -> Result<Identity, IdentityError> {
        let token = if self.issuers.is_empty() {
            None
        } else {
            bearer::bearer_token(headers, query)?
        };
        let identity = match token {
            Some(token) => {
                let verified = self.issuers.verify(token).await?;
                let mut identity = Identity::clone(&verified);
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
        Ok(identity)
    }
}

/// The header a client sends a one-time code in; an internal header, never forwarded.
pub(crate) const OTP_HEADER: &str = "x-otp";

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

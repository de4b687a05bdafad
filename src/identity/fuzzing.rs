//! The identity phase's parsers for the fuzz targets (`crate::fuzzing`, `fuzzing` feature).
//!
//! [`TokenGate`] is the gateway's identify phase configured with one HS256 issuer whose
//! secret the fuzz target holds: the deterministic stand-in for an identity provider's
//! signature. The token still goes through the real header parse, signature check, claim
//! validation, claim mapping and revocation check (against a real SQLite store).

use super::jwks::KeySet;
use super::{IdentityService, IdentityState, RouteRequirements};
use crate::config::IssuerConfig;
use crate::store::Store;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, HeaderValue};
use std::path::Path;

/// The one issuer's `iss`.
pub const ISSUER: &str = "https://idp.fuzz.invalid";
/// The one audience it accepts.
pub const AUDIENCE: &str = "api://fuzz";
/// Its clock leeway, seconds.
pub const LEEWAY_S: i64 = 30;
/// The claims it forwards upstream, with their headers.
pub const FORWARDED: [(&str, &str); 2] = [("acct", "x-privgate-account"), ("sub", "x-sub")];
const SECRET: &[u8] = b"privgate-fuzz-shared-secret-0123456789";

/// What an accepted token established, as plain values for the target's checks.
#[derive(Debug)]
pub struct TokenOutcome {
    /// The principal's id (`sub`).
    pub subject: String,
    /// Whether the caller is a service (client credentials) rather than a user.
    pub service: bool,
    /// Roles, from `roles` and `scope`.
    pub roles: Vec<String>,
    /// Claim headers to set upstream, as (name, value).
    pub forwarded: Vec<(String, String)>,
}

/// The identify phase with one HS256 issuer (see the module docs).
pub struct TokenGate {
    rt: tokio::runtime::Runtime,
    service: IdentityService,
    store: Store,
}

impl TokenGate {
    /// A gate keeping its secret and store in `dir`.
    pub fn open(dir: &Path) -> Self {
        let secret = dir.join("secret");
        std::fs::write(&secret, SECRET).expect("secret file");
        let forward: Vec<String> = FORWARDED
            .iter()
            .map(|(c, h)| format!("{c} = \"{h}\""))
            .collect();
        let config: IssuerConfig = toml::from_str(&format!(
            r#"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
algorithms = ["HS256"]
shared_secret_file = "{secret}"
leeway = "{LEEWAY_S}s"
scopes_as_roles = true
purposes_claim = "purposes"
organisation_claim = "org"
forward_claims = {{ {forward} }}
"#,
            secret = secret.display(),
            forward = forward.join(", "),
        ))
        .expect("issuer config");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = rt
            .block_on(Store::open(&format!("sqlite://{}/store.db", dir.display())))
            .expect("store");
        let service = IdentityService::build(&[], &[config], None).expect("issuer");
        Self { rt, service, store }
    }

    /// A compact JWS of exactly these header and claims bytes, signed HS256 with the
    /// issuer's secret.
    pub fn sign(header: &[u8], claims: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET);
        let tag = ring::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Identifies a request carrying `Authorization: Bearer <token>` at `now_s`.
    pub fn identify(&self, token: &str, now_s: i64) -> Result<TokenOutcome, String> {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "not a header value".to_owned())?;
        headers.insert(http::header::AUTHORIZATION, value);
        let state = IdentityState {
            store: Some(&self.store),
            keyring: None,
            check_otp: false,
        };
        let route = RouteRequirements {
            authenticate: true,
            ..Default::default()
        };
        let identity = self
            .rt
            .block_on(
                self.service
                    .identify(None, &headers, None, &route, state, now_s),
            )
            .map_err(|e| e.to_string())?;
        let token = identity.token.as_ref().ok_or("no token facts")?;
        Ok(TokenOutcome {
            subject: identity.caller.id.clone(),
            service: identity.caller.kind == crate::policy::CallerKind::Service,
            roles: identity.caller.roles.clone(),
            forwarded: token
                .forward
                .iter()
                .map(|(h, v)| (h.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
        })
    }
}

/// The usable keys of a JWKS document: each key's `kid` and the algorithms it may verify;
/// and whether a token without `kid` would find a key.
pub fn jwks_algorithms(bytes: &[u8]) -> Result<JwksListing, String> {
    let set = KeySet::parse("fuzz", bytes).map_err(|e| e.to_string())?;
    Ok(JwksListing {
        keys: set
            .keys()
            .map(|k| {
                (
                    k.kid.clone(),
                    k.algorithms.iter().map(|a| format!("{a:?}")).collect(),
                )
            })
            .collect(),
        answers_without_kid: set.find(None).is_some(),
        len: set.len(),
    })
}

/// What [`jwks_algorithms`] found.
#[derive(Debug)]
pub struct JwksListing {
    /// Each usable key's `kid` and algorithm names.
    pub keys: Vec<(Option<String>, Vec<String>)>,
    /// Whether a token header without `kid` finds a key.
    pub answers_without_kid: bool,
    /// The set's own count of usable keys.
    pub len: usize,
}

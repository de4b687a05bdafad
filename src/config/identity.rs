//! Token identity configuration: the `[[issuer]]` tables (who may issue access tokens the
//! gateway accepts, and how their claims map to a caller) and the per-route requirements
//! (`authenticate`, `require_bound_token`, `[route.step_up]`), with their validation.

use super::defaults;
use super::problems::Problems;
use super::{Config, RouteConfig};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// An access-token issuer (an OAuth 2.0 authorization server).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` value its tokens carry.
    pub issuer: String,
    /// Accepted `aud` values: a token must name at least one.
    pub audiences: Vec<String>,
    /// Local JWKS file (read at start, on reload, and when a token names an unknown key).
    pub jwks_file: Option<PathBuf>,
    /// HTTPS URL of the issuer's JWKS.
    pub jwks_url: Option<String>,
    /// PEM CA bundle the JWKS server's certificate must chain to; system roots if absent.
    pub ca: Option<PathBuf>,
    /// How often the JWKS is fetched again in the background.
    #[serde(default = "default_jwks_refresh", with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// Least time between two fetches caused by tokens naming an unknown `kid`.
    #[serde(default = "default_jwks_cooldown", with = "humantime_serde")]
    pub jwks_refetch_cooldown: Duration,
    /// Accepted signature algorithms (JWS `alg` names).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// File holding the HMAC secret for HS256/384/512 (at least 32 bytes); HS algorithms
    /// are accepted only with it, and only ever verified with it.
    pub shared_secret_file: Option<PathBuf>,
    /// Allowed clock skew on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// Require the JOSE header `typ` to be `at+jwt` (RFC 9068).
    #[serde(default)]
    pub require_typ_at_jwt: bool,
    /// Claim holding the caller's roles (array of strings, or a space-separated string).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Also give the caller each `scope` value as a role.
    #[serde(default)]
    pub scopes_as_roles: bool,
    /// Claim holding the purposes the issuer lets the caller act for.
    pub purposes_claim: Option<String>,
    /// Claim holding the caller's organisation (consent grantee).
    pub organisation_claim: Option<String>,
    /// Claims forwarded upstream, as `claim = "Header-Name"`.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
    /// RFC 7662 introspection endpoint (HTTPS) for opaque (non-JWT) access tokens.
    pub introspection_url: Option<String>,
    /// Client id the gateway authenticates to the introspection endpoint with.
    pub introspection_client_id: Option<String>,
    /// File holding that client's secret (sent with HTTP Basic, RFC 7662 section 2.1).
    pub introspection_secret_file: Option<PathBuf>,
    /// How long an active introspection answer is reused (bounds revocation delay).
    #[serde(default = "default_introspection_cache", with = "humantime_serde")]
    pub introspection_cache: Duration,
}

fn default_introspection_cache() -> Duration {
    defaults::INTROSPECTION_CACHE
}

fn default_jwks_refresh() -> Duration {
    defaults::JWKS_REFRESH
}
fn default_jwks_cooldown() -> Duration {
    defaults::JWKS_REFETCH_COOLDOWN
}
fn default_leeway() -> Duration {
    defaults::TOKEN_LEEWAY
}
fn default_roles_claim() -> String {
    "roles".to_owned()
}
fn default_algorithms() -> Vec<String> {
    defaults::TOKEN_ALGORITHMS
        .iter()
        .map(|a| (*a).to_owned())
        .collect()
}

/// What a route asks of the caller's authentication (RFC 9470).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepUpConfig {
    /// Acceptable `acr` values; any if empty.
    #[serde(default)]
    pub acr_values: Vec<String>,
    /// At least one of these `amr` values must be present; any if empty.
    #[serde(default)]
    pub amr_any: Vec<String>,
    /// Longest time since the user authenticated (`auth_time`).
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
}

/// X- headers the gateway sets or reads itself; a claim header must not take their place.
const RESERVED_HEADERS: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "x-purpose",
    "x-otp",
];

/// Algorithms that are HMAC (shared-secret) algorithms.
pub const HMAC_ALGORITHMS: &[&str] = &["HS256", "HS384", "HS512"];
const ASYMMETRIC_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

pub(super) fn resolve_paths(issuers: &mut [IssuerConfig], resolve: impl Fn(&mut PathBuf)) {
    for i in issuers {
        i.jwks_file.as_mut().map(&resolve);
        i.ca.as_mut().map(&resolve);
        i.shared_secret_file.as_mut().map(&resolve);
        i.introspection_secret_file.as_mut().map(&resolve);
    }
}

pub(super) fn validate(config: &Config, problems: &mut Problems) {
    let mut seen = HashSet::new();
    for (index, i) in config.issuers.iter().enumerate() {
        if !seen.insert(&i.issuer) {
            problems.at(
                &format!("issuer.{index}.issuer"),
                format!("issuer `{}` is defined twice", i.issuer),
            );
        }
        // The console's token endpoint is verified against its issuer's `ca` too.
        let console_uses_ca = config
            .console
            .as_ref()
            .is_some_and(|c| c.issuer == i.issuer);
        validate_issuer(index, i, console_uses_ca, problems);
    }
    if config
        .issuers
        .iter()
        .filter(|i| i.introspection_url.is_some())
        .count()
        > 1
    {
        problems
            .add("at most one [[issuer]] may set introspection_url (opaque tokens name no issuer)");
    }
    for r in &config.routes {
        validate_route(r, config, problems);
    }
}

/// `index`: the issuer's place among the `[[issuer]]` tables, to locate its keys.
fn validate_issuer(index: usize, i: &IssuerConfig, console_uses_ca: bool, problems: &mut Problems) {
    let name = &i.issuer;
    if name.is_empty() {
        problems.at(
            &format!("issuer.{index}.issuer"),
            "issuer: `issuer` must not be empty",
        );
    }
    if i.audiences.is_empty() || i.audiences.iter().any(String::is_empty) {
        problems.at(
            &format!("issuer.{index}.audiences"),
            format!("issuer `{name}`: audiences must list at least one non-empty audience"),
        );
    }
    validate_key_source(index, i, console_uses_ca, problems);
    if i.algorithms.is_empty() {
        problems.at(
            &format!("issuer.{index}.algorithms"),
            format!("issuer `{name}`: algorithms must not be empty"),
        );
    }
    for alg in &i.algorithms {
        if HMAC_ALGORITHMS.contains(&alg.as_str()) {
            if i.shared_secret_file.is_none() {
                problems.at(
                    &format!("issuer.{index}.algorithms"),
                    format!("issuer `{name}`: algorithm {alg} needs shared_secret_file"),
                );
            }
        } else if !ASYMMETRIC_ALGORITHMS.contains(&alg.as_str()) {
            problems.at(&format!("issuer.{index}.algorithms"), format!(
                "issuer `{name}`: algorithm `{alg}` is not accepted (use PS256, ES256, EdDSA, RS256, ...; `none` never)"
            ));
        }
    }
    if i.shared_secret_file.is_some()
        && !i
            .algorithms
            .iter()
            .any(|a| HMAC_ALGORITHMS.contains(&a.as_str()))
    {
        problems.at(
            &format!("issuer.{index}.shared_secret_file"),
            format!(
                "issuer `{name}`: shared_secret_file is set but algorithms lists no HS256/384/512"
            ),
        );
    }
    if i.leeway > defaults::TOKEN_MAX_LEEWAY {
        problems.at(
            &format!("issuer.{index}.leeway"),
            format!(
                "issuer `{name}`: leeway must be at most {}s",
                defaults::TOKEN_MAX_LEEWAY.as_secs()
            ),
        );
    }
    if i.jwks_refresh.is_zero() || i.jwks_refetch_cooldown.is_zero() {
        problems.at(
            &format!("issuer.{index}.jwks_refresh"),
            format!(
                "issuer `{name}`: jwks_refresh and jwks_refetch_cooldown must be greater than 0"
            ),
        );
    }
    for (claim, header) in &i.forward_claims {
        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            problems.at(
                &format!("issuer.{index}.forward_claims.{claim}"),
                format!("issuer `{name}`: forward_claims.{claim}: `{header}` is not a header name"),
            );
        } else if !header.to_ascii_lowercase().starts_with("x-")
            || RESERVED_HEADERS.contains(&header.to_ascii_lowercase().as_str())
        {
            // Claim headers become internal headers (stripped from every request), so a
            // standard header here would silently break other routes.
            problems.at(&format!("issuer.{index}.forward_claims.{claim}"), format!(
                "issuer `{name}`: forward_claims.{claim}: `{header}` must be an X- header the gateway does not set itself"
            ));
        }
    }
}

fn validate_key_source(
    index: usize,
    i: &IssuerConfig,
    console_uses_ca: bool,
    problems: &mut Problems,
) {
    let name = &i.issuer;
    let asymmetric = i
        .algorithms
        .iter()
        .any(|a| !HMAC_ALGORITHMS.contains(&a.as_str()));
    match (&i.jwks_file, &i.jwks_url) {
        (Some(_), Some(_)) => problems.at(
            &format!("issuer.{index}.jwks_url"),
            format!("issuer `{name}`: set jwks_file or jwks_url, not both"),
        ),
        (None, None) if asymmetric && i.introspection_url.is_none() => problems.at(
            &format!("issuer.{index}.issuer"),
            format!("issuer `{name}`: needs jwks_file or jwks_url for its public-key algorithms"),
        ),
        _ => {}
    }
    if let Some(url) = &i.jwks_url {
        match url.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {}
            _ => problems.at(
                &format!("issuer.{index}.jwks_url"),
                format!("issuer `{name}`: jwks_url must be an https:// URL"),
            ),
        }
    }
    if i.ca.is_some() && i.jwks_url.is_none() && i.introspection_url.is_none() && !console_uses_ca {
        problems.at(
            &format!("issuer.{index}.ca"),
            format!(
                "issuer `{name}`: ca is only used with jwks_url, introspection_url or [console]"
            ),
        );
    }
    if let Some(url) = &i.introspection_url {
        match url.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {}
            _ => problems.at(
                &format!("issuer.{index}.introspection_url"),
                format!("issuer `{name}`: introspection_url must be an https:// URL"),
            ),
        }
        if i.introspection_client_id.is_none() || i.introspection_secret_file.is_none() {
            problems.at(&format!("issuer.{index}.introspection_url"), format!(
                "issuer `{name}`: introspection_url needs introspection_client_id and introspection_secret_file"
            ));
        }
        if i.introspection_cache > defaults::INTROSPECTION_MAX_CACHE {
            problems.at(
                &format!("issuer.{index}.introspection_cache"),
                format!(
                    "issuer `{name}`: introspection_cache must be at most {}s",
                    defaults::INTROSPECTION_MAX_CACHE.as_secs()
                ),
            );
        }
    } else if i.introspection_client_id.is_some() || i.introspection_secret_file.is_some() {
        problems.at(&format!("issuer.{index}.introspection_client_id"), format!(
            "issuer `{name}`: introspection_client_id/introspection_secret_file need introspection_url"
        ));
    }
}

fn validate_route(r: &RouteConfig, config: &Config, problems: &mut Problems) {
    if let Some(step_up) = &r.step_up {
        validate_step_up(&format!("route `{}`: step_up", r.name), step_up, problems);
    }
    let needs_tokens = r.require_bound_token || r.step_up.is_some();
    if needs_tokens && config.issuers.is_empty() {
        problems.add(format!(
            "route `{}`: require_bound_token and step_up need an [[issuer]]",
            r.name
        ));
    }
}

/// The rules every step-up requirement (a route's, TOTP enrollment's) obeys; `what` names
/// it in messages (e.g. "route `payments`: step_up").
pub(super) fn validate_step_up(what: &str, step_up: &StepUpConfig, problems: &mut Problems) {
    if step_up.max_age.is_some_and(|d| d.is_zero()) {
        problems.add(format!("{what}.max_age must be greater than 0"));
    }
    let values = step_up.acr_values.iter().chain(&step_up.amr_any);
    if values.clone().any(|v| !is_token68ish(v)) {
        problems.add(format!(
            "{what} acr_values and amr_any must be non-empty and free of quotes, spaces and control characters"
        ));
    }
}

/// Values that can sit inside a quoted `WWW-Authenticate` parameter without escaping.
fn is_token68ish(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use std::path::Path;

    const BASE: &str = r#"
[[listener]]
name = "public"
address = "127.0.0.1:8443"
cert = "c.pem"
key = "k.pem"
[upstream.main]
url = "http://127.0.0.1:9000"
"#;

    #[test]
    fn issuer_problems_are_named() {
        let cases = [
            (
                "[[issuer]]\nissuer = \"https://idp\"\naudiences = [\"api\"]\njwks_file = \"j.json\"\nalgorithms = [\"none\"]",
                "`none` never",
            ),
            (
                "[[issuer]]\nissuer = \"https://idp\"\naudiences = [\"api\"]\njwks_file = \"j.json\"\nalgorithms = [\"HS256\"]",
                "needs shared_secret_file",
            ),
            (
                "[[issuer]]\nissuer = \"https://idp\"\naudiences = [\"api\"]\njwks_url = \"http://idp/jwks\"",
                "https:// URL",
            ),
            (
                "[[issuer]]\nissuer = \"https://idp\"\naudiences = []\njwks_file = \"j.json\"",
                "audiences",
            ),
            (
                "[[issuer]]\nissuer = \"https://idp\"\naudiences = [\"api\"]",
                "needs jwks_file or jwks_url",
            ),
            (
                "[[issuer]]\nissuer = \"https://idp\"\naudiences = [\"api\"]\njwks_file = \"j.json\"\nleeway = \"1h\"",
                "leeway must be at most",
            ),
            (
                "[[issuer]]\nissuer = \"https://idp\"\naudiences = [\"api\"]\njwks_file = \"j.json\"\nforward_claims = { sub = \"bad header\" }",
                "not a header name",
            ),
            (
                "[[issuer]]\nissuer = \"https://idp\"\naudiences = [\"api\"]\njwks_file = \"j.json\"\ncolour = \"red\"",
                "unknown field",
            ),
            (
                "[[issuer]]\nissuer = \"https://idp\"\naudiences = [\"api\"]\nintrospection_url = \"https://idp/introspect\"",
                "needs introspection_client_id and introspection_secret_file",
            ),
            (
                "[[issuer]]\nissuer = \"https://idp\"\naudiences = [\"api\"]\njwks_file = \"j.json\"\nforward_claims = { sub = \"Authorization\" }",
                "must be an X- header",
            ),
            (
                "[[route]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"main\"\nrequire_bound_token = true",
                "need an [[issuer]]",
            ),
        ];
        for (extra, expected) in cases {
            let text = format!("{BASE}\n{extra}\n");
            let err = parse(Path::new("/etc/privgate.toml"), &text).unwrap_err();
            assert!(err.to_string().contains(expected), "{extra}\n=> {err}");
        }
    }

    #[test]
    fn defaults_are_fapi_algorithms_and_thirty_seconds_leeway() {
        let text = format!(
            "{BASE}\n[[issuer]]\nissuer = \"https://idp\"\naudiences = [\"api\"]\njwks_file = \"j.json\"\n"
        );
        let config = parse(Path::new("/etc/privgate.toml"), &text).unwrap();
        let issuer = &config.issuers[0];
        assert_eq!(issuer.algorithms, ["PS256", "ES256", "EdDSA"]);
        assert_eq!(issuer.leeway.as_secs(), 30);
        assert_eq!(issuer.jwks_file.as_deref(), Some(Path::new("/etc/j.json")));
    }
}

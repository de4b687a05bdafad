//! `[console]`: the web console's sign-in (OpenID Connect authorization-code flow with
//! PKCE against one of the configured `[[issuer]]`s) and its session lifetimes. The
//! console itself is a route with `serve = "console"`; this section says how people
//! sign in to it.

use super::{Config, GatewayService, Problems};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How people sign in to the console and how long a session lasts.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// The `iss` of the `[[issuer]]` people sign in with: its access tokens are checked
    /// exactly as API callers' are, and its `ca` verifies the token endpoint.
    pub issuer: String,
    /// The console's client id at the issuer.
    pub client_id: String,
    /// Where the browser is sent to sign in (the issuer's authorization endpoint, HTTPS).
    pub authorization_endpoint: String,
    /// Where the gateway exchanges the code (the issuer's token endpoint, HTTPS).
    pub token_endpoint: String,
    /// The console's own address as the issuer knows it: `https://<host>/<prefix>/callback`.
    /// Fixed here, never taken from a request, so no request can redirect a code elsewhere.
    pub redirect_uri: String,
    /// A session unused this long ends.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, however busy.
    #[serde(default = "default_absolute_timeout", with = "humantime_serde")]
    pub absolute_timeout: Duration,
    /// What the console asks the issuer for (`acr_values`) when policy answers an action
    /// with `step_up_required` (RFC 9470): the person signs in again at that level. Empty:
    /// no `acr_values` is sent, only `max_age`.
    #[serde(default)]
    pub step_up_acr_values: Vec<String>,
    /// The `max_age` sent with a step-up sign-in: the issuer must authenticate the person
    /// afresh if their last authentication is older.
    #[serde(default = "default_step_up_max_age", with = "humantime_serde")]
    pub step_up_max_age: Duration,
}

/// A console left alone this long is signed out: the 15 minutes OWASP's session guidance
/// gives for applications handling sensitive data.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// One working day: a stolen session cookie is never good for longer than this (and
/// never longer than the access token it holds).
const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(8 * 3600);

/// Zero: a step-up always asks the issuer to authenticate the person again, so the token it
/// issues is as fresh as any policy's age bound can ask.
const DEFAULT_STEP_UP_MAX_AGE: Duration = Duration::ZERO;

fn default_step_up_max_age() -> Duration {
    DEFAULT_STEP_UP_MAX_AGE
}

fn default_idle_timeout() -> Duration {
    DEFAULT_IDLE_TIMEOUT
}

fn default_absolute_timeout() -> Duration {
    DEFAULT_ABSOLUTE_TIMEOUT
}

/// A console route needs `[console]` naming a configured issuer, HTTPS endpoints and a
/// redirect URI under the route's own prefix; `[console]` without a console route is
/// refused too (it would do nothing).
pub(super) fn validate(config: &Config, problems: &mut Problems) {
    let routes: Vec<_> = config
        .routes
        .iter()
        .filter(|r| r.serve == Some(GatewayService::Console))
        .collect();
    let Some(console) = &config.console else {
        for r in routes {
            problems.add(format!(
                "route `{}`: serve = \"console\" needs [console]",
                r.name
            ));
        }
        return;
    };
    let [route] = routes.as_slice() else {
        problems.add("[console] needs exactly one route with serve = \"console\"");
        return;
    };
    if !config.issuers.iter().any(|i| i.issuer == console.issuer) {
        problems.add(format!(
            "console.issuer `{}` is not a configured [[issuer]]",
            console.issuer
        ));
    }
    for (name, value) in [
        ("authorization_endpoint", &console.authorization_endpoint),
        ("token_endpoint", &console.token_endpoint),
        ("redirect_uri", &console.redirect_uri),
    ] {
        match url::Url::parse(value) {
            Ok(url) if url.scheme() == "https" && url.host().is_some() => {}
            _ => problems.add(format!("console.{name} must be an https:// URL")),
        }
    }
    let callback = format!("{}/callback", route.path_prefix.trim_end_matches('/'));
    if url::Url::parse(&console.redirect_uri).is_ok_and(|u| u.path() != callback) {
        problems.add(format!(
            "console.redirect_uri must end in the console route's `{callback}`"
        ));
    }
    if console.client_id.is_empty() {
        problems.add("console.client_id must not be empty");
    }
    if console.idle_timeout.is_zero() || console.absolute_timeout < console.idle_timeout {
        problems.add("console.idle_timeout must be greater than 0 and at most absolute_timeout");
    }
}

//! `[totp]` (gateway-native one-time codes) and `[rate_limit]` / `[route.rate_limit]`.

use super::load::Problems;
use super::Config;
use serde::Deserialize;
use std::time::Duration;

/// Where the gateway serves TOTP enrollment itself (`POST {path_prefix}/enroll`, `/confirm`).
/// A reserved prefix rather than an upstream route: these requests never leave the gateway.
pub const TOTP_PATH_PREFIX: &str = "/mfa/v1/totp";

/// Failed codes before a lockout. Five guesses at a 6-digit code succeed with probability
/// about 1e-5 (two steps accepted) per lockout period: the figure NIST SP 800-63B's
/// rate-limiting requirement is met by with a 15-minute cool-down.
pub const TOTP_MAX_FAILURES: u32 = 5;

/// Lockout after `max_failures`: at most ~480 guesses a day, against 10^6 codes.
pub const TOTP_LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// Gateway-native TOTP (RFC 6238).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TotpConfig {
    /// Reserved path prefix the gateway serves enrollment under.
    #[serde(default = "default_totp_path")]
    pub path_prefix: String,
    /// The `issuer` shown by authenticator apps.
    #[serde(default = "default_totp_issuer")]
    pub issuer: String,
    /// HMAC for new enrollments (a request may pick another): `SHA1` (what most apps
    /// support), `SHA256` or `SHA512`.
    #[serde(default)]
    pub algorithm: TotpAlgorithm,
    /// Digits for new enrollments: 6 or 8.
    #[serde(default = "default_totp_digits")]
    pub digits: u32,
    /// Failed codes before a lockout.
    #[serde(default = "default_totp_max_failures")]
    pub max_failures: u32,
    /// How long a lockout lasts.
    #[serde(default = "default_totp_lockout", with = "humantime_serde")]
    pub lockout: Duration,
}

/// The HMAC of a TOTP enrollment.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum TotpAlgorithm {
    /// HMAC-SHA1 (RFC 6238's default; every authenticator app).
    #[default]
    #[serde(rename = "SHA1")]
    Sha1,
    /// HMAC-SHA256.
    #[serde(rename = "SHA256")]
    Sha256,
    /// HMAC-SHA512.
    #[serde(rename = "SHA512")]
    Sha512,
}

impl TotpAlgorithm {
    /// The name in `otpauth://` URIs and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// The algorithm a stored or requested name means.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha512]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }
}

fn default_totp_path() -> String {
    TOTP_PATH_PREFIX.to_owned()
}
fn default_totp_issuer() -> String {
    "privgate".to_owned()
}
fn default_totp_digits() -> u32 {
    6
}
fn default_totp_max_failures() -> u32 {
    TOTP_MAX_FAILURES
}
fn default_totp_lockout() -> Duration {
    TOTP_LOCKOUT
}

/// Token-bucket limits; on a route each absent key falls back to the global `[rate_limit]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Per identified principal, e.g. `"100/s"` (units `s`, `m`, `h`).
    pub per_principal: Option<Rate>,
    /// Per client IP address, checked before identification, e.g. `"50/s"`.
    pub per_address: Option<Rate>,
    /// Requests allowed at once before the rate applies (default: the rate's count).
    pub burst: Option<u32>,
}

impl RateLimitConfig {
    /// This route's limits, each absent key taken from `global`.
    pub fn or(&self, global: &RateLimitConfig) -> RateLimitConfig {
        RateLimitConfig {
            per_principal: self.per_principal.or(global.per_principal),
            per_address: self.per_address.or(global.per_address),
            burst: self.burst.or(global.burst),
        }
    }
}

/// `count` requests per `period`, written `"100/s"`, `"600/m"`, `"1000/h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Rate {
    /// Requests per period (at least 1).
    pub count: u32,
    /// The period.
    pub period: Duration,
}

impl TryFrom<String> for Rate {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("rate `{text}` must look like 100/s, 600/m or 1000/h");
        let (count, unit) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(bad());
        }
        Ok(Rate { count, period })
    }
}

pub(super) fn validate(config: &Config, problems: &mut Problems) {
    if let Some(totp) = &config.totp {
        if totp.digits != 6 && totp.digits != 8 {
            problems.add("totp.digits must be 6 or 8");
        }
        if totp.max_failures == 0 || totp.lockout.is_zero() {
            problems.add("totp.max_failures and totp.lockout must be greater than 0");
        }
        let prefix = &totp.path_prefix;
        if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.len() < 2 {
            problems.add("totp.path_prefix must start with / and not end with one");
        }
        for route in &config.routes {
            let under = route.path_prefix == *prefix
                || route.path_prefix.starts_with(&format!("{prefix}/"));
            if under {
                problems.add(format!(
                    "route `{}`: path_prefix is under totp.path_prefix `{prefix}`, which the gateway serves itself",
                    route.name
                ));
            }
        }
        if config.keys.is_none() {
            problems.add("[totp] needs [keys]: TOTP secrets are stored sealed by the keyring");
        }
        if totp.issuer.is_empty() || totp.issuer.contains(':') {
            problems.add("totp.issuer must be non-empty and have no `:`");
        }
    }
    let limits = std::iter::once(&config.rate_limit)
        .chain(config.routes.iter().filter_map(|r| r.rate_limit.as_ref()));
    if limits.into_iter().any(|l| l.burst == Some(0)) {
        problems.add("rate_limit.burst must be at least 1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_or_say_how_to_write_them() {
        let cases = [
            ("100/s", Some((100, 1))),
            ("600/m", Some((600, 60))),
            (" 5 / h ", Some((5, 3600))),
            ("0/s", None),
            ("10", None),
            ("10/d", None),
            ("-1/s", None),
            ("x/s", None),
        ];
        for (text, expected) in cases {
            let got = Rate::try_from(text.to_owned())
                .ok()
                .map(|r| (r.count, r.period.as_secs()));
            assert_eq!(got, expected, "{text}");
        }
    }
}

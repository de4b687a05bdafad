//! `[totp]` (gateway-native one-time codes) and `[rate_limit]` / `[route.rate_limit]`.

use super::identity::{validate_step_up, StepUpConfig};
use super::problems::Problems;
use super::{Config, GatewayService, RouteConfig};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::time::Duration;

/// Where the gateway serves TOTP enrollment itself (`POST {path_prefix}/enroll`, `/confirm`)
/// unless `[totp] path_prefix` or a `[[route]]` with `serve = "totp"` says otherwise. A
/// reserved prefix: these requests never leave the gateway, and no other route may be under it.
pub(super) const TOTP_PATH_PREFIX: &str = "/mfa/v1/totp";

/// The name of the route `[totp]` makes when no `[[route]]` serves TOTP (logs, metrics,
/// audit records, `[route.rate_limit]` needs a `[[route]]` of its own).
pub(super) const TOTP_ROUTE: &str = "totp";

/// Failed codes before a lockout. Five guesses at a 6-digit code succeed with probability
/// about 1e-5 (two steps accepted) per lockout period: the figure NIST SP 800-63B's
/// rate-limiting requirement is met by with a 15-minute cool-down.
pub(super) const TOTP_MAX_FAILURES: u32 = 5;

/// Lockout after `max_failures`: at most ~480 guesses a day, against 10^6 codes.
pub(super) const TOTP_LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// RFC 8176 `amr` values that show the identity provider checked a factor beyond a
/// password (possession or inherence), or several (`mfa`): what self-service enrollment
/// asks of the sign-in by default. Knowledge factors (`pwd`, `pin`, `kba`) alone never count.
pub(super) const TOTP_ENROLLMENT_AMR: &[&str] = &[
    "mfa", "hwk", "swk", "sc", "otp", "sms", "tel", "fpt", "face", "iris", "retina", "vbm",
];

/// How recent that sign-in must be: long enough to scan a QR code after signing in, short
/// enough that a token stolen later in the session is too old to enroll with.
pub(super) const TOTP_ENROLLMENT_MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// How long a pending (unconfirmed) enrollment belongs to the session that started it;
/// after this another session may replace it and it can no longer be confirmed.
pub(super) const TOTP_PENDING_TTL: Duration = Duration::from_secs(10 * 60);

/// Longest `pending_ttl` accepted: a pending enrollment blocks other sessions until then.
pub(super) const TOTP_PENDING_TTL_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// Gateway-native TOTP (RFC 6238).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TotpConfig {
    /// Reserved path prefix the gateway serves enrollment under (default
    /// `TOTP_PATH_PREFIX`); a `[[route]]` with `serve = "totp"` sets it instead.
    #[serde(default)]
    pub path_prefix: Option<String>,
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
    /// Who may enroll a second factor, and on what evidence (`[totp.enrollment]`).
    #[serde(default)]
    pub enrollment: TotpEnrollmentConfig,
}

/// `[totp.enrollment]`: enrolling a second factor is itself a step-up. A token that proves
/// only a password must not be able to add the factor that later satisfies step-up, so
/// self-service enrollment needs the identity provider's word that the user passed a
/// stronger factor recently, or enrollment is left to operators.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TotpEnrollmentConfig {
    /// `step_up` (default): users enroll themselves with a token meeting `step_up`;
    /// `operator`: the endpoints refuse and only `privgate totp provision` enrolls.
    #[serde(default)]
    pub mode: TotpEnrollmentMode,
    /// What the enrolling token must show (`acr_values`, `amr_any`, `max_age`); by default
    /// one of `defaults::TOTP_ENROLLMENT_AMR` within `defaults::TOTP_ENROLLMENT_MAX_AGE`.
    #[serde(default = "default_enrollment_step_up")]
    pub step_up: StepUpConfig,
    /// How long a pending enrollment belongs to the session that started it.
    #[serde(default = "default_pending_ttl", with = "humantime_serde")]
    pub pending_ttl: Duration,
}

impl Default for TotpEnrollmentConfig {
    fn default() -> Self {
        Self {
            mode: TotpEnrollmentMode::default(),
            step_up: default_enrollment_step_up(),
            pending_ttl: TOTP_PENDING_TTL,
        }
    }
}

/// Who enrolls users' TOTP authenticators.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TotpEnrollmentMode {
    /// Users, at `POST {path_prefix}/enroll`, with a token meeting `[totp.enrollment.step_up]`.
    #[default]
    StepUp,
    /// Operators only (`privgate totp provision`), delivering the secret out of band.
    Operator,
}

fn default_enrollment_step_up() -> StepUpConfig {
    StepUpConfig {
        acr_values: Vec::new(),
        amr_any: TOTP_ENROLLMENT_AMR
            .iter()
            .map(|m| (*m).to_owned())
            .collect(),
        max_age: Some(TOTP_ENROLLMENT_MAX_AGE),
    }
}
fn default_pending_ttl() -> Duration {
    TOTP_PENDING_TTL
}

/// The HMAC of a TOTP enrollment.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Rate {
    /// Requests per period (at least 1).
    pub count: u32,
    /// The period.
    pub period: Duration,
}

/// As written: `100/s` (`privgate check --print-effective`).
impl From<Rate> for String {
    fn from(rate: Rate) -> Self {
        let unit = match rate.period.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        format!("{}/{unit}", rate.count)
    }
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

impl Config {
    /// The routes the router compiles: the configured ones and, when `[totp]` is set and
    /// no `[[route]]` has `serve = "totp"`, the TOTP route its `path_prefix` names. The
    /// one place that route is made, so the TOTP endpoints are routed, rate limited,
    /// identified and recorded like every other served API.
    pub fn routes_served(&self) -> Cow<'_, [RouteConfig]> {
        let explicit = self
            .routes
            .iter()
            .any(|r| r.serve == Some(GatewayService::Totp));
        let Some(totp) = self.totp.as_ref().filter(|_| !explicit) else {
            return Cow::Borrowed(&self.routes);
        };
        let mut routes = self.routes.clone();
        let prefix = totp.path_prefix.as_deref().unwrap_or(TOTP_PATH_PREFIX);
        routes.push(RouteConfig {
            serve: Some(GatewayService::Totp),
            // Served routes always identify callers; the rest is what the endpoints need.
            authenticate: true,
            ..RouteConfig::new(TOTP_ROUTE, prefix, "")
        });
        Cow::Owned(routes)
    }
}

/// A `[[route]]` with `serve = "totp"`: `[totp]` configures it; its own prefix replaces
/// `[totp] path_prefix`, and enrolment's step-up is `[totp.enrollment.step_up]`'s.
pub(super) fn validate_route(config: &Config, route: &RouteConfig, problems: &mut Problems) {
    let name = &route.name;
    match &config.totp {
        None => problems.add(format!("route `{name}`: serve = \"totp\" needs [totp]")),
        Some(totp) if totp.path_prefix.is_some() => problems.add(format!(
            "route `{name}`: serve = \"totp\" serves TOTP at the route's path_prefix; remove totp.path_prefix"
        )),
        Some(_) => {}
    }
    if route.step_up.is_some() || route.require_bound_token {
        problems.add(format!(
            "route `{name}`: serve = \"totp\" takes no step_up or require_bound_token (enrolment asks [totp.enrollment.step_up]; confirming, the enrolling session)"
        ));
    }
    let count = config
        .routes
        .iter()
        .filter(|r| r.serve == Some(GatewayService::Totp))
        .count();
    if count > 1 {
        problems.add(format!(
            "route `{name}`: only one route may have serve = \"totp\""
        ));
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
        let served = config.routes_served();
        let totp_route = served
            .iter()
            .find(|r| r.serve == Some(GatewayService::Totp));
        if let Some(totp_route) = totp_route {
            let prefix = &totp_route.path_prefix;
            if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.len() < 2 {
                problems.add("totp.path_prefix must start with / and not end with one");
            }
            for route in served.iter().filter(|r| r.name != totp_route.name) {
                let under = route.path_prefix == *prefix
                    || route.path_prefix.starts_with(&format!("{prefix}/"));
                if under {
                    problems.add(format!(
                        "route `{}`: path_prefix is under totp.path_prefix `{prefix}`, which the gateway serves itself",
                        route.name
                    ));
                }
            }
            let implied = !config
                .routes
                .iter()
                .any(|r| r.serve == Some(GatewayService::Totp));
            if implied && config.routes.iter().any(|r| r.name == TOTP_ROUTE) {
                problems.add(format!(
                    "route `{TOTP_ROUTE}`: the name is the TOTP endpoints' route that [totp] makes; rename it (or give it serve = \"totp\")"
                ));
            }
        }
        if config.keys.is_none() {
            problems.add("[totp] needs [keys]: TOTP secrets are stored sealed by the keyring");
        }
        if totp.issuer.is_empty() || totp.issuer.contains(':') {
            problems.add("totp.issuer must be non-empty and have no `:`");
        }
        validate_enrollment(&totp.enrollment, problems);
        // Users are named by `sub` alone and TOTP secrets are kept per user: with several
        // issuers, one issuer's user could enrol a second factor for another issuer's user of
        // the same name, and a stolen password-only token of the latter would then pass
        // step-up with the former's codes.
        if totp.enrollment.mode == TotpEnrollmentMode::StepUp && config.issuers.len() > 1 {
            problems.add("totp.enrollment.mode = \"step_up\" with several [[issuer]]s: users of different issuers share names (`sub`), so one issuer's user could enrol a second factor for another's; use mode = \"operator\"");
        }
    }
    let limits = std::iter::once(&config.rate_limit)
        .chain(config.routes.iter().filter_map(|r| r.rate_limit.as_ref()));
    if limits.into_iter().any(|l| l.burst == Some(0)) {
        problems.add("rate_limit.burst must be at least 1");
    }
}

/// Self-service enrollment must ask for a stronger, fresh factor: without `max_age` an old
/// token would do, and without `acr_values` or `amr_any` a password-only one would.
fn validate_enrollment(e: &TotpEnrollmentConfig, problems: &mut Problems) {
    if e.pending_ttl.is_zero() || e.pending_ttl > TOTP_PENDING_TTL_MAX {
        problems.add(format!(
            "totp.enrollment.pending_ttl must be greater than 0 and at most {}h",
            TOTP_PENDING_TTL_MAX.as_secs() / 3600
        ));
    }
    if e.mode != TotpEnrollmentMode::StepUp {
        return;
    }
    validate_step_up("totp.enrollment.step_up", &e.step_up, problems);
    if e.step_up.max_age.is_none() {
        problems.add("totp.enrollment.step_up.max_age is required: enrolling a second factor needs a recent sign-in");
    }
    if e.step_up.acr_values.is_empty() && e.step_up.amr_any.is_empty() {
        problems.add("totp.enrollment.step_up needs acr_values or amr_any: enrolling a second factor needs proof of a stronger one (or mode = \"operator\")");
    }
    let weak = ["pwd", "pin", "kba", "user"];
    if let Some(m) = e
        .step_up
        .amr_any
        .iter()
        .find(|m| weak.contains(&m.as_str()))
    {
        problems.add(format!(
            "totp.enrollment.step_up.amr_any must not list `{m}`: a knowledge factor alone does not prove a second factor"
        ));
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

    #[test]
    fn enrollment_must_ask_for_a_stronger_fresh_factor() {
        let base = "[[listener]]\nname = \"public\"\naddress = \"127.0.0.1:8443\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n[upstream.main]\nurl = \"http://127.0.0.1:9000\"\n[keys]\nkek = { source = \"key_file\", path = \"kek.hex\" }\n[totp]\n";
        let parse = |extra: &str| {
            super::super::parse(
                std::path::Path::new("/etc/privgate.toml"),
                &format!("{base}{extra}\n"),
            )
        };
        let defaults = parse("").unwrap().totp.unwrap().enrollment;
        assert_eq!(defaults.mode, TotpEnrollmentMode::StepUp);
        assert_eq!(defaults.step_up.max_age, Some(TOTP_ENROLLMENT_MAX_AGE));
        assert!(defaults.step_up.amr_any.iter().all(|m| m != "pwd"));
        let cases = [
            (
                "[totp.enrollment.step_up]\namr_any = [\"hwk\"]",
                "max_age is required",
            ),
            (
                "[totp.enrollment.step_up]\nmax_age = \"5m\"",
                "needs acr_values or amr_any",
            ),
            (
                "[totp.enrollment.step_up]\nmax_age = \"0s\"\namr_any = [\"hwk\"]",
                "max_age must be greater than 0",
            ),
            (
                "[totp.enrollment.step_up]\nmax_age = \"5m\"\namr_any = [\"hwk\", \"pwd\"]",
                "must not list `pwd`",
            ),
            (
                "[totp.enrollment.step_up]\nmax_age = \"5m\"\namr_any = [\"kba\"]",
                "must not list `kba`",
            ),
            (
                "[totp.enrollment.step_up]\nmax_age = \"5m\"\nacr_values = [\"a b\"]",
                "free of quotes",
            ),
            (
                "[totp.enrollment]\npending_ttl = \"0s\"",
                "pending_ttl must be greater than 0",
            ),
            (
                "[totp.enrollment]\npending_ttl = \"2days\"",
                "pending_ttl must be greater than 0",
            ),
            ("[totp.enrollment]\nmode = \"anyone\"", "unknown variant"),
        ];
        for (extra, expected) in cases {
            let err = parse(extra).unwrap_err();
            assert!(err.to_string().contains(expected), "{extra}\n=> {err}");
        }
        // Operator mode needs no step-up; an acr requirement alone is enough.
        let operator =
            parse("[totp.enrollment]\nmode = \"operator\"\n[totp.enrollment.step_up]").unwrap();
        assert_eq!(
            operator.totp.unwrap().enrollment.mode,
            TotpEnrollmentMode::Operator
        );
        parse("[totp.enrollment.step_up]\nmax_age = \"2m\"\nacr_values = [\"urn:loa:high\"]")
            .unwrap();

        // Several issuers: self-service enrolment is refused, operator enrolment is not.
        let issuer = |name: &str| {
            format!("[[issuer]]\nissuer = \"https://{name}\"\naudiences = [\"api\"]\njwks_file = \"j.json\"\n")
        };
        let two = format!("{}{}", issuer("idp-a"), issuer("idp-b"));
        let err = parse(&format!("[totp.enrollment]\n{two}")).unwrap_err();
        assert!(err.to_string().contains("several [[issuer]]s"), "{err}");
        parse(&format!("[totp.enrollment]\nmode = \"operator\"\n{two}")).unwrap();
        parse(&format!("[totp.enrollment]\n{}", issuer("idp-a"))).unwrap();
    }
}

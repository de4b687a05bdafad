//! `[risk]` in privgate.toml: the windows indicators are kept over, the usual hours, how
//! replicas share their counts, and the thresholds with the response each one asks for.

use crate::config::{Rate, StepUpConfig};

/// The memory bound's default when none is configured.
pub(crate) const DEFAULT_MAX_MEMORY_MIB: u64 = 128;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Windows kept when `[risk]` names none: a burst, an hour, a day.
const DEFAULT_WINDOWS: &[&str] = &["5m", "1h", "24h"];

/// How often a replica writes its changed counts to the store: the most a caller gains by
/// spreading requests over replicas is what it does within this interval.
const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// How long a replica uses what it read of the other replicas' counts before reading again.
const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// Events held for the SIEM webhook while it is slow or down; beyond it new events are
/// dropped (counted and logged). One event is a crossing per threshold and key, so 1,024
/// holds a burst across a thousand principals during an outage of minutes, in ~300 KB.
const DEFAULT_WEBHOOK_QUEUE: usize = 1024;

/// Largest webhook queue accepted: a bound in the tens of MB at most.
const MAX_WEBHOOK_QUEUE: usize = 100_000;

/// Time one webhook delivery may take (connect, send, answer): a SIEM collector answers in
/// milliseconds; 5 s rides out a pause without holding the queue long.
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Tries per event: with the backoff (1 s doubling) six tries span about half a minute,
/// enough for a collector's restart; a longer outage drops events rather than queue them.
const DEFAULT_WEBHOOK_ATTEMPTS: u32 = 6;

/// Most tries accepted (the backoff caps at a minute per wait).
const MAX_WEBHOOK_ATTEMPTS: u32 = 20;

/// Longest window accepted: a day's slices are 4 hours, and counts older than the longest
/// window are deleted from the store.
const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// `[risk]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RiskConfig {
    /// Sliding windows, e.g. `["5m", "1h", "24h"]`; each appears in the policy context as
    /// `last_<window>` and must be declared in the schema.
    #[serde(default = "default_windows")]
    pub windows: Vec<String>,
    /// Hours of the day (UTC) the organisation works; requests outside count as off-hours.
    pub usual_hours: Option<UsualHours>,
    /// Memory the indicators may hold per replica, MiB: the least recently seen principals
    /// and organisations beyond it are dropped (their flushed counts stay in the store).
    #[serde(default = "default_max_memory_mib")]
    pub max_memory_mib: u64,
    /// How often counts are written to the store for the other replicas.
    #[serde(default = "default_flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How long other replicas' counts are used before they are read again.
    #[serde(default = "default_refresh_interval", with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Usual hours per role (`[[risk.role_hours]]`): a caller holding some of these roles
    /// is off-hours outside all of their windows; others use `usual_hours`.
    #[serde(default)]
    pub role_hours: Vec<RoleHours>,
    /// Thresholds and their responses (`[[risk.threshold]]`).
    #[serde(rename = "threshold", default)]
    pub thresholds: Vec<ThresholdConfig>,
    /// Where threshold events are posted for a SIEM (`[risk.webhook]`).
    pub webhook: Option<WebhookConfig>,
}

/// `[[risk.role_hours]]`: the working day of one role (night operators, a desk in another
/// time zone).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoleHours {
    /// The role, as the caller's token or client registration names it.
    pub role: String,
    /// First usual hour (0-23, UTC).
    pub from: u8,
    /// First hour no longer usual (1-24); below `from` the day wraps past midnight.
    pub to: u8,
}

impl RoleHours {
    /// Its window.
    pub fn hours(&self) -> UsualHours {
        UsualHours {
            from: self.from,
            to: self.to,
        }
    }
}

/// `[risk.webhook]`: each threshold event posted, signed, to an HTTPS endpoint (a SIEM's
/// collector), from a bounded queue that never holds a request up.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint, `https://` only.
    pub url: String,
    /// The HMAC-SHA256 key the body is signed with (at least 32 bytes; a trailing newline
    /// is not part of it).
    pub secret_file: PathBuf,
    /// PEM CA bundle the endpoint's certificate must chain to; system roots if absent.
    pub ca: Option<PathBuf>,
    /// Events held while the endpoint is slow or down; beyond it they are dropped.
    #[serde(default = "default_webhook_queue")]
    pub queue: usize,
    /// Time one delivery may take.
    #[serde(default = "default_webhook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Tries per event (the first and the retries).
    #[serde(default = "default_webhook_attempts")]
    pub max_attempts: u32,
}

impl WebhookConfig {
    /// Every problem with the section, in words.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let https = self
            .url
            .parse::<http::Uri>()
            .ok()
            .is_some_and(|u| u.scheme_str() == Some("https") && u.host().is_some());
        if !https {
            problems.push("[risk.webhook] url must be an https:// URL".to_owned());
        }
        if !(1..=MAX_WEBHOOK_QUEUE).contains(&self.queue) {
            problems.push(format!(
                "[risk.webhook] queue must be 1 to {MAX_WEBHOOK_QUEUE}"
            ));
        }
        if self.timeout.is_zero() {
            problems.push("[risk.webhook] timeout must be greater than 0".to_owned());
        }
        if !(1..=MAX_WEBHOOK_ATTEMPTS).contains(&self.max_attempts) {
            problems.push(format!(
                "[risk.webhook] max_attempts must be 1 to {MAX_WEBHOOK_ATTEMPTS}"
            ));
        }
        problems
    }
}

fn default_webhook_queue() -> usize {
    DEFAULT_WEBHOOK_QUEUE
}
fn default_webhook_timeout() -> Duration {
    DEFAULT_WEBHOOK_TIMEOUT
}
fn default_webhook_attempts() -> u32 {
    DEFAULT_WEBHOOK_ATTEMPTS
}

fn default_windows() -> Vec<String> {
    DEFAULT_WINDOWS.iter().map(|w| (*w).to_owned()).collect()
}
fn default_max_memory_mib() -> u64 {
    DEFAULT_MAX_MEMORY_MIB
}
fn default_flush_interval() -> Duration {
    DEFAULT_FLUSH_INTERVAL
}
fn default_refresh_interval() -> Duration {
    DEFAULT_REFRESH_INTERVAL
}

/// The working day, in whole UTC hours: `from = 7, to = 20` is 07:00 to 19:59.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UsualHours {
    /// First usual hour (0-23).
    pub from: u8,
    /// First hour no longer usual (1-24); below `from` the day wraps past midnight.
    pub to: u8,
}

impl UsualHours {
    /// Whether `hour` (0-23, UTC) is outside the usual hours.
    pub fn is_off(&self, hour: u8) -> bool {
        let usual = if self.from <= self.to {
            (self.from..self.to).contains(&hour)
        } else {
            hour >= self.from || hour < self.to
        };
        !usual
    }
}

/// What an indicator counts.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Indicator {
    /// Requests made.
    Requests,
    /// Distinct data subjects accessed.
    DistinctSubjects,
    /// Values revealed in clear (one field class with `class`).
    ClearReveals,
    /// Requests refused (one reason with `reason`).
    Refusals,
    /// Requests outside the usual hours.
    OffHours,
    /// Differential-privacy epsilon spent.
    DpEpsilon,
    /// Encrypted-sum totals released.
    FheReleases,
}

impl Indicator {
    /// Every indicator, in the order `risk show` lists them.
    pub const ALL: [Indicator; 7] = [
        Self::Requests,
        Self::DistinctSubjects,
        Self::ClearReveals,
        Self::Refusals,
        Self::OffHours,
        Self::DpEpsilon,
        Self::FheReleases,
    ];

    /// Its name in config, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::DistinctSubjects => "distinct_subjects",
            Self::ClearReveals => "clear_reveals",
            Self::Refusals => "refusals",
            Self::OffHours => "off_hours",
            Self::DpEpsilon => "dp_epsilon",
            Self::FheReleases => "fhe_releases",
        }
    }
}

/// Whose indicators a threshold watches.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The calling principal's own.
    #[default]
    Principal,
    /// Its organisation's, all its principals together.
    Organisation,
}

impl Scope {
    /// Its name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Principal => "principal",
            Self::Organisation => "organisation",
        }
    }
}

/// What the gateway does while a threshold is exceeded (every crossing is logged, audited
/// and counted whatever the response).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Nothing beyond the event.
    #[default]
    Alert,
    /// Requests need the authentication `step_up` asks for (RFC 9470 challenge).
    StepUp,
    /// Requests are admitted at the `throttle` rate, the rest get 429.
    Throttle,
    /// The principal is refused until an operator clears it (`risk:clear`, approval flow).
    Suspend,
}

impl Response {
    /// Its name in logs, audit records and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Alert => "alert",
            Self::StepUp => "step_up",
            Self::Throttle => "throttle",
            Self::Suspend => "suspend",
        }
    }
}

/// `[[risk.threshold]]`: an indicator over one window, the value it must stay at or below,
/// and what happens above it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// Name in logs, audit records and metrics (e.g. `bulk-reading`).
    pub name: String,
    /// What is counted.
    pub indicator: Indicator,
    /// Only this field class (`clear_reveals`).
    pub class: Option<String>,
    /// Only this refusal reason (`refusals`).
    pub reason: Option<String>,
    /// One of `[risk] windows`.
    pub window: String,
    /// Exceeded when the indicator is above this (epsilon for `dp_epsilon`).
    pub above: f64,
    /// Whose indicators.
    #[serde(default)]
    pub scope: Scope,
    /// What happens while exceeded.
    #[serde(default)]
    pub response: Response,
    /// The authentication asked for (`response = "step_up"`).
    pub step_up: Option<StepUpConfig>,
    /// The rate admitted (`response = "throttle"`), e.g. `"1/s"`.
    pub throttle: Option<Rate>,
}

/// A window's length from its name (`"5m"`, `"1h"`, `"24h"`).
pub fn window_length(name: &str) -> Result<Duration, String> {
    let length =
        humantime::parse_duration(name).map_err(|e| format!("risk window `{name}`: {e}"))?;
    if length < Duration::from_secs(60) || length > MAX_WINDOW {
        return Err(format!(
            "risk window `{name}` must be between 1 minute and 7 days"
        ));
    }
    Ok(length)
}

impl RiskConfig {
    /// Every problem with the section, in words (empty: valid).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.windows.is_empty() {
            problems.push("[risk] windows must name at least one window".to_owned());
        }
        for window in &self.windows {
            if let Err(e) = window_length(window) {
                problems.push(e);
            } else if !window.chars().all(|c| c.is_ascii_alphanumeric()) {
                problems.push(format!(
                    "risk window `{window}` must be written like 5m, 1h or 24h"
                ));
            }
        }
        if self.max_memory_mib == 0 {
            problems.push("[risk] max_memory_mib must be at least 1".to_owned());
        }
        let windows = self
            .usual_hours
            .iter()
            .map(|h| ("[risk] usual_hours".to_owned(), *h))
            .chain(
                self.role_hours
                    .iter()
                    .map(|r| (format!("[[risk.role_hours]] `{}`", r.role), r.hours())),
            );
        for (named, hours) in windows {
            if hours.from > 23 || hours.to > 24 || hours.from == hours.to {
                problems.push(format!("{named}: from 0-23, to 1-24, and not equal"));
            }
        }
        let mut roles: Vec<&str> = self.role_hours.iter().map(|r| r.role.as_str()).collect();
        roles.sort_unstable();
        if roles.windows(2).any(|w| w[0] == w[1]) {
            problems.push("[[risk.role_hours]] roles must be distinct".to_owned());
        }
        if let Some(webhook) = &self.webhook {
            problems.extend(webhook.problems());
        }
        for t in &self.thresholds {
            let named = format!("risk threshold `{}`", t.name);
            if !self.windows.contains(&t.window) {
                problems.push(format!(
                    "{named}: window `{}` is not in [risk] windows",
                    t.window
                ));
            }
            if !(t.above.is_finite() && t.above >= 0.0) {
                problems.push(format!("{named}: `above` must be a number at least 0"));
            }
            if t.class.is_some() && t.indicator != Indicator::ClearReveals {
                problems.push(format!("{named}: `class` applies to clear_reveals only"));
            }
            if t.reason.is_some() && t.indicator != Indicator::Refusals {
                problems.push(format!("{named}: `reason` applies to refusals only"));
            }
            if t.indicator == Indicator::OffHours
                && self.usual_hours.is_none()
                && self.role_hours.is_empty()
            {
                problems.push(format!(
                    "{named}: off_hours needs [risk] usual_hours or [[risk.role_hours]]"
                ));
            }
            let (step_up, throttle) = (
                t.response == Response::StepUp,
                t.response == Response::Throttle,
            );
            if step_up != t.step_up.is_some() {
                problems.push(format!(
                    "{named}: `step_up` goes with response step_up, and only there"
                ));
            }
            if throttle != t.throttle.is_some() {
                problems.push(format!(
                    "{named}: `throttle` goes with response throttle, and only there"
                ));
            }
        }
        let mut names: Vec<&str> = self.thresholds.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            problems.push("risk threshold names must be distinct".to_owned());
        }
        problems
    }
}

//! Live risk indicators on access (issue 20): what each principal, and each organisation,
//! did over the configured sliding windows (requests, distinct data subjects, clear reveals
//! per field class, refusals per reason, off-hours requests, DP epsilon, FHE releases), on
//! every replica together; the policy context they feed (`context.risk`); the thresholds
//! that raise events and answer with the response the operator chose.
//!
//! Contract:
//! - `Risk::assess` runs once per identified request, before any decision: it returns
//!   the indicators as they stand (this request not yet counted), the thresholds newly
//!   exceeded (events: names only, never values or subjects), and the verdict of the
//!   exceeded thresholds' responses (step-up, throttle, suspension), strictest first;
//! - `Risk::observe` runs once per identified request, after its outcome is known;
//! - neither ever holds a lock across an await; a store that cannot be read fails the
//!   request closed (the caller maps the error).

pub(crate) mod event;
mod tally;
mod tracker;
mod webhook;
mod window;

use crate::config::risk as config;
use config::RiskConfig;
pub use event::RiskEvent;
pub(crate) use tally::Observation;
pub(crate) use webhook::{Webhook, WebhookTarget};

use crate::config::Rate;
use crate::identity::{Identity, RouteRequirements, StepUpChallenge};
use crate::policy::{RiskFacts, RiskWindowFacts};
use crate::store::{Store, StoreError};
use config::{Indicator, Response, Scope, ThresholdConfig};
use governor::{DefaultKeyedRateLimiter, Quota};
use quick_cache::sync::Cache;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use tracker::{organisation_key, principal_key, Totals, Tracker};

/// The refusal reason of a suspended principal.
pub const SUSPENDED: &str = "risk_suspended";

/// Thresholds remembered as exceeded (so each crossing raises one event), per key.
const EXCEEDED_CAPACITY: usize = 100_000;

/// Throttle buckets kept before idle ones are dropped.
const THROTTLE_RETAIN_ABOVE: usize = 10_000;

/// A threshold, compiled.
struct Threshold {
    config: ThresholdConfig,
    /// Index of its window.
    window: usize,
    step_up: Option<RouteRequirements>,
    throttle: Option<DefaultKeyedRateLimiter<String>>,
}

/// What the exceeded thresholds ask of this request, strictest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing: serve it.
    Admit,
    /// Refused until an operator clears the principal (`risk:clear`).
    Suspended,
    /// Over the throttle rate: retry after this many seconds.
    Throttled { retry_after_s: u64 },
    /// The caller must authenticate as the challenge says.
    StepUp(StepUpChallenge),
}

/// What [`Risk::assess`] found.
#[derive(Debug, Clone)]
pub(crate) struct Assessment {
    /// The indicators for the policy context.
    pub(crate) facts: RiskFacts,
    /// Thresholds crossed since the key's last request.
    pub(crate) events: Vec<RiskEvent>,
    /// The responses' verdict.
    pub(crate) verdict: Verdict,
}

/// The indicators and thresholds of one gateway process.
pub(crate) struct Risk {
    /// Window names (`5m`), in configured order.
    windows: Vec<String>,
    /// Their names in the policy context (`last_5m`), made once: every request's facts
    /// are keyed by them.
    context_names: Vec<String>,
    usual_hours: Option<config::UsualHours>,
    role_hours: Vec<config::RoleHours>,
    tracker: Tracker,
    thresholds: Vec<Threshold>,
    /// (threshold index, key) currently exceeded.
    exceeded: Cache<(usize, String), ()>,
    /// Whether any threshold suspends.
    suspends: bool,
    store: Option<Store>,
}

fn throttle_limiter(rate: Rate) -> Option<DefaultKeyedRateLimiter<String>> {
    let quota = Quota::with_period(rate.period / rate.count)?
        .allow_burst(NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN));
    Some(DefaultKeyedRateLimiter::keyed(quota))
}

impl Risk {
    /// The runtime of a (validated, see [`RiskConfig::problems`]) configuration, sharing
    /// counts through `store`.
    pub(crate) fn new(config: &RiskConfig, store: Option<Store>) -> Result<Self, String> {
        let problems = config.problems();
        if let Some(first) = problems.first() {
            return Err(first.clone());
        }
        let lengths = config
            .windows
            .iter()
            .map(|w| config::window_length(w).map(|d| d.as_millis() as i64))
            .collect::<Result<Vec<_>, _>>()?;
        let thresholds = config
            .thresholds
            .iter()
            .map(|t| Threshold {
                window: config
                    .windows
                    .iter()
                    .position(|w| *w == t.window)
                    .unwrap_or(0),
                step_up: t.step_up.as_ref().map(RouteRequirements::with_step_up),
                throttle: t.throttle.and_then(throttle_limiter),
                config: t.clone(),
            })
            .collect::<Vec<_>>();
        let max_bytes = config.max_memory_mib.saturating_mul(1024 * 1024);
        Ok(Self {
            windows: config.windows.clone(),
            context_names: config.windows.iter().map(|w| format!("last_{w}")).collect(),
            usual_hours: config.usual_hours,
            role_hours: config.role_hours.clone(),
            tracker: Tracker::new(
                lengths,
                max_bytes,
                config.refresh_interval.as_millis() as i64,
                store.clone(),
            ),
            suspends: thresholds
                .iter()
                .any(|t| t.config.response == Response::Suspend),
            thresholds,
            exceeded: Cache::new(EXCEEDED_CAPACITY),
            store,
        })
    }

    /// The policy-context name of each window (`last_5m`).
    pub(crate) fn window_names(&self) -> impl Iterator<Item = String> + '_ {
        self.context_names.iter().cloned()
    }

    /// Whether `now_ms` falls outside the usual hours of a caller with `roles`: those of
    /// its roles that have `role_hours` (outside all of them), else the global
    /// `usual_hours` (never off-hours without either).
    pub(crate) fn off_hours(&self, roles: &[String], now_ms: i64) -> bool {
        let hour = (now_ms.div_euclid(3_600_000)).rem_euclid(24) as u8;
        let mut profiles = self
            .role_hours
            .iter()
            .filter(|r| roles.contains(&r.role))
            .peekable();
        if profiles.peek().is_some() {
            return profiles.all(|r| r.hours().is_off(hour));
        }
        self.usual_hours.is_some_and(|h| h.is_off(hour))
    }

    fn facts_of(&self, totals: &Totals) -> BTreeMap<String, RiskWindowFacts> {
        self.window_names()
            .zip(&totals.0)
            .map(|(name, tally)| (name, tally.facts()))
            .collect()
    }

    /// The caller's indicators, the thresholds it newly exceeds and their verdict
    /// (`principal`: the caller's [`Caller::principal`](crate::policy::Caller::principal), as
    /// the request record holds it).
    pub(crate) async fn assess(
        &self,
        identity: &Identity,
        principal: &str,
        now_ms: i64,
    ) -> Result<Assessment, StoreError> {
        let caller = &identity.caller;
        let own_key = principal_key(principal);
        let own = self.tracker.totals(&own_key, now_ms).await?;
        let org = match &caller.organisation {
            Some(org) => {
                let key = organisation_key(org);
                let totals = self.tracker.totals(&key, now_ms).await?;
                Some((key, totals))
            }
            None => None,
        };
        let mut events = Vec::new();
        let mut verdict = Verdict::Admit;
        for (index, threshold) in self.thresholds.iter().enumerate() {
            let t = &threshold.config;
            let (key, totals) = match (t.scope, &org) {
                (Scope::Principal, _) => (&own_key, &own),
                (Scope::Organisation, Some((key, totals))) => (key, totals),
                (Scope::Organisation, None) => continue,
            };
            let label = t.class.as_deref().or(t.reason.as_deref());
            let value = totals.0[threshold.window].value(t.indicator, label);
            let marker = (index, key.clone());
            if value <= t.above {
                self.exceeded.remove(&marker);
                continue;
            }
            if self.exceeded.get(&marker).is_none() {
                self.exceeded.insert(marker, ());
                events.push(RiskEvent {
                    threshold: t.name.clone(),
                    indicator: t.indicator.name().to_owned(),
                    window: t.window.clone(),
                    scope: t.scope.name().to_owned(),
                    response: t.response.name().to_owned(),
                });
            }
            let answer = self.respond(threshold, identity, principal, now_ms).await?;
            if strictness(&answer) > strictness(&verdict) {
                verdict = answer;
            }
        }
        if self.suspends {
            if let Some(store) = &self.store {
                if store.risk_suspension(principal).await?.is_some() {
                    verdict = Verdict::Suspended;
                }
            }
        }
        Ok(Assessment {
            facts: RiskFacts {
                principal: self.facts_of(&own),
                organisation: org.as_ref().map(|(_, totals)| self.facts_of(totals)),
            },
            events,
            verdict,
        })
    }

    /// What one exceeded threshold asks of this request.
    async fn respond(
        &self,
        threshold: &Threshold,
        identity: &Identity,
        principal: &str,
        now_ms: i64,
    ) -> Result<Verdict, StoreError> {
        Ok(match threshold.config.response {
            Response::Alert => Verdict::Admit,
            Response::StepUp => match &threshold.step_up {
                Some(needs) if !needs.step_up_met(identity, now_ms / 1000) => {
                    Verdict::StepUp(needs.challenge())
                }
                _ => Verdict::Admit,
            },
            Response::Throttle => {
                let Some(limiter) = &threshold.throttle else {
                    return Ok(Verdict::Admit);
                };
                if limiter.len() > THROTTLE_RETAIN_ABOVE {
                    limiter.retain_recent();
                }
                match limiter.check_key(&principal.to_owned()) {
                    Ok(()) => Verdict::Admit,
                    Err(not_until) => {
                        use governor::clock::{Clock, DefaultClock};
                        let wait = not_until.wait_time_from(DefaultClock::default().now());
                        Verdict::Throttled {
                            retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                        }
                    }
                }
            }
            Response::Suspend => {
                let window_ms = self.tracker.window_ms(threshold.window);
                if let Some(store) = &self.store {
                    if store
                        .risk_suspend(
                            principal,
                            &threshold.config.name,
                            now_ms,
                            now_ms - window_ms,
                        )
                        .await?
                    {
                        tracing::warn!(
                            principal,
                            threshold = %threshold.config.name,
                            "principal suspended by a risk threshold"
                        );
                    }
                }
                // Whether it is suspended now (or was cleared since) is the store's answer.
                Verdict::Admit
            }
        })
    }

    /// Counts one request of `identity`'s caller, `principal` (as for
    /// [`assess`](Self::assess)), and its organisation.
    pub(crate) fn observe(
        &self,
        identity: &Identity,
        principal: &str,
        now_ms: i64,
        seen: &Observation<'_>,
    ) {
        let caller = &identity.caller;
        let mut keys = vec![principal_key(principal)];
        if let Some(org) = &caller.organisation {
            keys.push(organisation_key(org));
        }
        self.tracker.observe(&keys, now_ms, seen);
    }

    /// Writes this replica's changed counts to the store (see the tracker's contract).
    pub(crate) async fn flush(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.tracker.flush(now_ms).await
    }

    /// Principals and organisations held, and the bytes they hold.
    pub(crate) fn held(&self) -> (usize, u64) {
        self.tracker.held()
    }
}

/// Orders verdicts: a suspension beats a throttle beats a step-up beats admission (a
/// suspended caller gains nothing by stepping up).
fn strictness(verdict: &Verdict) -> u8 {
    match verdict {
        Verdict::Admit => 0,
        Verdict::StepUp(_) => 1,
        Verdict::Throttled { .. } => 2,
        Verdict::Suspended => 3,
    }
}

/// Every indicator a `risk show` lists for one key: per window, per indicator (and per
/// field class and refusal reason), read from the store (every replica's rows merged).
pub async fn show(
    config: &RiskConfig,
    store: &Store,
    scope_key: &str,
    now_ms: i64,
) -> Result<Vec<(String, BTreeMap<String, f64>)>, String> {
    let risk = Risk::new(config, Some(store.clone()))?;
    let totals = risk
        .tracker
        .totals(scope_key, now_ms)
        .await
        .map_err(|e| e.to_string())?;
    Ok(risk
        .windows
        .iter()
        .zip(&totals.0)
        .map(|(window, tally)| {
            let mut values = BTreeMap::new();
            for indicator in Indicator::ALL {
                values.insert(indicator.name().to_owned(), tally.value(indicator, None));
            }
            for (class, n) in &tally.clear_reveals {
                values.insert(format!("clear_reveals.{class}"), *n as f64);
            }
            for (reason, n) in &tally.refusals {
                values.insert(format!("refusals.{reason}"), *n as f64);
            }
            (window.clone(), values)
        })
        .collect())
}

/// The key `risk show` reads for a principal (as `Caller::principal` names it) or an
/// organisation.
pub fn scope_key(principal: Option<&str>, organisation: Option<&str>) -> Option<String> {
    match (principal, organisation) {
        (Some(p), None) => Some(principal_key(p)),
        (None, Some(o)) => Some(organisation_key(o)),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests;

/// The indicators' per-request work on one replica (no store), for `benches/risk.rs`: read
/// a principal's totals as the policy context gets them, then count one request reading a
/// subject. Not an API.
#[doc(hidden)]
pub struct BenchIndicators {
    tracker: Tracker,
    names: Vec<String>,
}

#[doc(hidden)]
impl BenchIndicators {
    /// The default windows (5m, 1h, 24h) and memory bound.
    pub fn new() -> Self {
        let config: RiskConfig = toml::from_str("").unwrap_or_else(|_| unreachable!());
        let windows = config
            .windows
            .iter()
            .filter_map(|w| config::window_length(w).ok())
            .map(|d| d.as_millis() as i64)
            .collect();
        Self {
            tracker: Tracker::new(
                windows,
                config::DEFAULT_MAX_MEMORY_MIB << 20,
                i64::MAX,
                None,
            ),
            names: config.windows.iter().map(|w| format!("last_{w}")).collect(),
        }
    }

    /// One request of `principal` reading `subject` at `now_ms`: the facts before it.
    pub async fn request(&self, principal: &str, subject: &str, now_ms: i64) -> RiskFacts {
        let key = principal_key(principal);
        let totals = self.tracker.totals(&key, now_ms).await.unwrap_or_default();
        let seen = Observation {
            subjects: vec![subject],
            ..Observation::default()
        };
        self.tracker.observe(&[key], now_ms, &seen);
        RiskFacts {
            principal: self
                .names
                .iter()
                .cloned()
                .zip(totals.0.iter().map(tally::Tally::facts))
                .collect(),
            organisation: None,
        }
    }
}

impl Default for BenchIndicators {
    fn default() -> Self {
        Self::new()
    }
}

//! Prometheus metrics, served as text on the operations listener (`[admin] address`).
//!
//! Labels are bounded by configuration (route, upstream and listener names, status codes),
//! never taken from request content, so cardinality cannot be driven by clients and no
//! PII can reach a label.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabels {
    issuer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SecurityLabels {
    route: String,
    event: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RiskLabels {
    indicator: String,
    window: String,
    scope: String,
    /// `User` or `Service`: the principal's class, never its id.
    principal_class: String,
    response: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The gateway's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    upstream_errors: Family<UpstreamLabels, Counter>,
    tls_handshake_failures: Family<ListenerLabels, Counter>,
    active_connections: Family<ListenerLabels, Gauge>,
    config_reloads: Family<ReloadLabels, Counter>,
    jwks_age: Family<IssuerLabels, Gauge<f64, AtomicU64>>,
    /// When this registry (the gateway) started: what the request counters count since.
    started: std::time::Instant,
    security_events: Family<SecurityLabels, Counter>,
    risk_events: Family<RiskLabels, Counter>,
    /// Gauges of the gateway's state, set at scrape time.
    pub(crate) status: super::status::StatusMetrics,
    config_last_reload_ok: Gauge,
    config_last_reload_success: Gauge<f64, AtomicU64>,
}

/// PII-guard findings, for the whole process: the guard runs inside field protection, a
/// layer below the gateway with no handle on its [`Metrics`]; the gateway's registry
/// serves this family.
static PII_GUARD_FINDINGS: LazyLock<Family<GuardLabels, Counter>> = LazyLock::new(Family::default);

/// Counts one PII-guard finding. The detector is a built-in or configured detector name and
/// the action the route's (`block`, `mask`, `report`): never the value found.
pub(crate) fn pii_guard_finding(route: &str, detector: &str, action: &'static str) {
    PII_GUARD_FINDINGS
        .get_or_create(&GuardLabels {
            route: route.to_owned(),
            detector: detector.to_owned(),
            action: action.to_owned(),
        })
        .inc();
}

/// Risk webhook events by outcome, for the whole process: the delivery task runs apart from
/// the gateway's [`Metrics`]; the gateway's registry serves this family.
static RISK_WEBHOOK_EVENTS: LazyLock<Family<OutcomeLabels, Counter>> =
    LazyLock::new(Family::default);

/// Counts one risk webhook event's outcome: `delivered`, `retried` (a try that failed and
/// is tried again), `failed` (given up) or `dropped` (the queue was full).
pub(crate) fn risk_webhook_event(outcome: &'static str) {
    RISK_WEBHOOK_EVENTS
        .get_or_create(&OutcomeLabels {
            outcome: outcome.to_owned(),
        })
        .inc();
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GuardLabels {
    route: String,
    detector: String,
    action: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s: gateway overhead is sub-millisecond, upstream calls up to timeouts.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("privgate");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let upstream_errors = Family::<UpstreamLabels, Counter>::default();
        let tls_handshake_failures = Family::<ListenerLabels, Counter>::default();
        let active_connections = Family::<ListenerLabels, Gauge>::default();
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register("requests", "Requests by route and status", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Request latency through the gateway, by route",
            latency.clone(),
        );
        registry.register(
            "upstream_errors",
            "Upstream failures by upstream and kind",
            upstream_errors.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "Failed or timed-out client TLS handshakes",
            tls_handshake_failures.clone(),
        );
        registry.register(
            "active_connections",
            "Open client connections",
            active_connections.clone(),
        );
        let jwks_age = Family::<IssuerLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "jwks_key_set_age_seconds",
            "Seconds since each token issuer's key set was last fetched successfully",
            jwks_age.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads by outcome (applied or rejected)",
            config_reloads.clone(),
        );
        let security_events = Family::<SecurityLabels, Counter>::default();
        registry.register(
            "security_events",
            "Refusals an abuse alert watches, by route, event (token_refused, api_key_refused, \
             credentials_refused, step_up_challenge, otp_failure, otp_lockout, rate_limited) \
             and fixed reason",
            security_events.clone(),
        );
        let risk_events = Family::<RiskLabels, Counter>::default();
        registry.register(
            "risk_threshold_events",
            "Risk thresholds crossed, by indicator, window, scope, principal class and response \
             (labels from [risk] configuration only)",
            risk_events.clone(),
        );
        registry.register(
            "risk_webhook_events",
            "Risk threshold events sent to the SIEM webhook, by outcome (delivered, retried, \
             failed, dropped)",
            RISK_WEBHOOK_EVENTS.clone(),
        );
        let status = super::status::StatusMetrics::default();
        status.register(&mut registry);
        registry.register(
            "pii_guard_findings",
            "Personal data a route's PII guard found outside protected fields, by route, \
             detector and the guard's action (block, mask, report)",
            PII_GUARD_FINDINGS.clone(),
        );
        let config_last_reload_ok = Gauge::default();
        registry.register(
            "config_last_reload_successful",
            "1 if the last reload (or the start) applied its configuration, 0 if it was rejected",
            config_last_reload_ok.clone(),
        );
        let config_last_reload_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When a configuration was last applied, at start or by a reload (Unix seconds)",
            config_last_reload_success.clone(),
        );
        Self {
            registry,
            status,
            config_last_reload_ok,
            config_last_reload_success,
            security_events,
            risk_events,
            requests,
            latency,
            upstream_errors,
            tls_handshake_failures,
            active_connections,
            config_reloads,
            jwks_age,
            started: std::time::Instant::now(),
        }
    }
}

impl Metrics {
    /// Counts a refusal an abuse alert watches; every label is a route name or a fixed
    /// string from the gateway's code, never request content.
    pub(crate) fn security_event(&self, route: &str, event: &'static str, reason: &'static str) {
        self.security_events
            .get_or_create(&SecurityLabels {
                route: route.to_owned(),
                event: event.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a risk threshold crossed; every label comes from `[risk]` configuration or
    /// the caller's kind, never from request content or a principal's id.
    pub(crate) fn risk_event(
        &self,
        indicator: &str,
        window: &str,
        scope: &str,
        class: crate::policy::CallerKind,
        response: &str,
    ) {
        self.risk_events
            .get_or_create(&RiskLabels {
                indicator: indicator.to_owned(),
                window: window.to_owned(),
                scope: scope.to_owned(),
                principal_class: format!("{class:?}"),
                response: response.to_owned(),
            })
            .inc();
    }

    /// Records a finished request.
    pub(crate) fn request(&self, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records an upstream failure.
    pub(crate) fn upstream_error(&self, upstream: &str, kind: &str) {
        self.upstream_errors
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Records a failed TLS handshake.
    pub(crate) fn tls_handshake_failed(&self, listener: &str) {
        self.tls_handshake_failures
            .get_or_create(&ListenerLabels {
                listener: listener.to_owned(),
            })
            .inc();
    }

    /// Tracks an open connection until the returned guard is dropped.
    pub(crate) fn connection_opened(&self, listener: &str) -> ConnectionGuard {
        let gauge = self
            .active_connections
            .get_or_create(&ListenerLabels {
                listener: listener.to_owned(),
            })
            .clone();
        gauge.inc();
        ConnectionGuard { gauge }
    }

    /// Records that a configuration was applied at start (reloads: [`Self::config_reload`]).
    pub(crate) fn config_applied(&self) {
        self.config_last_reload_ok.set(1);
        self.config_last_reload_success
            .set(crate::store::now_ms() as f64 / 1000.0);
    }

    /// Records a configuration reload attempt.
    pub(crate) fn config_reload(&self, applied: bool) {
        match applied {
            true => self.config_applied(),
            false => {
                self.config_last_reload_ok.set(0);
            }
        }
        let outcome = if applied { "applied" } else { "rejected" };
        self.config_reloads
            .get_or_create(&ReloadLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Sets an issuer's key-set age (issuer labels come from configuration).
    pub(crate) fn jwks_key_set_age(&self, issuer: &str, age: Duration) {
        self.jwks_age
            .get_or_create(&IssuerLabels {
                issuer: issuer.to_owned(),
            })
            .set(age.as_secs_f64());
    }

    /// Requests and refusals (401, 403 and 429: identity, policy and rate limits) per route
    /// since the gateway started, read from the `requests` counters themselves (encoded
    /// alone and read back), so the console and a scrape can never disagree.
    pub(crate) fn requests_by_route(&self) -> Vec<RouteRequests> {
        let mut registry = Registry::with_prefix("privgate");
        registry.register("requests", "", self.requests.clone());
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        let mut routes: std::collections::BTreeMap<String, RouteRequests> = Default::default();
        for line in text
            .lines()
            .filter(|l| l.starts_with("privgate_requests_total{"))
        {
            let label = |name: &str| {
                let start = line.find(&format!("{name}=\""))? + name.len() + 2;
                let end = line[start..].find('"')? + start;
                Some(&line[start..end])
            };
            let (Some(route), Some(status), Some(count)) = (
                label("route"),
                label("status").and_then(|s| s.parse::<u16>().ok()),
                line.rsplit(' ').next().and_then(|c| c.parse::<f64>().ok()),
            ) else {
                continue;
            };
            let entry = routes
                .entry(route.to_owned())
                .or_insert_with(|| RouteRequests {
                    route: route.to_owned(),
                    ..RouteRequests::default()
                });
            entry.requests += count as u64;
            if matches!(status, 401 | 403 | 429) {
                entry.refusals += count as u64;
            }
        }
        routes.into_values().collect()
    }

    /// How long ago the gateway started (the span [`Self::requests_by_route`] covers).
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The metrics in Prometheus text format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One route's requests and refusals since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RouteRequests {
    pub(crate) route: String,
    pub(crate) requests: u64,
    pub(crate) refusals: u64,
}

/// Decrements the active-connections gauge when dropped.
pub(crate) struct ConnectionGuard {
    gauge: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_by_route_reads_the_counters() {
        let metrics = Metrics::default();
        let ms = Duration::from_millis(1);
        for status in [200, 200, 403, 401, 429, 502] {
            metrics.request("accounts", status, ms);
        }
        metrics.request("console", 303, ms);
        assert_eq!(
            metrics.requests_by_route(),
            vec![
                RouteRequests {
                    route: "accounts".into(),
                    requests: 6,
                    refusals: 3,
                },
                RouteRequests {
                    route: "console".into(),
                    requests: 1,
                    refusals: 0,
                },
            ]
        );
    }
}

//! `[tracing]`: OpenTelemetry traces over OTLP/HTTP, off when the section is absent, and
//! whose W3C trace context (`traceparent`, `tracestate`) the gateway joins.
//!
//! A caller's trace context is an assertion like any other header: joined only from callers
//! the operator lists here (source networks, or registered clients by their mutual-TLS
//! certificate); from anyone else it is ignored and the request starts its own trace. The
//! section is read once at start (the exporter is process-wide): a reload that changes it
//! is refused, like `[fhe]`.

use super::{defaults, Config, Problems};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The `[tracing]` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP traces URL, whole (`http://collector:4318/v1/traces`).
    pub endpoint: String,
    /// PEM bundle of CAs that may sign the collector's certificate (required for https).
    pub ca: Option<PathBuf>,
    /// `service.name` of the spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Fraction of requests that start a sampled trace here (0 to 1); a trusted caller's
    /// sampled flag is followed instead.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// Longest a finished span waits for its batch to be sent.
    #[serde(default = "default_batch_delay", with = "humantime_serde")]
    pub batch_delay: Duration,
    /// Time the collector has to answer one export.
    #[serde(default = "default_export_timeout", with = "humantime_serde")]
    pub export_timeout: Duration,
    /// Source networks (CIDR) whose `traceparent`/`tracestate` the gateway joins.
    #[serde(default)]
    pub trusted_networks: Vec<ipnet::IpNet>,
    /// Registered clients (`[[client]]` ids) whose trace context the gateway joins when they
    /// call with their certificate.
    #[serde(default)]
    pub trusted_clients: Vec<String>,
}

fn default_service_name() -> String {
    "privgate".to_owned()
}
fn default_sample_ratio() -> f64 {
    defaults::TRACE_SAMPLE_RATIO
}
fn default_batch_delay() -> Duration {
    defaults::TRACE_BATCH_DELAY
}
fn default_export_timeout() -> Duration {
    defaults::TRACE_EXPORT_TIMEOUT
}

/// The section's problems: an endpoint the exporter could not use, a ratio outside 0..1,
/// zero times, and trusted clients that are not registered.
pub(super) fn validate(config: &Config, problems: &mut Problems) {
    let Some(tracing) = &config.tracing else {
        return;
    };
    match tracing.endpoint.parse::<http::Uri>() {
        Ok(uri) if uri.authority().is_some() => match uri.scheme_str() {
            Some("http") => {}
            Some("https") if tracing.ca.is_some() => {}
            Some("https") => problems.add("tracing.endpoint: https needs tracing.ca"),
            _ => problems.add("tracing.endpoint must be an http:// or https:// URL"),
        },
        _ => problems.add("tracing.endpoint must be an http:// or https:// URL"),
    }
    if !(0.0..=1.0).contains(&tracing.sample_ratio) {
        problems.add("tracing.sample_ratio must be between 0 and 1");
    }
    if tracing.batch_delay.is_zero() || tracing.export_timeout.is_zero() {
        problems.add("tracing.batch_delay and tracing.export_timeout must be greater than 0");
    }
    if tracing.service_name.is_empty() {
        problems.add("tracing.service_name must not be empty");
    }
    for id in &tracing.trusted_clients {
        if !config.clients.iter().any(|c| &c.id == id) {
            problems.add(format!(
                "tracing.trusted_clients: `{id}` is not a registered [[client]]"
            ));
        }
    }
}

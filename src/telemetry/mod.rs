//! Logging and metrics.
//!
//! Logs are structured (tracing): human-readable by default, one JSON object per line with
//! `--log-format json`. Nothing logged carries bodies, paths, queries, header values, tokens,
//! one-time codes or key material. Every line logged while a request is handled carries
//! its request id (the `request` span); the access log line (target [`ACCESS_LOG`]) also
//! carries the route, method, status, error code, latency, upstream, upstream status and
//! latency, byte counts and trace id, and can go to its own file (`--access-log`). With
//! `[tracing]`, the request's spans are also exported as OpenTelemetry traces ([`traces`]).

use anyhow::Context;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::{self, writer::BoxMakeWriter};
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;

pub(crate) mod metrics;
pub(crate) mod service_manager;
pub(crate) mod status;
pub(crate) mod traces;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The tracing target of the request phases' spans (`route`, `identify`, ...): exported as
/// the request's child spans with `[tracing]`, kept out of log lines, whose context is the
/// `request` span (its request id and trace id, as one object).
pub(crate) const PHASE: &str = "privgate::phase";

/// The tracing target of the per-request access log line ([`crate::gateway`]'s record phase).
pub(crate) const ACCESS_LOG: &str = "access";

/// Libraries whose debug and trace lines quote what they process: sqlparser the analyst's
/// SQL with its literals (PII in a WHERE clause), sqlx statements, hyper and h2 frames and
/// headers (bearer tokens). Set to these levels whatever `RUST_LOG` asks (a later directive
/// for the same target replaces an earlier one), so no log level prints request content.
const QUOTING_TARGETS: [(&str, &str); 6] = [
    ("sqlparser", "info"),
    ("sqlx", "warn"),
    ("hyper", "info"),
    ("hyper_util", "info"),
    ("h2", "info"),
    ("rustls", "info"),
];

/// Installs the global subscriber. `RUST_LOG` overrides the default: `info`, with sqlx at
/// `warn` (its per-statement and server-notice lines are noise to operators). With
/// `access_log`, the access log lines go there instead, always as JSON (one object per
/// line, like Envoy's JSON access log): a file, opened for appending (mode 0640; rotate it
/// with copytruncate), or stdout for `-`. With `tracing`, spans go to its collector too;
/// the export stops (after a last flush) when the returned value is dropped.
pub(crate) fn init(
    format: LogFormat,
    access_log: Option<&Path>,
    tracing: Option<&crate::config::TracingConfig>,
) -> anyhow::Result<Option<traces::TraceExport>> {
    let (layers, export) = layers(format, access_log, tracing)?;
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(export)
}

/// The subscriber's layers as [`init`] installs them.
fn layers(
    format: LogFormat,
    access_log: Option<&Path>,
    tracing: Option<&crate::config::TracingConfig>,
) -> anyhow::Result<(Vec<BoxedLayer>, Option<traces::TraceExport>)> {
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    for (target, level) in QUOTING_TARGETS {
        filter = filter.add_directive(format!("{target}={level}").parse()?);
    }
    filter = filter.add_directive(format!("{PHASE}=off").parse()?);
    let main = match format {
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let access = match access_log {
        None => None,
        Some(path) => {
            let writer = match path.as_os_str() == "-" {
                true => BoxMakeWriter::new(std::io::stdout),
                false => BoxMakeWriter::new(Mutex::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o640)
                        .open(path)
                        .with_context(|| {
                            format!("{}: cannot open the access log", path.display())
                        })?,
                )),
            };
            filter = filter.add_directive(format!("{ACCESS_LOG}=off").parse()?);
            // The line carries the request id itself; the span list would only repeat it.
            let layer = fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(writer)
                .with_filter(Targets::new().with_target(ACCESS_LOG, Level::INFO));
            Some(layer)
        }
    };
    // Layers that are configured only (not `Option` layers: a `None` layer enables every
    // callsite, so each phase span would be made and entered on every request for nobody).
    let mut layers: Vec<BoxedLayer> = vec![main.with_filter(filter).boxed()];
    layers.extend(access.map(Layer::boxed));
    let export = match tracing {
        Some(config) => {
            let (layer, export) = traces::layer(config)?;
            layers.push(layer.boxed());
            Some(export)
        }
        None => None,
    };
    Ok((layers, export))
}

/// One layer of the subscriber.
type BoxedLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_spans_are_made_only_for_a_trace_export() {
        // Without `[tracing]` nothing reads the phase spans: they must be disabled (not
        // made and entered for nobody on every request), whether or not an access log is
        // configured; the request span stays (log lines carry its ids).
        let dir = tempfile::tempdir().unwrap();
        let access = dir.path().join("access.jsonl");
        for access_log in [None, Some(access.as_path())] {
            let (layers, _) = layers(LogFormat::Json, access_log, None).unwrap();
            let subscriber = tracing_subscriber::registry().with(layers);
            tracing::subscriber::with_default(subscriber, || {
                let phase = tracing::info_span!(target: PHASE, "decide");
                assert!(phase.is_disabled(), "access log {access_log:?}");
                let request = tracing::info_span!("request");
                assert!(!request.is_disabled(), "access log {access_log:?}");
            });
        }
    }
}

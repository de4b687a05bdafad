//! Logging and metrics.
//!
//! Logs are structured (tracing): human-readable by default, one JSON object per line with
//! `--log-format json`. Nothing logged carries bodies, paths, queries, header values, tokens,
//! one-time codes or key material. Every line logged while a request is handled carries
//! its request id (the `request` span); the access log line (target [`ACCESS_LOG`]) also
//! carries the route, method, status, error code, latency, upstream, upstream status and
//! latency, byte counts and trace id, and can go to its own file (`--access-log`).

use anyhow::Context;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::{self, writer::BoxMakeWriter};
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

pub(crate) mod metrics;
pub(crate) mod service_manager;
pub(crate) mod status;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

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
/// with copytruncate), or stdout for `-`.
pub(crate) fn init(format: LogFormat, access_log: Option<&Path>) -> anyhow::Result<()> {
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    for (target, level) in QUOTING_TARGETS {
        filter = filter.add_directive(format!("{target}={level}").parse()?);
    }
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
    let _ = tracing_subscriber::registry()
        .with(main.with_filter(filter))
        .with(access)
        .try_init();
    Ok(())
}

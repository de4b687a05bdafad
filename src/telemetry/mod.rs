//! Logging and metrics.
//!
//! Logs are structured (tracing): human-readable by default, one JSON object per line with
//! `--log-format json`. Nothing logged carries bodies, paths, queries, header values, tokens,
//! one-time codes or key material; request logs carry the request id, route, method,
//! status and latency.

pub(crate) mod metrics;
pub(crate) mod service_manager;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default: `info`, with sqlx at
/// `warn` (its per-statement and server-notice lines are noise to operators).
pub(crate) fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

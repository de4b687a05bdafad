//! `privgate serve`: run the gateway until SIGTERM/SIGINT; SIGHUP reloads. Under systemd
//! (`Type=notify`) the service manager hears when it is ready, reloading and stopping.

use crate::gateway::{Control, Server};
use crate::telemetry::service_manager;
use std::path::PathBuf;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// Arguments of `privgate serve`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// Configuration file.
    #[arg(long, default_value = "privgate.toml", env = "PRIVGATE_CONFIG")]
    config: PathBuf,
}

/// The configuration's `[tracing]` section, read before logging starts because the
/// subscriber that exports spans is installed once, with the logs. A configuration that
/// does not load has none here; [`run`] then reports why it does not load.
pub(super) fn tracing_section(args: &Args) -> Option<crate::config::TracingConfig> {
    crate::config::load(&args.config).ok()?.tracing
}

/// Turns transparent huge pages off for the gateway's process (`serve`, and `demo`, which
/// runs one). The allocator maps its memory in large aligned regions (and asks for huge
/// pages on them); backed by 2 MiB pages, a region that a few long-lived objects touch is
/// resident in full, so memory held by idle connections grew with the page size instead of
/// with what they hold. Measured with `bench/idle-connections.sh` (10,000 idle TLS
/// connections): 134 MiB without, 145 MiB with (host THP mode `madvise`); the protected
/// route spent about 3 % more CPU per request without. A host that refuses the setting
/// keeps its own; the gateway still runs.
pub(super) fn without_huge_pages() {
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        tracing::warn!(error = %e, "could not turn transparent huge pages off for this process");
    }
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    // Handlers go in before binding: a SIGHUP that arrives early must reload, not kill.
    let control = forward_signals()?;
    let server = Server::bind(&args.config).await?;
    service_manager::ready();
    service_manager::spawn_watchdog();
    server.run(control).await;
    Ok(())
}

/// Turns SIGHUP into [`Control::Reload`] and SIGTERM/SIGINT into [`Control::Shutdown`].
pub(super) fn forward_signals() -> anyhow::Result<mpsc::Receiver<Control>> {
    let (tx, rx) = mpsc::channel(4);
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let control = tokio::select! {
                _ = hangup.recv() => Control::Reload,
                _ = terminate.recv() => Control::Shutdown,
                _ = interrupt.recv() => Control::Shutdown,
            };
            if tx.send(control).await.is_err() || control == Control::Shutdown {
                return;
            }
        }
    });
    Ok(rx)
}

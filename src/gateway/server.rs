//! Listener lifecycle: bind, accept under the connection limit, reload, drain.

use super::connection;
use super::generation::Generation;
use super::keys::GatewayKeys;
use super::lanes::Lanes;
use super::ops_listener;
use super::reloads::Reload;
use super::state::Shared;
use crate::audit::{AuditKey, AuditLog, AuditSettings};
use crate::config::ConfigError;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::service_manager;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::task::TaskTracker;

/// What the process asks a running server to do (from signals or the demo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Re-read the configuration file; keep the current one if the new one is invalid.
    Reload,
    /// Stop accepting, drain in-flight requests up to the grace period, return.
    Shutdown,
}

/// A gateway with its listeners bound, ready to run.
pub(crate) struct Server {
    shared: Arc<Shared>,
    listeners: Vec<(Arc<str>, TcpListener)>,
    /// The operations listener (health, readiness, metrics).
    ops: TcpListener,
    /// The threads that will serve the listeners' connections.
    lanes: Lanes,
}

impl Server {
    /// Loads the configuration and binds every TLS listener and the operations listener.
    pub(crate) async fn bind(config_path: &Path) -> anyhow::Result<Self> {
        let generation = Generation::load(config_path)?;
        generation.log_warnings();
        // Up before the listeners say they listen.
        let lanes = Lanes::start().map_err(|e| anyhow::anyhow!("connection lanes: {e}"))?;
        let mut listeners = Vec::new();
        for l in &generation.config.listeners {
            let tcp = TcpListener::bind(l.address).await.map_err(|e| {
                anyhow::anyhow!("listener `{}`: cannot bind {}: {e}", l.name, l.address)
            })?;
            tracing::info!(listener = %l.name, address = %tcp.local_addr()?, "listening");
            listeners.push((Arc::from(l.name.as_str()), tcp));
        }
        let ops_address = generation.config.admin.address;
        let ops = TcpListener::bind(ops_address)
            .await
            .map_err(|e| anyhow::anyhow!("admin: cannot bind {ops_address}: {e}"))?;
        tracing::info!(listener = "admin", address = %ops.local_addr()?, "listening");
        let audit = open_audit(&generation)?;
        let pseudonyms = match generation
            .config
            .audit
            .as_ref()
            .and_then(|a| a.pseudonym_key_file.as_ref())
        {
            Some(file) => Some(AuditKey::from_file(file).map_err(anyhow::Error::msg)?),
            None => None,
        };
        // Consent (policy) and the token deny-list (issuers) live in the store.
        let config = &generation.config;
        let store = match config.opens_store() {
            true => Some(Store::open_configured(&config.store).await?),
            false => None,
        };
        // The keyring opens at start or the gateway does not: a wrong passphrase or a
        // corrupted keyring must never turn into a gateway serving without protection.
        let keys = match (&generation.config.keys, &store) {
            (Some(config), Some(store)) => Some(
                crate::keys::Keyring::open_configured(store.clone(), config)
                    .await
                    .map_err(|e| anyhow::anyhow!("keyring: {e}"))?,
            ),
            (Some(_), None) => anyhow::bail!(super::generation::KEYS_NEED_POLICY),
            (None, _) => None,
        };
        #[cfg(feature = "fhe")]
        let fhe = start_fhe(&generation.config, store.as_ref(), keys.as_ref()).await?;
        let durable_reveals = generation
            .config
            .audit
            .as_ref()
            .is_some_and(|a| a.durable_reveals);
        let risk_flush = generation.config.risk.as_ref().map(|r| r.flush_interval);
        let risk = match &generation.config.risk {
            Some(config) => Some(Arc::new(
                crate::risk::Risk::new(config, store.clone()).map_err(anyhow::Error::msg)?,
            )),
            None => None,
        };
        let risk_webhook = match generation
            .config
            .risk
            .as_ref()
            .and_then(|r| r.webhook.as_ref())
        {
            Some(config) => Some(crate::risk::Webhook::start(
                crate::risk::WebhookTarget::from_config(config)?,
            )),
            None => None,
        };
        let shared = Arc::new(Shared {
            generation: ArcSwap::new(generation),
            metrics: Metrics::default(),
            draining: AtomicBool::new(false),
            audit,
            pseudonyms,
            durable_reveals,
            #[cfg(feature = "fhe")]
            fhe,
            keys: GatewayKeys(keys),
            store,
            config_path: config_path.to_path_buf(),
            risk,
            risk_webhook,
            console: Default::default(),
            reloads: Default::default(),
        });
        if let (Some(risk), Some(interval)) = (&shared.risk, risk_flush) {
            tokio::spawn(flush_risk(Arc::downgrade(risk), interval));
        }
        shared.metrics.config_applied();
        let started = shared.generation.load();
        shared.reloads.record(Reload {
            at_ms: crate::store::now_ms(),
            outcome: "started",
            config_sha256: started.source_sha256.clone(),
            policy_set_hash: started.policy.as_ref().map(|p| p.hash().to_owned()),
            problems: 0,
        });
        drop(started);
        Ok(Self {
            shared,
            listeners,
            ops,
            lanes,
        })
    }

    /// Serves until told to shut down, then drains.
    pub(crate) async fn run(self, mut control: mpsc::Receiver<Control>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let connections = TaskTracker::new();
        let lanes = Arc::new(self.lanes);
        let max_connections = self.shared.generation.load().config.limits.max_connections;
        let mut accept_loops = Vec::new();
        for (name, listener) in self.listeners {
            accept_loops.push(tokio::spawn(accept_loop(
                self.shared.clone(),
                name,
                listener,
                Arc::new(Semaphore::new(max_connections)),
                stop_rx.clone(),
                Accepted {
                    lanes: lanes.clone(),
                    connections: connections.clone(),
                },
            )));
        }
        let ops = tokio::spawn(ops_listener::run(
            self.shared.clone(),
            self.ops,
            stop_rx.clone(),
        ));

        // Edited files reload like SIGHUP does: security teams' policy edits take effect
        // without an operator, and an invalid edit is rejected the same way.
        let mut watch = tokio::time::interval(WATCH_INTERVAL);
        let mut seen = fingerprint(&self.shared);
        loop {
            tokio::select! {
                control = control.recv() => match control {
                    Some(Control::Reload) => reload(&self.shared),
                    Some(Control::Shutdown) | None => break,
                },
                _ = watch.tick() => {
                    let now = fingerprint(&self.shared);
                    if now != seen {
                        tracing::info!("configuration or policy files changed");
                        reload(&self.shared);
                    }
                    seen = now;
                    continue;
                }
            }
            seen = fingerprint(&self.shared);
        }

        let grace = self.shared.generation.load().config.limits.shutdown_grace;
        tracing::info!(
            in_flight_connections = connections.len(),
            "shutting down: draining"
        );
        self.shared.draining.store(true, Ordering::SeqCst);
        service_manager::stopping();
        let _ = stop_tx.send(true);
        for accept in accept_loops {
            let _ = accept.await;
        }
        connections.close();
        if tokio::time::timeout(grace, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                cut = connections.len(),
                grace_s = grace.as_secs(),
                "grace period over; closing remaining connections"
            );
        } else {
            tracing::info!("drained");
        }
        ops.abort();
        if let Some(audit) = &self.shared.audit {
            audit.close().await;
        }
        // Every accept loop has returned, so this is the last reference.
        if let Some(lanes) = Arc::into_inner(lanes) {
            lanes.stop().await;
        }
    }
}

/// Writes this replica's risk counts to the store every `interval`, until the gateway (and
/// with it the indicators) is gone. A failed flush is logged and retried with the next: the
/// slices stay marked until written.
async fn flush_risk(risk: std::sync::Weak<crate::risk::Risk>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(risk) = risk.upgrade() else {
            return;
        };
        match risk.flush(crate::store::now_ms()).await {
            Ok(written) => {
                let (entries, bytes) = risk.held();
                tracing::debug!(written, entries, bytes, "risk indicators flushed");
            }
            Err(e) => tracing::warn!(error = %e, "risk indicators not written; retrying"),
        }
    }
}

/// Opens the audit chain the configuration asks for (changes to `[audit]` apply on restart).
/// Loads the FHE key set when `[fhe]` is configured (never otherwise): its client key
/// opens with the keyring, and a key set that does not load stops the start.
#[cfg(feature = "fhe")]
async fn start_fhe(
    config: &crate::config::Config,
    store: Option<&Store>,
    keys: Option<&crate::keys::Keyring>,
) -> anyhow::Result<Option<Arc<crate::analytics::fhe::FheService>>> {
    let Some(fhe) = &config.fhe else {
        return Ok(None);
    };
    let (Some(store), Some(keyring)) = (store, keys) else {
        anyhow::bail!(super::generation::FHE_NEEDS_KEYRING);
    };
    let started = std::time::Instant::now();
    let service = crate::analytics::fhe::FheService::start(
        &fhe.dir,
        crate::analytics::fhe::service::Settings {
            floor: fhe.min_organisations_floor,
            batch_size: fhe.batch_size.clamp(1, 1024).into(),
        },
        store.clone(),
        keyring,
    )
    .await
    .map_err(|e| anyhow::anyhow!("fhe: {e}"))?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "FHE keys loaded");
    Ok(Some(service))
}

fn open_audit(generation: &Generation) -> anyhow::Result<Option<AuditLog>> {
    let Some(config) = &generation.config.audit else {
        tracing::warn!("no [audit] section: requests are not recorded in an audit trail");
        return Ok(None);
    };
    let key = AuditKey::from_file(&config.checkpoint_key_file).map_err(anyhow::Error::msg)?;
    let settings = AuditSettings::from_config(config);
    tracing::info!(log = %settings.log.display(), replica = %settings.replica, "audit trail open");
    Ok(Some(AuditLog::open(settings, key)?))
}

/// How often the gateway looks for edited configuration and policy files. Two seconds keeps
/// an edit's effect prompt at the cost of a few `stat` calls.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Size and modification time of the config file and every file in the policy directory.
fn fingerprint(shared: &Shared) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut paths = vec![shared.config_path.clone()];
    if let Some(policy) = &shared.generation.load().config.policy {
        if let Ok(entries) = std::fs::read_dir(&policy.dir) {
            paths.extend(
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file()),
            );
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let (len, modified) = meta
                .map(|m| (m.len(), m.modified().ok()))
                .unwrap_or((0, None));
            (p, len, modified)
        })
        .collect()
}

/// Replaces the active generation if the file yields a valid one; otherwise logs why and
/// keeps serving the current one.
fn reload(shared: &Shared) {
    service_manager::reloading();
    apply_reload(shared);
    service_manager::ready();
}

fn apply_reload(shared: &Shared) {
    let path = &shared.config_path;
    let current = shared.generation.load_full();
    let next = Generation::load(path).and_then(|next| {
        current.check_replaceable_by(&next, path)?;
        Ok::<_, ConfigError>(next)
    });
    let at_ms = crate::store::now_ms();
    match next {
        Ok(next) => {
            shared.reloads.record(Reload {
                at_ms,
                outcome: "applied",
                config_sha256: next.source_sha256.clone(),
                policy_set_hash: next.policy.as_ref().map(|p| p.hash().to_owned()),
                problems: 0,
            });
            next.log_warnings();
            shared.generation.store(next);
            shared.metrics.config_reload(true);
            tracing::info!(config = %path.display(), "configuration reloaded");
        }
        Err(e) => {
            // The file as it was read for this attempt, so an operator can tell which edit.
            let config_sha256 = std::fs::read(path)
                .map(|bytes| {
                    crate::audit::hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref())
                })
                .unwrap_or_default();
            shared.reloads.record(Reload {
                at_ms,
                outcome: "rejected",
                config_sha256,
                policy_set_hash: None,
                problems: e.problems.len(),
            });
            shared.metrics.config_reload(false);
            tracing::error!(
                config = %path.display(),
                problems = %e,
                "new configuration rejected; the previous one keeps serving"
            );
        }
    }
}

/// Where accepted connections go: the least busy lane, tracked for the drain.
struct Accepted {
    lanes: Arc<Lanes>,
    connections: TaskTracker,
}

async fn accept_loop(
    shared: Arc<Shared>,
    name: Arc<str>,
    listener: TcpListener,
    limit: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    accepted_to: Accepted,
) {
    loop {
        // Waiting for a permit before accepting leaves excess clients in the kernel backlog
        // (back-pressure) instead of accepting connections the gateway cannot serve.
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok(permit) = permit else { return };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((tcp, addr)) => {
                // The socket moves to the lane's own reactor; one that cannot is closed.
                let tcp = match tcp.into_std() {
                    Ok(tcp) => tcp,
                    Err(e) => {
                        tracing::warn!(listener = %name, error = %e, "accepted connection lost");
                        continue;
                    }
                };
                let (shared, name, stop) = (shared.clone(), name.clone(), stop.clone());
                let tracked = accepted_to.connections.token();
                accepted_to.lanes.serve(move || async move {
                    let _tracked = tracked;
                    match TcpStream::from_std(tcp) {
                        Ok(tcp) => connection::serve(shared, name, tcp, addr, stop, permit).await,
                        Err(e) => tracing::warn!(error = %e, "accepted connection lost"),
                    }
                });
            }
            Err(e) => {
                // Typically out of file descriptors: pause instead of spinning.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

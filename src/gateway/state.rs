//! State the request path reads and no phase owns: what every connection shares
//! ([`Shared`]: the live configuration generation, metrics, audit trail, store, keys) and
//! what a request knows of the connection it came on ([`ConnectionInfo`]).
//!
//! A leaf of the gateway: phases, served APIs and listeners depend on it, it depends on
//! none of them (only on the generation, the keys and the TLS peer certificate it holds),
//! so the request path has no import circle through the server.

use super::generation::Generation;
use super::keys::GatewayKeys;
use crate::audit::{AuditKey, AuditLog};
use crate::certs::PeerCertificate;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// State shared by every connection.
pub(crate) struct Shared {
    /// The active configuration generation.
    pub(crate) generation: ArcSwap<Generation>,
    /// Metrics registry.
    pub(crate) metrics: Metrics,
    /// Set once shutdown starts (readiness turns 503).
    pub(crate) draining: AtomicBool,
    /// The audit trail, when configured.
    pub(crate) audit: Option<AuditLog>,
    /// The key turning data-subject ids into audit pseudonyms, when configured.
    pub(crate) pseudonyms: Option<AuditKey>,
    /// The store, opened when a policy set, token issuers or the console are configured
    /// (consent lookups, token deny-list, console sessions).
    pub(crate) store: Option<Store>,
    /// Whether clear reveals wait for their audit record's fsync.
    pub(crate) durable_reveals: bool,
    /// The keyring, when configured: protected values fail closed without it.
    pub(crate) keys: GatewayKeys,
    /// The encrypted-sum service, when `[fhe]` is configured (its keys loaded at start).
    #[cfg(feature = "fhe")]
    pub(crate) fhe: Option<Arc<crate::analytics::fhe::FheService>>,
    /// The configuration file, re-read on reload and watched for edits.
    pub(crate) config_path: PathBuf,
    /// Risk indicators and thresholds, when `[risk]` is configured (changes apply on
    /// restart: the counts outlive configuration generations).
    pub(crate) risk: Option<Arc<crate::risk::Risk>>,
    /// The SIEM webhook's queue, when `[risk.webhook]` is configured.
    pub(crate) risk_webhook: Option<crate::risk::Webhook>,
    /// Web console sessions and sign-ins in progress. They live in the store, shared by
    /// every replica (this holds no state of its own), so neither a reload nor a restart
    /// signs anyone out, and a sign-out on one replica holds on all.
    pub(crate) console: super::console_sessions::ConsoleSessions,
    /// The last configuration reloads (the console's Overview shows them).
    pub(crate) reloads: super::reloads::ReloadHistory,
}

/// What later phases may know about the connection a request came on.
#[derive(Debug)]
pub(crate) struct ConnectionInfo {
    /// Listener name.
    pub(crate) listener: Arc<str>,
    /// The client's address.
    pub(crate) client_addr: SocketAddr,
    /// The client's address as forwarded upstream.
    pub(crate) client_hop: super::headers::ClientHop,
    /// The verified client certificate, on mutual-TLS connections.
    pub(crate) peer_certificate: Option<PeerCertificate>,
}

//! State the request path reads and no phase owns: what every connection shares
//! ([`Shared`]: the live configuration generation, metrics, audit trail, store, keys) and
//! what a request knows of the connection it came on ([`ConnectionInfo`]).
//!
//! A leaf of the gateway: phases, served APIs and listeners depend on it, it depends on
//! none of them (only on the generation, the keys and the TLS peer certificate it holds),
//! so the request path has no import circle through the server.

use super::generation::Generation;
use super::keys::GatewayKeys;
use super::tls::PeerCertificate;
use crate::audit::{AuditKey, AuditLog};
use crate::store::Store;
use crate::telemetry::metrics::Metrics;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// State shared by every connection.
pub struct Shared {
    /// The active configuration generation.
    pub generation: ArcSwap<Generation>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Set once shutdown starts (readiness turns 503).
    pub draining: AtomicBool,
    /// The audit trail, when configured.
    pub audit: Option<AuditLog>,
    /// The key turning data-subject ids into audit pseudonyms, when configured.
    pub pseudonyms: Option<AuditKey>,
    /// The store, opened when a policy set or token issuers are configured (consent
    /// lookups, token deny-list).
    pub store: Option<Store>,
    /// Whether clear reveals wait for their audit record's fsync.
    pub durable_reveals: bool,
    /// The keyring, when configured: protected values fail closed without it.
    pub keys: GatewayKeys,
    /// The encrypted-sum service, when `[fhe]` is configured (its keys loaded at start).
    #[cfg(feature = "fhe")]
    pub fhe: Option<Arc<crate::analytics::fhe::FheService>>,
    /// The configuration file, re-read on reload and watched for edits.
    pub config_path: PathBuf,
}

/// What later phases may know about the connection a request came on.
#[derive(Debug)]
pub struct ConnectionInfo {
    /// Listener name.
    pub listener: Arc<str>,
    /// The client's address.
    pub client_addr: SocketAddr,
    /// The verified client certificate, on mutual-TLS connections.
    pub peer_certificate: Option<PeerCertificate>,
}

//! A generation: everything built from one configuration (TLS acceptors, router, upstream
//! clients, limits), swapped in as one unit on reload so a request never sees half of an old
//! configuration and half of a new one.

use super::rate_limit::RateLimits;
use super::router::Router;
use super::tls;
use super::upstream::Upstream;
use crate::config::{self, Config, ConfigError, Problem};
use crate::identity::IdentityService;
use crate::policy::PolicyEngine;
use crate::protect::Protection;
use http::HeaderName;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Runtime state built from one valid configuration.
pub struct Generation {
    /// The configuration it was built from.
    pub config: Config,
    /// Routing table.
    pub router: Router,
    /// Upstream clients by name.
    pub upstreams: HashMap<String, Upstream>,
    /// TLS acceptor per listener name.
    pub acceptors: HashMap<String, TlsAcceptor>,
    /// Parsed `forwarding.internal_headers`.
    pub internal_headers: Vec<HeaderName>,
    /// Client-asserted headers that pass: `forwarding.pass_client_headers`, and the
    /// client's forwarding chain when `trust_incoming_forwarded_for` (the gateway appends).
    pub pass_client_headers: Vec<HeaderName>,
    /// The policy set, when configured: swapped with the config it was validated with.
    pub policy: Option<PolicyEngine>,
    /// Registered clients and token issuers.
    pub identity: IdentityService,
    /// Field rules (`fields.toml`, `routes.toml`), loaded with the policy set.
    pub protection: Option<Protection>,
    /// Rate limiters per route (their buckets start afresh with each generation).
    pub rate_limits: RateLimits,
    /// Datasets for differentially private analytics (`[[dataset]]`).
    pub datasets: crate::analytics::dp::Datasets,
}

impl Generation {
    /// Loads `path` and builds a generation; every problem found names its file.
    pub fn load(path: &Path) -> Result<Arc<Self>, ConfigError> {
        Self::build(config::load(path)?)
    }

    /// Builds a generation from a validated configuration, loading every referenced file.
    pub fn build(config: Config) -> Result<Arc<Self>, ConfigError> {
        let mut problems = Vec::new();
        let mut acceptors = HashMap::new();
        for listener in &config.listeners {
            match tls::server_config(listener) {
                Ok(server) => {
                    acceptors.insert(listener.name.clone(), TlsAcceptor::from(server));
                }
                Err(e) => problems.extend(e.problems),
            }
        }
        let mut upstreams = HashMap::new();
        for (name, upstream) in &config.upstreams {
            match Upstream::build(name, upstream) {
                Ok(u) => {
                    upstreams.insert(name.clone(), u);
                }
                Err(e) => problems.extend(e.problems),
            }
        }
        let policy = match &config.policy {
            None => None,
            Some(p) => match PolicyEngine::load(&p.dir) {
                Ok(engine) => {
                    for route in &config.routes {
                        if let Some(action) = &route.action {
                            if !engine.route_actions().contains(action) {
                                problems.push(Problem {
                                    file: p.dir.join("schema.cedarschema"),
                                    message: format!(
                                        "route `{}`: action `{action}` is not declared",
                                        route.name
                                    ),
                                });
                            }
                        }
                    }
                    Some(engine)
                }
                Err(e) => {
                    problems.extend(e.problems);
                    None
                }
            },
        };
        let protection = match &config.policy {
            None => None,
            Some(p) => Protection::load(&p.dir, &config.routes)
                .map_err(|e| problems.extend(e.problems))
                .ok(),
        };
        let identity =
            IdentityService::build(&config.clients, &config.issuers, config.totp.as_ref())
                .map_err(|e| problems.extend(e.problems))
                .ok();
        let router = Router::new(&config.routes)
            .map_err(|e| {
                problems.push(Problem {
                    file: PathBuf::from("privgate.toml"),
                    message: e,
                })
            })
            .ok();
        let (Some(router), Some(identity)) = (router, identity) else {
            return Err(ConfigError { problems });
        };
        let datasets = crate::analytics::dp::Datasets::build(&config.datasets)
            .map_err(|message| {
                problems.push(Problem {
                    file: PathBuf::from("privgate.toml"),
                    message,
                })
            })
            .ok();
        let Some(datasets) = datasets.filter(|_| problems.is_empty()) else {
            return Err(ConfigError { problems });
        };
        // Claim headers the gateway forwards are internal: a client's copies never pass.
        let internal_headers = config
            .forwarding
            .internal_headers
            .iter()
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .chain(identity.internal_headers().iter().cloned())
            .collect();
        let trusted_chain = ["forwarded", "x-forwarded-for"]
            .into_iter()
            .filter(|_| config.forwarding.trust_incoming_forwarded_for)
            .map(String::from);
        let pass_client_headers = config
            .forwarding
            .pass_client_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .chain(trusted_chain)
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        Ok(Arc::new(Self {
            rate_limits: RateLimits::new(&config.rate_limit, &config.routes),
            datasets,
            policy,
            protection,
            identity,
            router,
            upstreams,
            acceptors,
            internal_headers,
            pass_client_headers,
            config,
        }))
    }

    /// Whether `next` can replace this generation without a restart: listeners are bound
    /// once, so their names and addresses must stay the same; the FHE service loads its key
    /// set once, so `[fhe]` must stay the same.
    pub fn check_replaceable_by(&self, next: &Generation, path: &Path) -> Result<(), ConfigError> {
        let bound = |g: &Generation| {
            let mut l: Vec<_> = g
                .config
                .listeners
                .iter()
                .map(|l| (l.name.clone(), l.address))
                .collect();
            l.sort();
            l
        };
        if bound(self) != bound(next) || self.config.admin.address != next.config.admin.address {
            return Err(ConfigError::one(
                path,
                "listener names and addresses (and the admin address) change only on restart",
            ));
        }
        // The FHE service (key set, fold worker, settings) is built once at start.
        if self.config.fhe != next.config.fhe {
            return Err(ConfigError::one(
                path,
                "[fhe] changes only on restart (the FHE key set is loaded once, at start)",
            ));
        }
        Ok(())
    }
}

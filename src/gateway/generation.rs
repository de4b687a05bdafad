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
use crate::protect::rules::BodySide;
use crate::protect::Protection;
use http::HeaderName;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Runtime state built from one valid configuration.
pub(crate) struct Generation {
    /// The configuration it was built from.
    pub(crate) config: Config,
    /// Routing table.
    pub(crate) router: Router,
    /// Upstream clients by name.
    pub(crate) upstreams: HashMap<String, Upstream>,
    /// TLS acceptor per listener name.
    pub(crate) acceptors: HashMap<String, TlsAcceptor>,
    /// Parsed `forwarding.internal_headers`.
    pub(crate) internal_headers: Vec<HeaderName>,
    /// Client-asserted headers that pass: `forwarding.pass_client_headers`, and the
    /// client's forwarding chain when `trust_incoming_forwarded_for` (the gateway appends).
    pub(crate) pass_client_headers: Vec<HeaderName>,
    /// The policy set, when configured: swapped with the config it was validated with.
    pub(crate) policy: Option<PolicyEngine>,
    /// Registered clients and token issuers.
    pub(crate) identity: IdentityService,
    /// Field rules (`fields.toml`, `routes.toml`), loaded with the policy set.
    pub(crate) protection: Option<Protection>,
    /// Rate limiters per route (their buckets start afresh with each generation).
    pub(crate) rate_limits: RateLimits,
    /// Datasets for differentially private analytics (`[[dataset]]`).
    pub(crate) datasets: crate::analytics::dp::Datasets,
    /// The spellings the routes give subject ids, compiled once, for the admin API's
    /// operations and consents that name a subject outside a request.
    pub(crate) subject_ids: crate::config::subject::SubjectIds,
    /// Things that do not stop the configuration from serving but that an operator should
    /// hear about (`privgate check` prints them, serve and reload log them).
    pub(crate) warnings: Vec<Problem>,
    /// SHA-256 (hex) of the configuration file this generation was loaded from (empty when
    /// built from a parsed config): which configuration serves, for metrics.
    pub(crate) source_sha256: String,
    /// Expiry of the certificates this generation presents, read when it was built.
    pub(crate) certificates: Vec<CertificateExpiry>,
}

/// When one certificate the gateway presents expires.
#[derive(Debug, Clone)]
pub(crate) struct CertificateExpiry {
    /// `listener` (served to clients) or `upstream` (a client certificate for mutual TLS).
    pub(crate) kind: &'static str,
    /// The listener's or upstream's configured name.
    pub(crate) name: String,
    /// Unix seconds.
    pub(crate) not_after: i64,
}

/// The certificates a configuration presents. A file that cannot be read here was already
/// refused by the TLS setup, so it is only left out.
fn certificate_expiry(config: &Config) -> Vec<CertificateExpiry> {
    let listeners = config.listeners.iter().flat_map(|l| {
        std::iter::once(&l.cert)
            .chain(&l.fallback_cert)
            .map(move |cert| ("listener", &l.name, cert))
    });
    let upstreams = config
        .upstreams
        .iter()
        .filter_map(|(name, u)| Some(("upstream", name, u.client_cert.as_ref()?)));
    listeners
        .chain(upstreams)
        .filter_map(|(kind, name, cert)| {
            Some(CertificateExpiry {
                kind,
                name: name.clone(),
                not_after: crate::certs::not_after(cert).ok()?,
            })
        })
        .collect()
}

impl Generation {
    /// Loads `path` and builds a generation; every problem found names its file.
    pub(crate) fn load(path: &Path) -> Result<Arc<Self>, ConfigError> {
        // Read once: the hash names exactly the text that was validated.
        let text = config::read(path)?;
        let mut generation = Self::build(config::parse(path, &text)?)?;
        if let Some(built) = Arc::get_mut(&mut generation) {
            built.source_sha256 = crate::audit::hex(
                ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref(),
            );
        }
        Ok(generation)
    }

    /// Builds a generation from a validated configuration, loading every referenced file.
    pub(crate) fn build(config: Config) -> Result<Arc<Self>, ConfigError> {
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
        // Read once (and signature-checked when required): the engine and the field rules
        // are built from the same bytes.
        let policy_set = config.policy.as_ref().and_then(|p| {
            crate::policy::read_activatable(p)
                .map_err(|e| problems.extend(e.problems))
                .ok()
                .map(|set| (p, set))
        });
        let policy = match &policy_set {
            None => None,
            Some((p, set)) => match PolicyEngine::from_snapshot(set) {
                Ok(engine) => {
                    for route in &config.routes {
                        if let Some(action) = &route.action {
                            if !engine.route_actions().contains(action) {
                                problems.push(Problem {
                                    file: p.dir.join("schema.cedarschema"),
                                    at: None,
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
        let protection = match &policy_set {
            None => None,
            Some((p, set)) => Protection::from_texts(
                &p.dir,
                set.text("fields.toml"),
                set.optional_text(crate::protect::ROUTES_FILE),
                &config.routes,
            )
            .map_err(|e| problems.extend(e.problems))
            .ok(),
        };
        let mut warnings = Vec::new();
        if let (Some(p), Some(engine)) = (&config.policy, &policy) {
            warnings.extend(unused_actions(&config, engine, &p.dir));
            path_subjects_name_their_entity(&config, engine, &mut problems);
            if let Some(risk) = &config.risk {
                if let Err(e) = engine.check_risk_windows(&risk.windows) {
                    problems.push(Problem {
                        file: p.dir.join("schema.cedarschema"),
                        at: None,
                        message: format!(
                            "[risk] windows do not fit the schema's `RiskWindows` (declare \
                             `last_<window>?: RiskWindow` for each): {e}"
                        ),
                    });
                }
            }
        }
        if let Some(webhook) = config.risk.as_ref().and_then(|r| r.webhook.as_ref()) {
            // The key and CA read as `serve` reads them, so `check` finds what start would.
            if let Err(e) = crate::risk::WebhookTarget::from_config(webhook) {
                problems.extend(e.problems);
            }
        }
        route_guards(&config, protection.as_ref(), &mut problems);
        services_have_what_they_need(&config, &mut problems);
        audit_keys_read(&config, &mut problems);
        let identity =
            IdentityService::build(&config.clients, &config.issuers, config.totp.as_ref())
                .map_err(|e| problems.extend(e.problems))
                .ok();
        let router = Router::new(&config.routes_served())
            .map_err(|e| {
                problems.push(Problem {
                    file: PathBuf::from("privgate.toml"),
                    at: None,
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
                    at: None,
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
            certificates: certificate_expiry(&config),
            source_sha256: String::new(),
            subject_ids: crate::config::subject::SubjectIds::of(&config.routes),
            warnings,
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

    /// Logs the generation's warnings (at start and on each reload).
    pub(crate) fn log_warnings(&self) {
        for w in &self.warnings {
            tracing::warn!(file = %w.file.display(), "{}", w.message);
        }
    }

    /// Whether `next` can replace this generation without a restart: listeners are bound
    /// once, so their names and addresses must stay the same; the FHE service loads its key
    /// set once, so `[fhe]` must stay the same; traces are set up once, so `[tracing]` too.
    pub(crate) fn check_replaceable_by(
        &self,
        next: &Generation,
        path: &Path,
    ) -> Result<(), ConfigError> {
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
        // The trace exporter and the subscriber layer that feeds it are installed once.
        if self.config.tracing != next.config.tracing {
            return Err(ConfigError::one(
                path,
                "[tracing] changes only on restart (the trace exporter is set up once, at start)",
            ));
        }
        Ok(())
    }
}

/// What the gateway opens at start is there: the keyring lives in the store, and the FHE
/// client key is sealed under the keyring. Checked here, where `check`, start and reload
/// meet, so `check` refuses exactly what start-up would (the key and FHE commands use the
/// same sections on their own and need neither).
fn services_have_what_they_need(config: &Config, problems: &mut Vec<Problem>) {
    let mut refuse = |message: &str| {
        problems.push(Problem {
            file: PathBuf::from("privgate.toml"),
            at: None,
            message: message.to_owned(),
        })
    };
    if config.keys.is_some() && !config.opens_store() {
        refuse(KEYS_NEED_POLICY);
    }
    if config.fhe.is_some() && !(config.opens_store() && config.keys.is_some()) {
        refuse(FHE_NEEDS_KEYRING);
    }
}

/// Why `[keys]` alone cannot serve; start-up says the same should it ever get that far.
pub(super) const KEYS_NEED_POLICY: &str =
    "[keys] needs [policy] (protected routes are policy-decided)";
/// Why `[fhe]` without the store and keyring cannot serve.
pub(super) const FHE_NEEDS_KEYRING: &str =
    "[fhe] needs [policy] and [keys] (its client key is sealed under the keyring)";

/// The audit keys `[audit]` names are usable: start-up opens the chain with them, so a
/// missing or short key is refused here, where `check`, start and reload meet, like a
/// certificate that does not load.
fn audit_keys_read(config: &Config, problems: &mut Vec<Problem>) {
    let Some(audit) = &config.audit else { return };
    let files = std::iter::once(&audit.checkpoint_key_file).chain(&audit.pseudonym_key_file);
    for file in files {
        if let Err(message) = crate::audit::AuditKey::read(file) {
            problems.push(Problem {
                file: file.clone(),
                at: None,
                message,
            });
        }
    }
}

/// Where the configured routes and the policy set's field rules meet: no route reaches the
/// upstream paths a decided route guards without the same guards ([`config::reach`]), and
/// a route whose field rules name data subjects declares the one form their ids take.
fn route_guards(config: &Config, protection: Option<&Protection>, problems: &mut Vec<Problem>) {
    let covered = |route: &str| protection.is_some_and(|p| p.covers(route));
    for message in config::reach::check(config, &covered) {
        problems.push(Problem {
            file: PathBuf::from("privgate.toml"),
            at: None,
            message,
        });
    }
    let Some(protection) = protection else { return };
    for route in config.routes.iter().filter(|r| r.subject.is_none()) {
        let names = [BodySide::Request, BodySide::Response]
            .into_iter()
            .any(|side| protection.names_subjects(&route.name, side));
        if names {
            problems.push(Problem {
                file: PathBuf::from("privgate.toml"),
                at: None,
                message: format!(
                    "route `{}`: its field rules (routes.toml) name data subjects, so the \
                     route must declare the one form their ids take, e.g. \
                     subject = {{ id = \"integer\" }} (or with `from` when the route itself \
                     names its subject)",
                    route.name
                ),
            });
        }
    }
}

/// A subject taken from the path is only for paths that name the subject's entity: the
/// prefix ends in that entity's collection (`/customers`, `/review/customers` for a
/// `Customer`), so `/accounts/{id}` can never be decided as if the account id were a
/// customer's. Paths naming another entity take the subject from the request or the
/// upstream's answer instead.
fn path_subjects_name_their_entity(
    config: &Config,
    engine: &PolicyEngine,
    problems: &mut Vec<Problem>,
) {
    for route in &config.routes {
        let (Some(action), Some(subject)) = (&route.action, &route.subject) else {
            continue;
        };
        if subject.from != Some(config::SubjectFrom::Path) {
            continue;
        }
        let Some(entity) = engine.resource_type(action) else {
            continue;
        };
        let named = route
            .path_prefix
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let entity_lower = entity.to_ascii_lowercase();
        let names_it = [
            entity_lower.clone(),
            format!("{entity_lower}s"),
            format!("{entity_lower}es"),
        ]
        .contains(&named);
        if !names_it {
            problems.push(Problem {
                file: PathBuf::from("privgate.toml"),
                at: None,
                message: format!(
                    "route `{}`: subject from = \"path\" would take the segment after `{}` \
                     as a {entity} id (the data subject of `{action}`), but that path names \
                     `{named}`; take the subject from the upstream's answer (from = \
                     \"response\", selector = \"$.customer_id\") or the request instead",
                    route.name, route.path_prefix
                ),
            });
        }
    }
}

/// Route actions the policy set declares (and may hold policies for) that no route names:
/// those policies decide nothing, and whatever they promise (a second factor above an
/// amount, consent) is not enforced on a route that reaches the same service without the
/// action. The gateway's own services' actions are used by the gateway itself.
fn unused_actions(config: &Config, engine: &PolicyEngine, dir: &Path) -> Vec<Problem> {
    let served: Vec<&str> = config::GatewayService::ALL
        .iter()
        .flat_map(|s| s.actions().iter().copied())
        .collect();
    let scoped = engine.scoped_actions();
    engine
        .route_actions()
        .iter()
        .filter(|a| !served.contains(&a.as_str()))
        .filter(|a| !config.routes.iter().any(|r| r.action.as_ref() == Some(*a)))
        .map(|action| {
            let policies: Vec<&str> = scoped
                .iter()
                .filter(|(_, a)| a == action)
                .map(|(id, _)| id.as_str())
                .collect();
            let named = match policies.as_slice() {
                [] => String::new(),
                ids => format!(" (policies {} decide nothing)", ids.join(", ")),
            };
            Problem {
                file: dir.join("schema.cedarschema"),
                at: None,
                message: format!("action `{action}` is used by no route{named}"),
            }
        })
        .collect()
}

//! `privgate.toml`: the operator's configuration.
//!
//! The schema is plain serde types with defaults from `defaults`; [`load`] parses a file,
//! resolves relative paths against the file's directory and validates everything the file
//! references, so a [`Config`] that exists is one the gateway can serve.

mod console;
mod credentials;
pub mod dataset;
pub(crate) mod defaults;
mod effective;
mod identity;
pub(crate) mod keys;
mod load;
mod locate;
mod mfa;
mod problems;
pub(crate) mod reach;
pub mod risk;
pub(crate) mod subject;
mod traces;

pub use console::ConsoleConfig;
pub use dataset::DatasetConfig;
pub use identity::{IssuerConfig, StepUpConfig, HMAC_ALGORITHMS};
pub use keys::{Argon2Config, KekSource, KeysConfig};
pub use mfa::{
    Rate, RateLimitConfig, TotpAlgorithm, TotpConfig, TotpEnrollmentConfig, TotpEnrollmentMode,
};

pub use effective::{effective_toml, REDACTED};
pub use load::{load, parse, read};
pub use locate::Location;
pub(crate) use problems::Problems;
pub use problems::{ConfigError, Problem};
pub use traces::TracingConfig;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole operator configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// TLS listeners clients connect to (at least one).
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// The plain-HTTP operations listener (health, readiness, metrics).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Limits and timeouts on client traffic.
    #[serde(default)]
    pub limits: Limits,
    /// How forwarding headers are treated.
    #[serde(default)]
    pub forwarding: Forwarding,
    /// Named upstream services.
    #[serde(rename = "upstream", default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Routes from (host, path prefix, method) to upstreams, most specific match wins.
    #[serde(rename = "route", default)]
    pub routes: Vec<RouteConfig>,
    /// Where persistent state (consent records, later keys and ledgers) lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// The audit trail; off (with a warning at start) when absent.
    pub audit: Option<AuditConfig>,
    /// The policy set; routes with an `action` are decided by it.
    pub policy: Option<PolicyConfig>,
    /// Registered machine clients, identified by their mutual-TLS certificate.
    #[serde(rename = "client", default)]
    pub clients: Vec<ClientConfig>,
    /// The keyring: where the key-encryption key comes from; field protection needs it.
    pub keys: Option<KeysConfig>,
    /// Access-token issuers whose tokens identify callers (see `identity`).
    #[serde(rename = "issuer", default)]
    pub issuers: Vec<IssuerConfig>,
    /// Gateway-native TOTP (`[totp]`); absent: no enrollment endpoints, `X-OTP` ignored.
    pub totp: Option<TotpConfig>,
    /// Default rate limits for every route (`[rate_limit]`); none by default.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Datasets analysts may query with differential privacy (`[[dataset]]`).
    #[serde(rename = "dataset", default)]
    pub datasets: Vec<DatasetConfig>,
    /// Encrypted sums (`[fhe]`); absent: the FHE keys are never loaded.
    pub fhe: Option<FheConfig>,
    /// Live risk indicators, thresholds and responses (`[risk]`); absent: none kept.
    pub risk: Option<risk::RiskConfig>,
    /// OpenTelemetry traces (`[tracing]`); absent: none made, trace headers pass untouched.
    pub tracing: Option<TracingConfig>,
    /// How people sign in to the web console (`[console]`, with a `serve = "console"`
    /// route); absent: no console.
    pub console: Option<ConsoleConfig>,
}

impl Config {
    /// Whether the gateway opens the store: policy decisions read consent from it, token
    /// issuers keep revocations and TOTP state there, and the web console its sessions
    /// (`[console]` also needs an issuer, so it never runs without a store). Validation and
    /// start-up both ask this, so what needs the store is refused by `check` exactly when
    /// `serve` would fail.
    pub fn opens_store(&self) -> bool {
        self.policy.is_some()
            || !self.issuers.is_empty()
            || self.risk.is_some()
            || self.console.is_some()
    }
}

/// Encrypted sums: where the key set is (`privgate fhe keygen`) and the floor on the
/// number of distinct organisations a release needs, which an aggregate's creator cannot
/// lower.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FheConfig {
    /// Directory of the key set (relative to this file).
    #[serde(default = "default_fhe_dir")]
    pub dir: PathBuf,
    /// Fewest distinct organisations any aggregate may require for a release.
    #[serde(default = "default_fhe_floor")]
    pub min_organisations_floor: u64,
    /// Contributions per batch of new aggregates (each batch's encrypted partial total is
    /// folded once the batch is full).
    #[serde(default = "default_fhe_batch_size")]
    pub batch_size: u32,
}

fn default_fhe_batch_size() -> u32 {
    defaults::FHE_BATCH_SIZE
}

fn default_fhe_dir() -> PathBuf {
    PathBuf::from("fhe")
}

fn default_fhe_floor() -> u64 {
    defaults::FHE_MIN_ORGANISATIONS_FLOOR
}

/// Where the policy set lives.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directory with schema.cedarschema, fields.toml and *.cedar (security teams' files).
    #[serde(default = "default_policy_dir")]
    pub dir: PathBuf,
    /// Public keys (`privgate policy keygen`) whose signature a policy set must carry to be
    /// activated; empty: sets are not signed. Kept outside `dir`, which their holders
    /// cannot then replace by writing the policy directory.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
}

fn default_policy_dir() -> PathBuf {
    PathBuf::from("policies")
}

/// A registered client: a service that calls with a client certificate.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Principal id (Cedar `PrivGate::Service`).
    pub id: String,
    /// SHA-256 (hex) of its certificate (`privgate certs thumbprint FILE`).
    pub certificate_sha256: String,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Organisation: who its consents are granted to (the client id if absent).
    pub organisation: Option<String>,
    /// Purposes it is registered for; `X-Purpose` picks one of these, never another.
    #[serde(default)]
    pub purposes: Vec<String>,
}

/// Where the audit chain and its checkpoints are written.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Directory of chain files, one per replica (`<dir>/<replica>.jsonl`).
    #[serde(default = "default_audit_dir")]
    pub dir: PathBuf,
    /// This replica's id; the host name if absent.
    pub replica: Option<String>,
    /// File checkpoints are appended to; put it on another file system or a mount the
    /// gateway's operators cannot rewrite.
    pub checkpoint_sink: PathBuf,
    /// File holding the checkpoint HMAC key (at least 32 random bytes).
    pub checkpoint_key_file: PathBuf,
    /// File holding the key that turns data-subject ids into pseudonyms (at least 32 random
    /// bytes, distinct from the checkpoint key); without it records name no subject.
    pub pseudonym_key_file: Option<PathBuf>,
    /// Records between checkpoints.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// Longest time between checkpoints while records arrive.
    #[serde(default = "default_checkpoint_interval", with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// A response revealing personal data in clear leaves only once its audit record is on
    /// disk (fsync'd); false trades that guarantee for latency.
    #[serde(default = "default_durable_reveals")]
    pub durable_reveals: bool,
    /// Seal the chain's current segment and start the next once it holds this many bytes
    /// (0: never by size).
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: u64,
    /// Seal the chain's current segment once its first record is this old (0s: never by
    /// age).
    #[serde(default = "default_rotate_after", with = "humantime_serde")]
    pub rotate_after: Duration,
}

fn default_rotate_bytes() -> u64 {
    defaults::AUDIT_ROTATE_BYTES
}
fn default_rotate_after() -> Duration {
    defaults::AUDIT_ROTATE_AFTER
}

fn default_durable_reveals() -> bool {
    defaults::AUDIT_DURABLE_REVEALS
}

fn default_audit_dir() -> PathBuf {
    PathBuf::from("audit")
}
fn default_checkpoint_every() -> u64 {
    defaults::AUDIT_CHECKPOINT_EVERY
}
fn default_checkpoint_interval() -> Duration {
    defaults::AUDIT_CHECKPOINT_INTERVAL
}

impl AuditConfig {
    /// The replica id: configured, else the host name.
    pub fn replica_id(&self) -> String {
        self.replica.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "replica".to_owned())
        })
    }
}

/// The store: a SQLite file (default) or a PostgreSQL server shared by replicas.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (relative to the config file's directory) or `postgres://USER@HOST/DB`.
    /// Never a password: the config is quoted in logs when a reload is rejected.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// File holding the PostgreSQL password (its first line).
    pub password_file: Option<PathBuf>,
    /// The longest a consent withdrawal or token revocation made elsewhere (another replica,
    /// the CLI) can go unnoticed here: answers are cached at most this long, and never past
    /// a change this process has been told of. `0s`: read the store on every request.
    /// At most 5 s; applies on restart.
    #[serde(default = "default_revocation_window", with = "humantime_serde")]
    pub revocation_window: Duration,
    /// Whether opening the store applies pending schema migrations (`true`, the default).
    /// `false`: it only checks that the schema is this version's and refuses to start
    /// otherwise, so the gateway's database role needs no DDL rights; `privgate store
    /// migrate` applies them.
    #[serde(default = "default_true")]
    pub migrate: bool,
}

fn default_true() -> bool {
    true
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: default_store_url(),
            password_file: None,
            revocation_window: default_revocation_window(),
            migrate: true,
        }
    }
}

fn default_store_url() -> String {
    defaults::STORE_URL.to_owned()
}

fn default_revocation_window() -> Duration {
    defaults::REVOCATION_WINDOW
}

/// One TLS listener.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Name used in logs and metrics.
    pub name: String,
    /// Socket address to bind, e.g. `0.0.0.0:8443`.
    pub address: SocketAddr,
    /// PEM certificate chain (leaf first), preferably ECDSA P-256.
    pub cert: PathBuf,
    /// PEM private key for `cert`.
    pub key: PathBuf,
    /// Optional second chain (e.g. RSA) served only to clients that cannot verify `cert`.
    pub fallback_cert: Option<PathBuf>,
    /// Private key for `fallback_cert`.
    pub fallback_key: Option<PathBuf>,
    /// PEM bundle of CAs whose client certificates are accepted (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is required, optional, or not asked for.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// HTTP Strict Transport Security for listeners that serve browsers: every response on
    /// the listener, refusals included, carries the header.
    pub hsts: Option<Hsts>,
}

/// An HSTS policy (RFC 6797): browsers that saw it use only HTTPS for the host afterwards.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hsts {
    /// How long browsers remember the policy (`max-age`).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Whether the policy covers subdomains too.
    #[serde(default)]
    pub include_subdomains: bool,
    /// Whether to ask for inclusion in browsers' preload lists (needs subdomains and a year).
    #[serde(default)]
    pub preload: bool,
}

impl Hsts {
    /// Shortest `max_age` the browsers' preload lists accept.
    pub const PRELOAD_MIN_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

    /// The `Strict-Transport-Security` header value.
    pub fn header_value(&self) -> String {
        let mut value = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if self.preload {
            value.push_str("; preload");
        }
        value
    }
}

/// Mutual TLS mode of a listener.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is requested.
    #[default]
    None,
    /// A certificate is requested; if presented it must chain to `client_ca`.
    Optional,
    /// The handshake fails without a certificate chaining to `client_ca`.
    Required,
}

/// The operations listener (its address), and how admin operations are approved.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the plain-HTTP operations listener (health, readiness, metrics);
    /// loopback by default.
    #[serde(default = "default_admin_address")]
    pub address: SocketAddr,
    /// Distinct principals who must approve a destructive key operation (shred, retire,
    /// restore); the requester counts as the first. Above 1, `privgate keys shred|retire|
    /// restore` refuse and point to `privgate admin request`.
    #[serde(default = "default_approvals_required")]
    pub approvals_required: u32,
    /// Distinct principals who must approve revoking a consent on its subject's behalf (the
    /// console's Revoke, `POST /consents/{id}/revoke`, `privgate consent revoke`); the
    /// requester counts as the first. Above 1, `privgate consent revoke` refuses and points
    /// to `privgate admin request consent-revoke`.
    #[serde(default = "default_consent_revocation_approvals")]
    pub consent_revocation_approvals: u32,
    /// How long a requested operation can be approved before it expires.
    #[serde(default = "default_approval_ttl", with = "humantime_serde")]
    pub approval_ttl: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            address: default_admin_address(),
            approvals_required: default_approvals_required(),
            consent_revocation_approvals: default_consent_revocation_approvals(),
            approval_ttl: default_approval_ttl(),
        }
    }
}

fn default_approvals_required() -> u32 {
    defaults::ADMIN_APPROVALS_REQUIRED
}

fn default_consent_revocation_approvals() -> u32 {
    defaults::CONSENT_REVOCATION_APPROVALS
}

fn default_approval_ttl() -> Duration {
    defaults::ADMIN_APPROVAL_TTL
}

fn default_admin_address() -> SocketAddr {
    defaults::ADMIN_ADDRESS
        .parse()
        .expect("default admin address is a valid socket address")
}

/// Limits and timeouts on client traffic; see `defaults` for the reason behind each value.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Maximum size of a request head in bytes.
    pub max_header_bytes: usize,
    /// Maximum number of request headers.
    pub max_headers: usize,
    /// Maximum request body size in bytes (413 above it).
    pub max_body_bytes: u64,
    /// Maximum buffered response body size in bytes (502 above it).
    pub max_response_body_bytes: u64,
    /// Maximum JSON nesting depth of buffered bodies.
    pub max_json_depth: usize,
    /// Time allowed for the TLS handshake and for each request head.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Connections with no request in flight close after this long.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Time a client has to send a whole request body, from its head (slow body: 408).
    #[serde(with = "humantime_serde")]
    pub request_body_timeout: Duration,
    /// Time a write to the client may stay blocked because it does not read (slow reader):
    /// the connection is closed.
    #[serde(with = "humantime_serde")]
    pub client_write_timeout: Duration,
    /// Maximum concurrent connections per listener.
    pub max_connections: usize,
    /// Maximum concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Time in-flight requests get to finish on shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_headers: defaults::MAX_HEADERS,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            max_response_body_bytes: defaults::MAX_RESPONSE_BODY_BYTES,
            max_json_depth: defaults::MAX_JSON_DEPTH,
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            idle_timeout: defaults::IDLE_TIMEOUT,
            request_body_timeout: defaults::REQUEST_BODY_TIMEOUT,
            client_write_timeout: defaults::CLIENT_WRITE_TIMEOUT,
            max_connections: defaults::MAX_CONNECTIONS,
            max_concurrent_streams: defaults::MAX_CONCURRENT_STREAMS,
            shutdown_grace: defaults::SHUTDOWN_GRACE,
        }
    }
}

/// Treatment of `X-Forwarded-*` headers arriving from clients.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Forwarding {
    /// Append to an incoming `X-Forwarded-For` instead of replacing it. Only for a gateway
    /// behind a trusted load balancer: otherwise clients can forge the chain.
    pub trust_incoming_forwarded_for: bool,
    /// Extra request headers that only the gateway may set: incoming copies are removed.
    pub internal_headers: Vec<String>,
    /// Client-asserted headers (identity, client certificate, address, URL-rewrite and
    /// method-override headers, removed from what clients send by default) that this
    /// deployment's upstreams need from clients as they are. Each must be one the gateway
    /// removes (see SECURITY.md); `Authorization` is a route's `forward_authorization`.
    pub pass_client_headers: Vec<String>,
}

/// A named upstream service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL, `http://` or `https://`, optionally with a path prefix.
    pub url: String,
    /// PEM bundle of CAs that may sign the upstream's certificate (required for https).
    pub ca: Option<PathBuf>,
    /// PEM client certificate presented to the upstream (mutual TLS).
    pub client_cert: Option<PathBuf>,
    /// Private key for `client_cert`.
    pub client_key: Option<PathBuf>,
    /// TCP (and TLS) connect timeout.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time to the upstream's response head.
    #[serde(default = "default_response_timeout", with = "humantime_serde")]
    pub response_timeout: Duration,
    /// Idle pooled connections close after this long.
    #[serde(default = "default_pool_idle_timeout", with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept open.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle: usize,
}

fn default_connect_timeout() -> Duration {
    defaults::UPSTREAM_CONNECT_TIMEOUT
}
fn default_response_timeout() -> Duration {
    defaults::UPSTREAM_RESPONSE_TIMEOUT
}
fn default_pool_idle_timeout() -> Duration {
    defaults::UPSTREAM_POOL_IDLE_TIMEOUT
}
fn default_pool_max_idle() -> usize {
    defaults::UPSTREAM_POOL_MAX_IDLE
}

/// A route: which requests go to which upstream, and how their bodies are handled.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name used in logs, metrics and (later) policies.
    pub name: String,
    /// Exact host (`api.bank.example`) or wildcard (`*.bank.example`); any host if absent.
    pub host: Option<String>,
    /// Path prefix, matched on whole segments: `/accounts` matches `/accounts/7`, not `/accountsx`.
    pub path_prefix: String,
    /// Allowed methods; any method if absent.
    pub methods: Option<Vec<String>>,
    /// Name of an `[upstream.NAME]` table; empty for routes the gateway serves itself.
    #[serde(default)]
    pub upstream: String,
    /// A service the gateway answers itself instead of forwarding (e.g. `admin_api`); such
    /// a route has no upstream and always identifies its callers.
    pub serve: Option<GatewayService>,
    /// Remove `path_prefix` before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Whether bodies stream through or are buffered for inspection.
    #[serde(default)]
    pub body: BodyMode,
    /// The policy action this route is (e.g. `customers:read`); requires `[policy]`.
    pub action: Option<String>,
    /// The data subject (`[route.subject]`): where its id is and the one spelling it may
    /// take (see [`SubjectConfig`]). Needs an action.
    pub subject: Option<SubjectConfig>,
    /// RFC 9535 JSONPath to the request's amount in minor units (e.g. `$.amount_minor`),
    /// given to policies as `context.amount`. Needs `body = "buffered"`; such routes are
    /// decided after the body is read, and a request without exactly one integer there is
    /// refused.
    pub amount: Option<String>,
    /// Callers must be identified (token or registered client) even without an action;
    /// always so on routes with an action, `step_up` or `require_bound_token`.
    #[serde(default)]
    pub authenticate: bool,
    /// Only certificate-bound tokens (RFC 8705) are accepted.
    #[serde(default)]
    pub require_bound_token: bool,
    /// The authentication level callers need (RFC 9470 step-up).
    pub step_up: Option<StepUpConfig>,
    /// `inbound` (default): clients call an internal service; field rules protect the
    /// request and reveal the response. `outbound`: an internal service calls an external
    /// party; field rules reveal the request (as decided for the internal caller) and
    /// protect the response.
    #[serde(default)]
    pub direction: Direction,
    /// This route's rate limits (`[route.rate_limit]`), over the global `[rate_limit]`.
    pub rate_limit: Option<RateLimitConfig>,
    /// Forward the client's `Authorization` header to the upstream (removed by default).
    /// Only on routes that do not identify callers: a credential the gateway checks is
    /// never replayed upstream.
    #[serde(default)]
    pub forward_authorization: bool,
}

impl RouteConfig {
    /// A route as `[[route]]` with only `name`, `path_prefix` and `upstream` reads: every
    /// other field at its default (any host and method, bodies streamed, no policy action,
    /// no identification). Tests, benches and fuzz targets start from it and set what they
    /// need with struct update syntax, so a field the configuration gains is added once.
    pub fn new(name: &str, path_prefix: &str, upstream: &str) -> Self {
        Self {
            name: name.into(),
            host: None,
            path_prefix: path_prefix.into(),
            methods: None,
            upstream: upstream.into(),
            serve: None,
            strip_prefix: false,
            body: BodyMode::default(),
            action: None,
            subject: None,
            amount: None,
            authenticate: false,
            require_bound_token: false,
            step_up: None,
            direction: Direction::default(),
            rate_limit: None,
            forward_authorization: false,
        }
    }
}

/// A service the gateway itself answers on a route.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GatewayService {
    /// The consent and operations admin API (`/consents`, `/operations` under the route's
    /// prefix), each call authorised by policy and audited.
    AdminApi,
    /// Differentially private analytics (`POST /query` under the route's prefix), each
    /// query authorised by policy (`query` on its `Dataset`), budgeted and audited.
    Analytics,
    /// Encrypted sums (`/public-key`, `/aggregates` under the route's prefix); needs
    /// `[fhe]` and a build with the `fhe` feature.
    Fhe,
    /// TOTP enrolment (`POST /enroll`, `POST /confirm` under the route's prefix); needs
    /// `[totp]`. Without such a route, `[totp] path_prefix` makes one ([`Config::routes_served`]).
    Totp,
    /// The web console (HTML pages under the route's prefix); needs `[console]`. People
    /// sign in through the configured issuer; every page is decided by policy.
    Console,
}

impl GatewayService {
    /// Every service.
    pub const ALL: [Self; 5] = [
        Self::AdminApi,
        Self::Analytics,
        Self::Fhe,
        Self::Totp,
        Self::Console,
    ];

    /// The policy actions the service asks (the admin ones also through `privgate admin`).
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Self::AdminApi => &[
                "consent:grant",
                "consent:revoke",
                "consent:read",
                "keys:shred",
                "keys:retire",
                "keys:restore",
                "token:revoke",
                "risk:clear",
            ],
            Self::Analytics => &[
                "query",
                "use_budget_tier",
                "dataset:describe",
                "budget:read",
            ],
            Self::Fhe => &[
                "aggregate:create",
                "aggregate:contribute",
                "aggregate:read",
                "aggregate:release",
            ],
            // Enrolment is the caller's own: no policy decides it.
            Self::Totp => &[],
            // Its pages, who-saw and its approval buttons; what a page does otherwise asks
            // that action's own (consent, analytics, key operations).
            Self::Console => &["console:view", "console:who_saw", "console:approve"],
        }
    }
}

/// Which way personal data crosses the gateway on a route.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Toward internal services, which hold only protected values.
    #[default]
    Inbound,
    /// Toward an external party (card processor, credit bureau) that needs values in clear.
    Outbound,
}

/// A route's data subject: the customer whose data a request concerns (the resource its
/// policy decision and consent are about), where the route finds the id, and the one
/// canonical spelling the id may take on this route.
///
/// ```toml
/// subject = { from = "path", id = "integer" }          # /customers/42
/// subject = { from = "response", selector = "$.customer_id", id = "integer" }
/// subject = { from = "request", selector = "$.id", id = "pattern", pattern = "c-[0-9]{1,12}" }
/// subject = { id = "uuid" }      # the route names none itself; its field rules' subjects
/// ```
///
/// Every subject id the route meets (path, bodies, field rules' `subject` selectors) must be
/// in the declared form; anything else is refused before any consent lookup or key use, so
/// `042`, `+42` and `42` can never be three subjects. The form `subject = "after_prefix"`
/// of earlier versions is refused: it took whatever followed the prefix as a customer id,
/// whatever entity the path named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectConfig {
    /// Where the id is; absent: the route names no subject of its own (its field rules may
    /// name one per element).
    pub from: Option<SubjectFrom>,
    /// RFC 9535 JSONPath to the id, for `from = "request"` and `from = "response"`.
    pub selector: Option<String>,
    /// The id's one accepted spelling.
    pub id: SubjectIdKind,
    /// For `id = "pattern"`: a regular expression the whole id must match.
    pub pattern: Option<String>,
}

/// Where a route's data subject id is.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SubjectFrom {
    /// The first path segment after `path_prefix`: only for paths whose segment there is a
    /// customer id (`/customers/{id}`), never an account, card or other entity's id.
    Path,
    /// A member of the request body (`selector`); the route is decided once its body is read.
    Request,
    /// A member of the upstream's answer (`selector`), for paths that name another entity
    /// (`/accounts/{id}/transactions` answers with its owner's `customer_id`). The request
    /// goes upstream first (safe methods only), and nothing is released before the decision
    /// on that subject.
    Response,
}

/// The canonical spelling of a route's subject ids.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SubjectIdKind {
    /// Decimal digits, no sign, no leading zero (`0` itself allowed), at most `u64::MAX`.
    Integer,
    /// RFC 9562 UUID, lower-case hyphenated (`0f8e...-...`), nothing else.
    Uuid,
    /// The whole id matches `pattern`.
    Pattern,
}

/// `[route.subject]` as written: a table, never the old bare string.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectTable {
    from: Option<SubjectFrom>,
    selector: Option<String>,
    id: SubjectIdKind,
    pattern: Option<String>,
}

impl<'de> Deserialize<'de> for SubjectConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SubjectConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table: subject = { from = \"path\", id = \"integer\" }")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "subject = \"{value}\" is no longer accepted: say where the data subject's \
                     id is and how it is spelled, e.g. subject = {{ from = \"path\", id = \
                     \"integer\" }} when the segment after the prefix is a customer id, or \
                     subject = {{ from = \"response\", selector = \"$.customer_id\", id = \
                     \"integer\" }} when the path names another entity (an account, a card)"
                )))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let t =
                    SubjectTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(SubjectConfig {
                    from: t.from,
                    selector: t.selector,
                    id: t.id,
                    pattern: t.pattern,
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// How a route handles bodies.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BodyMode {
    /// Bodies stream through untouched (size limit still applies).
    #[default]
    Stream,
    /// Bodies are buffered under the limits and must be JSON within the depth limit: the
    /// form field rules need. Anything else is refused, never passed on unexamined.
    Buffered,
}

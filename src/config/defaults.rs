//! Defaults for every limit and timeout, each with the reason for its value.
//!
//! Operators override these in `privgate.toml`; README's configuration reference lists them.

use std::time::Duration;

/// Request head (request line + headers) size. 16 KiB fits large JWTs (a few KiB each) plus
/// the usual headers with room to spare, and matches common proxy defaults (nginx uses
/// 4 x 8 KiB buffers), while bounding the memory a slow client can pin per connection.
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Number of request headers. Real clients send 10 to 30; 100 leaves headroom and stops
/// hash-flooding style abuse of the header map.
pub(crate) const MAX_HEADERS: usize = 100;

/// Request body size. Financial JSON APIs exchange records, not files; 1 MiB holds a page of
/// a few thousand fields, and buffered (field-protected) bodies are held in memory whole.
pub(crate) const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// Response body size on routes whose response is buffered for field rules. Responses are
/// lists more often than requests, so this is larger than the request limit; above it the
/// gateway refuses (502) rather than pass an unexamined body through.
pub(crate) const MAX_RESPONSE_BODY_BYTES: u64 = 8 * 1024 * 1024;

/// JSON nesting depth on buffered routes. Real payloads nest under 10 levels; 64 rejects
/// pathological inputs long before the parser's own recursion guard (128) and keeps the
/// work per body linear in its size.
pub(crate) const MAX_JSON_DEPTH: usize = 64;

/// Time a client has to complete the TLS handshake and then each request head. Defeats
/// slowloris (a client holding a connection by trickling bytes); 10 s is generous for
/// mobile networks and short enough that idle attackers cannot exhaust connections.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection with no request in flight is closed after this long. 60 s keeps keep-alive
/// useful for bursty API clients (shorter than typical client pools' 90 s, so the gateway
/// closes first and clients never reuse a half-closed socket mid-request).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Time a client has to send a whole request body, counted from when the gateway starts
/// reading it. Defeats a slow body (a client holding a connection, and on streamed routes
/// an upstream connection, by trickling the body it announced): 30 s lets the default 1 MiB
/// body arrive at 35 KiB/s, below any mobile link. No longer than the upstream response
/// timeout's default: on a streamed route that clock also runs while the body uploads, and
/// a slow body should be the client's 408, not the upstream's 504.
pub(crate) const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Time a write to a client may stay blocked because the client stopped reading. Defeats a
/// slow reader (a client that asks for a large answer and never reads it, holding the
/// connection and the upstream's); 30 s is far beyond any network stall a live client
/// recovers from, as nginx's `send_timeout` reasons.
pub(crate) const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Concurrent client connections per listener. Each connection costs a task, TLS state
/// (~50 KiB) and buffers; 10,000 fits in well under 1 GiB and beyond it the kernel backlog
/// provides back-pressure instead of the gateway running out of memory.
pub(crate) const MAX_CONNECTIONS: usize = 10_000;

/// Concurrent HTTP/2 streams per connection. 100 is the minimum RFC 9113 recommends
/// advertising and what most servers use; more lets one client monopolise upstream capacity.
pub(crate) const MAX_CONCURRENT_STREAMS: u32 = 100;

/// Time in-flight requests get to finish after SIGTERM before the gateway exits anyway.
/// Shorter than Kubernetes' default 30 s termination grace so the process exits on its own.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// TCP connect to an upstream. Upstreams are on the internal network: a connect slower
/// than 2 s means the host is down or overloaded, and failing fast (502) frees the client.
pub(crate) const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Time from sending a request upstream to receiving its response head. 30 s covers slow
/// reports and batch endpoints; a stuck upstream then gets a 504 instead of holding the
/// client forever.
pub(crate) const UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle pooled upstream connections are closed after this long. 90 s outlives typical gaps
/// between requests (so keep-alive is reused); when an upstream closes first, the pool
/// (`gateway/upstream/pool.rs`) sends a request that met the closed connection before any
/// byte of it was written on another one.
pub(crate) const UPSTREAM_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Idle pooled connections kept per upstream. A connection that comes back to a full pool is
/// closed, so below the number of requests in flight at peak every burst closes connections
/// and the next opens new ones (a TCP, and TLS, handshake to the upstream per request):
/// at 64, HTTP/2 clients with 4 x 100 streams saw ~8% of requests open a new connection and
/// a third of the throughput of 512. 1024 covers 10 HTTP/2 clients at full concurrency;
/// `pool_idle_timeout` still closes what a burst left behind.
pub(crate) const UPSTREAM_POOL_MAX_IDLE: usize = 1024;

/// The operations listener (health, readiness, metrics) is plain HTTP, so it binds to loopback
/// unless the operator deliberately exposes it.
pub(crate) const ADMIN_ADDRESS: &str = "127.0.0.1:9090";

/// Distinct approvers a destructive key operation (shred, retire, restore) needs. 1 keeps a
/// single-operator installation working out of the box (the operation is still requested
/// through an authenticated, policy-checked, audited path); regulated deployments set 2 so
/// that no one person can destroy data for good.
pub(crate) const ADMIN_APPROVALS_REQUIRED: u32 = 1;

/// Approvers of a consent revocation on a customer's behalf, by default: one. The customer
/// asked for it, and while it waits for a second person the processing they withdrew from
/// goes on; a bank that wants four eyes on it sets 2.
pub(crate) const CONSENT_REVOCATION_APPROVALS: u32 = 1;

/// Most approvers an operation can be configured to need: beyond this, operations would in
/// practice never execute, which is a configuration mistake rather than a control.
pub(crate) const ADMIN_MAX_APPROVALS_REQUIRED: u32 = 5;

/// How long a requested operation waits for its approvals: a working day and a night, so a
/// second approver in another shift can act, while a forgotten request does not linger as a
/// loaded gun someone can approve weeks later.
pub(crate) const ADMIN_APPROVAL_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest request id accepted from a client; longer or odd ones are replaced, so a client
/// cannot inject log-breaking or oversized values through the id.
pub(crate) const MAX_REQUEST_ID_LEN: usize = 128;

/// A SQLite file beside the config: zero set-up for a single gateway. Several replicas
/// share a PostgreSQL store instead.
pub(crate) const STORE_URL: &str = "sqlite://privgate.db";

/// How stale a cached token-revocation or consent answer may be: a revocation made through
/// another replica or the CLI holds everywhere at most this long after it commits. A quarter
/// second keeps two store round trips off nearly every request (a repeated caller is read
/// again at most four times a second, the counters polled sixteen times) while staying
/// below what a person can notice between revoking and retrying.
pub(crate) const REVOCATION_WINDOW: std::time::Duration = std::time::Duration::from_millis(250);

/// The longest revocation window a configuration may ask for.
pub(crate) const MAX_REVOCATION_WINDOW: std::time::Duration = std::time::Duration::from_secs(5);

/// Audit records between checkpoints: at most this many records can be cut from the end of
/// a chain without `privgate audit verify` noticing (plus what the interval allows), at the
/// cost of one checkpoint fsync per thousand requests.
pub(crate) const AUDIT_CHECKPOINT_EVERY: u64 = 1000;

/// A quiet gateway still checkpoints its chain this often.
pub(crate) const AUDIT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// Clear reveals wait for their audit record's fsync: "who saw this customer's card number"
/// must survive a crash right after the answer left. Costs one fsync per batch of them.
pub(crate) const AUDIT_DURABLE_REVEALS: bool = true;

/// Audit segments are sealed at 256 MiB: about a million records, small enough to copy,
/// search and delete one at a time, few enough files (a handful a day on a busy replica)
/// for the directory to stay easy to list.
pub(crate) const AUDIT_ROTATE_BYTES: u64 = 256 * 1024 * 1024;

/// ... and once their first record is a day old, so retention can delete by the day.
pub(crate) const AUDIT_ROTATE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// Clock skew allowed on token `exp` and `nbf`. Authorization servers and gateways keep
/// NTP time within a second or two; 30 s absorbs a badly drifting host without letting an
/// expired token live noticeably longer (access tokens typically live 5 to 60 minutes).
pub(crate) const TOKEN_LEEWAY: Duration = Duration::from_secs(30);

/// Largest leeway an operator may configure: beyond five minutes clock skew is a fault to
/// fix, not something to paper over by accepting expired tokens.
pub(crate) const TOKEN_MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Token signature algorithms accepted when an issuer lists none: those FAPI 2.0 allows
/// (PS256, ES256, EdDSA). RS256 (PKCS#1 v1.5) and HMAC must be chosen deliberately.
pub(crate) const TOKEN_ALGORITHMS: &[&str] = &["PS256", "ES256", "EdDSA"];

/// Background JWKS refresh. Issuers publish a new key well before signing with it, and a
/// token naming an unknown key triggers a fetch anyway; 5 minutes keeps removed (possibly
/// compromised) keys from being trusted for long while costing the issuer little.
pub(crate) const JWKS_REFRESH: Duration = Duration::from_secs(300);

/// Least time between two JWKS fetches caused by tokens naming an unknown `kid`. Without a
/// cooldown, anyone could make the gateway hammer the issuer with made-up key ids; 30 s
/// still picks up a rotation within one retry of a client.
pub(crate) const JWKS_REFETCH_COOLDOWN: Duration = Duration::from_secs(30);

/// Time allowed for one JWKS fetch (connect to last byte). The issuer is a remote service;
/// a fetch slower than this fails and the last good key set stays in use.
pub(crate) const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest JWKS document accepted. Real key sets hold a handful of keys (a few KiB);
/// 256 KiB bounds the memory and parse work a misbehaving issuer can cause.
pub(crate) const JWKS_MAX_BYTES: usize = 256 * 1024;

/// Smallest RSA modulus accepted for token signatures, in bits (NIST SP 800-57 and FAPI 2.0
/// require at least 2048); smaller keys in a JWKS are skipped and logged.
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// How long an active RFC 7662 introspection answer is reused for the same opaque token.
/// Each answer is a network round trip to the authorization server; 30 s spares it the
/// bulk of repeated calls while a revocation there takes effect here within 30 s (the
/// gateway's own deny-list, `privgate token revoke`, applies at once regardless).
pub(crate) const INTROSPECTION_CACHE: Duration = Duration::from_secs(30);

/// Longest introspection reuse an operator may configure: beyond 5 minutes a revocation at
/// the authorization server would go unnoticed for too long.
pub(crate) const INTROSPECTION_MAX_CACHE: Duration = Duration::from_secs(300);

/// Distinct organisations an FHE aggregate needs at least before its total is released:
/// with two, each learns the other's value from the total and its own.
pub(crate) const FHE_MIN_ORGANISATIONS_FLOOR: u64 = 3;

/// Contributions per FHE batch: a replaced contribution refolds at most this many, a
/// release folds at most this many and adds one partial per batch (63 for 1,000).
pub(crate) const FHE_BATCH_SIZE: u32 = 16;

/// Requests that start a sampled trace at the gateway (`[tracing]`). All of them: a
/// gateway's request rate is modest next to what a collector takes, and a trace missing for
/// the one request an incident is about costs more than the export; lower it at high rates.
pub(crate) const TRACE_SAMPLE_RATIO: f64 = 1.0;

/// Longest a finished span waits to be exported: OpenTelemetry's own default
/// (`OTEL_BSP_SCHEDULE_DELAY`), so spans reach the collector within seconds while batches
/// stay large under load.
pub(crate) const TRACE_BATCH_DELAY: Duration = Duration::from_secs(5);

/// Time a collector has to take one export: OpenTelemetry's default exporter timeout
/// (`OTEL_EXPORTER_OTLP_TIMEOUT`). Exports run on their own thread, so a slow collector
/// delays spans, never requests.
pub(crate) const TRACE_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

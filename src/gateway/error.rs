//! The request path's one error type.
//!
//! Every phase returns a [`GatewayError`]; only [`super::rescue`] turns one into a response.
//! An error knows which side failed and whether retrying is safe, so status and retry policy
//! are small functions of the error rather than decisions scattered through the phases.
//! The `Display` text is for logs: it may name upstreams and I/O causes, never bodies,
//! header values, tokens or keys.

use super::proxy_body::BoxError;
use crate::identity::IdentityError;
use crate::protect::ProtectError;
use http::Method;
use std::fmt;

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The client sent something the gateway refuses.
    Client,
    /// The upstream service failed or was too slow.
    Upstream,
    /// The gateway itself (overload, shutdown, bug).
    Gateway,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No route matches the host and path.
    #[error("no route matches")]
    NoRoute,
    /// A route matches the path but not the method.
    #[error("method not allowed on this route")]
    MethodNotAllowed {
        /// Methods the matching routes accept.
        allowed: Vec<Method>,
    },
    /// The path has dot-segments or encoded separators that could route around prefixes.
    #[error("ambiguous request path")]
    AmbiguousPath,
    /// The request head could be read more than one way (see `framing`); names the part.
    #[error("malformed request head ({0})")]
    MalformedHead(&'static str),
    /// The request body is larger than `limits.max_body_bytes`.
    #[error("request body over the limit")]
    BodyTooLarge,
    /// The request body did not arrive whole within `limits.request_body_timeout`.
    #[error("request body not received in time")]
    RequestBodyTimeout,
    /// The request body could not be read from the client.
    #[error("reading the request body failed: {0}")]
    ClientBody(#[source] BoxError),
    /// A buffered route received a body that is not JSON.
    #[error("request body is not valid JSON")]
    InvalidJson,
    /// A buffered route received a body that does not say it is JSON as it is (media type,
    /// content coding, a range).
    #[error("request body is not framed as JSON")]
    UnsupportedMediaType,
    /// None of the formats a served API answers in is acceptable under the call's `Accept`.
    #[error("no acceptable response format")]
    NotAcceptable,
    /// A buffered route received JSON nested deeper than `limits.max_json_depth`.
    #[error("request JSON nesting over the limit")]
    JsonTooDeep,
    /// The upstream could not be reached (connect or TLS failure).
    #[error("upstream `{upstream}` unreachable: {}", Causes(cause.as_ref()))]
    UpstreamUnreachable {
        /// Upstream name from config.
        upstream: String,
        /// Underlying error, for logs.
        #[source]
        cause: BoxError,
    },
    /// The upstream did not answer within its response timeout.
    #[error("upstream `{upstream}` timed out")]
    UpstreamTimeout {
        /// Upstream name from config.
        upstream: String,
    },
    /// The upstream broke the protocol or the connection mid-exchange.
    #[error("upstream `{upstream}` failed: {}", Causes(cause.as_ref()))]
    UpstreamFailed {
        /// Upstream name from config.
        upstream: String,
        /// Underlying error, for logs.
        #[source]
        cause: BoxError,
    },
    /// A buffered route's upstream answered with a partial, content-coded or non-JSON body.
    #[error("upstream `{upstream}` response is not whole JSON")]
    UpstreamNotJson {
        /// Upstream name from config.
        upstream: String,
    },
    /// A buffered response was larger than `limits.max_response_body_bytes`.
    #[error("upstream `{upstream}` response over the limit")]
    UpstreamResponseTooLarge {
        /// Upstream name from config.
        upstream: String,
    },
    /// A gateway-served endpoint got a query parameter it does not accept.
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    /// A route decided on its amount got a body without exactly one integer amount there.
    #[error("request amount missing or not an integer")]
    InvalidAmount,
    /// The request names its data subject in a spelling its route does not accept (or,
    /// where the route takes the subject from the request body, names none).
    #[error("data subject id not in the route's form")]
    InvalidSubject,
    /// The upstream's answer did not name exactly one data subject in the route's form:
    /// nothing of it is released.
    #[error("upstream `{upstream}` answered without a valid data subject")]
    ResponseSubject {
        /// Upstream name from config.
        upstream: String,
    },
    /// The identify phase refused the caller's credentials (or found none).
    #[error("identification failed: {0}")]
    Identity(#[from] crate::identity::IdentityError),
    /// A rate limit (`[rate_limit]`, `[route.rate_limit]`) is exhausted for this caller.
    #[error("rate limited ({scope})")]
    RateLimited {
        /// `per_principal` or `per_address`.
        scope: &'static str,
        /// Seconds until a request would be admitted (at least 1).
        retry_after_s: u64,
    },
    /// The policy set refused the request; the reason is the deciding forbid's `@reason`.
    #[error("refused by policy: {reason}")]
    Refused {
        /// Stable reason code.
        reason: String,
    },
    /// Consent could not be read (store down): consent-dependent access fails closed.
    #[error("consent unavailable: {0}")]
    ConsentUnavailable(#[source] crate::store::StoreError),
    /// The risk indicators (or a suspension) could not be read from the store: requests
    /// of identified callers fail closed rather than go unassessed.
    #[error("risk indicators unavailable: {0}")]
    RiskUnavailable(#[source] crate::store::StoreError),
    /// The audit trail cannot be written: requests are refused rather than served unaudited.
    #[error("audit trail unavailable")]
    AuditUnavailable,
    /// Field protection refused the request body (or could not protect it).
    #[error("request protection: {0}")]
    RequestProtection(#[source] ProtectError),
    /// Field protection could not reveal the upstream's response as decided.
    #[error("response protection: {0}")]
    ResponseProtection(#[source] ProtectError),
    /// The gateway's admin API refused or could not carry out a call.
    #[error("admin API: {0}")]
    Admin(#[from] crate::approval::AdminError),
    /// A differentially private query got no answer (refused SQL, budget, source down).
    #[error("analytics: {0}")]
    Analytics(#[from] crate::analytics::dp::AnalyticsError),
    /// The encrypted-sum API refused or could not carry out a call.
    #[cfg(feature = "fhe")]
    #[error("FHE: {0}")]
    Fhe(#[from] crate::analytics::fhe::FheError),
    /// The web console refused a sign-in or a form, or could not reach the issuer.
    #[error("console: {0}")]
    Console(#[from] ConsoleError),
    /// The policy set could not decide a request the gateway built (a bug: validation
    /// checks actions and classes against the schema).
    #[error("policy evaluation failed: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    /// A served API's answer could not be encoded as JSON (a bug).
    #[error("encoding the answer failed: {0}")]
    Encode(#[source] serde_json::Error),
    /// A bug or inconsistency inside the gateway, with no error of its own to carry.
    #[error("internal error: {0}")]
    Internal(String),
}

/// An error and its sources, `: `-joined, for the log line of a cause from a library
/// (hyper's connect errors say what failed only in their sources).
struct Causes<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

impl GatewayError {
    /// Which side caused the failure.
    pub(crate) fn side(&self) -> Side {
        match self {
            Self::NoRoute
            | Self::MethodNotAllowed { .. }
            | Self::AmbiguousPath
            | Self::MalformedHead(_)
            | Self::RequestBodyTimeout
            | Self::BodyTooLarge
            | Self::ClientBody(_)
            | Self::InvalidJson
            | Self::UnsupportedMediaType
            | Self::NotAcceptable
            | Self::JsonTooDeep
            | Self::InvalidAmount
            | Self::InvalidSubject
            | Self::InvalidParameter(_)
            | Self::RateLimited { .. }
            | Self::Refused { .. } => Side::Client,
            #[cfg(feature = "fhe")]
            Self::Fhe(e) if e.is_client() => Side::Client,
            #[cfg(feature = "fhe")]
            Self::Fhe(_) => Side::Gateway,
            Self::Admin(e) if e.is_client() => Side::Client,
            Self::Admin(_) => Side::Gateway,
            Self::Analytics(e) if e.is_client() => Side::Client,
            Self::Analytics(_) => Side::Gateway,
            Self::Console(e) if e.is_client() => Side::Client,
            Self::Console(ConsoleError::Issuer(_)) => Side::Upstream,
            Self::Console(_) => Side::Gateway,
            Self::Identity(e) if e.is_client() => Side::Client,
            Self::Identity(_) => Side::Gateway,
            Self::UpstreamUnreachable { .. }
            | Self::UpstreamTimeout { .. }
            | Self::UpstreamFailed { .. }
            | Self::UpstreamNotJson { .. }
            | Self::UpstreamResponseTooLarge { .. }
            | Self::ResponseSubject { .. } => Side::Upstream,
            Self::RequestProtection(e) if !e.is_gateway_fault() => Side::Client,
            Self::ResponseProtection(e) if !e.is_gateway_fault() => Side::Upstream,
            Self::RequestProtection(_)
            | Self::ResponseProtection(_)
            | Self::ConsentUnavailable(_)
            | Self::RiskUnavailable(_)
            | Self::AuditUnavailable
            | Self::Policy(_)
            | Self::Encode(_)
            | Self::Internal(_) => Side::Gateway,
        }
    }

    /// Whether a client may safely send the same request again (it did not reach an
    /// upstream, or the gateway refused it before any effect).
    pub fn retry_safe(&self) -> bool {
        matches!(self, Self::UpstreamUnreachable { .. })
    }

    /// `Retry-After` seconds: when a limit or lockout ends, or soon for a safe retry.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_s, .. }
            | Self::Identity(IdentityError::OtpLocked { retry_after_s, .. })
            | Self::Analytics(crate::analytics::dp::AnalyticsError::BudgetExhausted {
                retry_after_s,
                ..
            }) => Some(*retry_after_s),
            _ => self.retry_safe().then_some(1),
        }
    }

    /// The audit record's decision: `deny`/`error` by side, named for the refusals an
    /// abuse review looks for (the code itself is never recorded).
    pub(crate) fn audit_decision(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "deny_rate_limited",
            Self::AuditUnavailable => super::record::NOT_RECORDABLE,
            Self::Analytics(crate::analytics::dp::AnalyticsError::BudgetExhausted { .. }) => {
                "deny_budget_exhausted"
            }
            Self::Identity(IdentityError::OtpInvalid(_)) => "deny_otp_invalid",
            Self::Identity(IdentityError::OtpLocked { .. }) => "deny_otp_locked",
            _ if self.side() == Side::Client => "deny",
            _ => "error",
        }
    }

    /// The security event this refusal is, for metrics: `(event, reason)`, both fixed
    /// strings (never request content).
    pub(crate) fn security_event(&self) -> Option<(&'static str, &'static str)> {
        use IdentityError as I;
        let Self::Identity(e) = self else {
            return match self {
                Self::RateLimited { scope, .. } => Some(("rate_limited", *scope)),
                _ => None,
            };
        };
        Some(match e {
            I::Missing => ("credentials_refused", "missing"),
            I::InvalidRequest(why) | I::InvalidToken(why) => ("token_refused", *why),
            I::InvalidApiKey(why) => ("api_key_refused", *why),
            I::StepUp(_) => ("step_up_challenge", "insufficient"),
            I::OtpInvalid(why) => ("otp_failure", *why),
            I::OtpLocked { started: true, .. } => ("otp_lockout", "started"),
            I::OtpLocked { started: false, .. } => ("otp_failure", "locked"),
            I::OtpEnrollmentPending => ("otp_enrollment_refused", "pending elsewhere"),
            I::OtpEnrollmentByOperator => ("otp_enrollment_refused", "by operator"),
            I::OtpAlreadyEnrolled
            | I::OtpUnavailable(_)
            | I::ApiKeysUnavailable(_)
            | I::RevocationUnavailable(_)
            | I::IntrospectionUnavailable(_) => return None,
        })
    }

    /// Label for the upstream-errors metric, if the upstream side failed.
    pub(crate) fn upstream_error_kind(&self) -> Option<(&str, &'static str)> {
        match self {
            Self::UpstreamUnreachable { upstream, .. } => Some((upstream, "unreachable")),
            Self::UpstreamTimeout { upstream } => Some((upstream, "timeout")),
            Self::UpstreamFailed { upstream, .. } => Some((upstream, "failed")),
            Self::UpstreamResponseTooLarge { upstream } => Some((upstream, "response_too_large")),
            Self::ResponseSubject { upstream } => Some((upstream, "subject_invalid")),
            Self::UpstreamNotJson { upstream } => Some((upstream, "not_json")),
            _ => None,
        }
    }
}

/// A console sign-in or form that was refused, or an issuer that did not answer. Only
/// classifies; the rescue step decides what the person is told.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The callback did not match a sign-in started here (state, cookie, age), or the
    /// issuer refused the code.
    #[error("sign-in failed")]
    SignInFailed,
    /// A state-changing form without this session's CSRF token or from another origin.
    #[error("form refused (CSRF check)")]
    FormRefused,
    /// A form or query parameter missing or malformed.
    #[error("invalid form: {0}")]
    Invalid(&'static str),
    /// The session or sign-in table is full.
    #[error("session table full")]
    Busy,
    /// Sessions and sign-ins live in the store, which could not be read or written: no
    /// session is accepted or opened without it.
    #[error("console sessions unavailable: {0}")]
    Store(#[source] crate::store::StoreError),
    /// Reading or verifying the audit trail for a page took longer than its bound.
    #[error("audit trail read timed out")]
    TrailTimeout,
    /// The token endpoint failed (for the log; names no code or token).
    #[error("issuer: {0}")]
    Issuer(String),
}

impl ConsoleError {
    /// Whether the person's own request is at fault (else the issuer or the gateway).
    pub(crate) fn is_client(&self) -> bool {
        matches!(
            self,
            Self::SignInFailed | Self::FormRefused | Self::Invalid(_)
        )
    }
}

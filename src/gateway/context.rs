//! The request context: what one request carries through the phases of [`super::proxy`].
//!
//! Like Pingora's per-request `CTX`, one [`RequestContext`] is made when a request arrives
//! and passed, as `&mut`, to every phase; a phase takes the context plus only what is its own
//! input (a body, a point in the path), reads what earlier phases learned from it and leaves
//! what it learned in it. Fields fill in the order of the path: the generation and the
//! request head from the start, the route once routed, the identity once identified, the
//! decision once decided; the [`RequestRecord`] gathers, as they go, what the record phase
//! writes at the end whatever the outcome.
//!
//! The context holds the generation the request started on (one snapshot, so a reload
//! mid-request never mixes two configurations) by reference: the request handler keeps the
//! `Arc` alive for the request's lifetime.

use super::error::GatewayError;
use super::generation::Generation;
use super::headers;
use super::router::Route;
use super::state::{ConnectionInfo, Shared};
use super::upstream::Upstream;
use crate::decision::Decision;
use crate::identity::Identity;
use crate::policy::DecisionRequest;
use crate::protect::Protection;
use http::request::Parts;
use std::time::Instant;

/// One request on its way through the phases.
pub(crate) struct RequestContext<'a> {
    /// State every connection shares (store, keys, audit trail, metrics).
    pub(crate) shared: &'a Shared,
    /// The configuration generation this request runs on, start to end.
    pub(crate) generation: &'a Generation,
    /// The connection the request came on (listener, client address, certificate).
    pub(crate) conn: &'a ConnectionInfo,
    /// When the request arrived (the record phase's latency).
    pub(crate) started: Instant,
    /// The request head. The protect phase adjusts its framing headers; the forward phase
    /// sends it upstream, keeping a copy only for routes decided after the response (the
    /// decision reads the client's purpose header), so later phases must not rely on it.
    pub(crate) parts: Parts,
    /// The host the client addressed, without port (set by routing).
    pub(crate) host: Option<String>,
    /// The route, once routed.
    pub(crate) route: Option<&'a Route>,
    /// The caller, once identified (routes that ask nothing of callers leave it `None`).
    pub(crate) identity: Option<Identity>,
    /// The amount the request body states (routes with `amount`), once the body is read.
    pub(crate) amount: Option<i64>,
    /// The route's decision, once decided (policy-decided routes only).
    pub(crate) decided: Option<Decided>,
    /// The caller's risk indicators before this request, once assessed (`[risk]`).
    pub(crate) risk: Option<crate::policy::RiskFacts>,
    /// What the phases learned, for the record phase.
    pub(crate) record: RequestRecord,
}

/// A route's decision with the request it answered: per-subject views ask that request
/// again for each further data subject a body holds.
pub(crate) struct Decided {
    /// The policy set's answer (views, refusal, deciding policies).
    pub(crate) decision: Decision,
    /// What was asked.
    pub(crate) request: DecisionRequest,
}

impl<'a> RequestContext<'a> {
    /// The context of a request that has just arrived: gives it a request id (the client's
    /// if well-formed) and opens its record.
    pub(crate) fn new(
        shared: &'a Shared,
        generation: &'a Generation,
        conn: &'a ConnectionInfo,
        mut parts: Parts,
    ) -> Self {
        let request_id = headers::ensure_request_id(&mut parts.headers);
        let record = RequestRecord::new(conn, request_id, &parts);
        Self {
            shared,
            generation,
            conn,
            started: Instant::now(),
            parts,
            host: None,
            route: None,
            identity: None,
            amount: None,
            decided: None,
            risk: None,
            record,
        }
    }

    /// The route; an internal error in a phase that runs before routing.
    pub(crate) fn route(&self) -> Result<&'a Route, GatewayError> {
        self.route
            .ok_or_else(|| GatewayError::Internal("a phase ran before routing".into()))
    }

    /// The field rules that cover the route, when any do.
    pub(crate) fn protection(&self) -> Option<&'a Protection> {
        let route = self.route?;
        self.generation
            .protection
            .as_ref()
            .filter(|p| p.covers(&route.name))
    }

    /// The route's upstream client.
    pub(crate) fn upstream(&self) -> Result<&'a Upstream, GatewayError> {
        let route = self.route()?;
        self.generation
            .upstreams
            .get(&route.upstream)
            .ok_or_else(|| {
                GatewayError::Internal(format!("route `{}` has no upstream", route.name))
            })
    }

    /// The data subject the route was decided on, when it names one.
    pub(crate) fn decided_subject(&self) -> Option<String> {
        self.decided
            .as_ref()
            .map(|d| d.request.customer.clone())
            .filter(|s| !s.is_empty())
    }
}

/// What the phases learned about a request, for the record.
#[derive(Debug, Clone)]
pub(crate) struct RequestRecord {
    /// Request id.
    pub(crate) request_id: String,
    /// HTTP method.
    pub(crate) method: http::Method,
    /// HTTP version the client used.
    pub(crate) version: http::Version,
    /// Route name (`none` before routing).
    pub(crate) route: String,
    /// Who called.
    pub(crate) principal: String,
    /// Purpose of use.
    pub(crate) purpose: Option<String>,
    /// Consent relied on.
    pub(crate) consent_id: Option<String>,
    /// The data subject (only its keyed pseudonym is recorded).
    pub(crate) subject: Option<String>,
    /// Deciding policies.
    pub(crate) policy_ids: Vec<String>,
    /// Active policy set.
    pub(crate) policy_set_hash: Option<String>,
    /// `allow`, `deny` or `error`.
    pub(crate) decision: &'static str,
    /// Field classes the response showed in clear.
    pub(crate) revealed_clear: Vec<String>,
    /// The admin action a gateway-served admin call asked for (e.g. `consent:grant`).
    pub(crate) action: Option<String>,
    /// The admin operation a call requested, read or approved.
    pub(crate) operation_id: Option<String>,
    /// What an analytics query spent.
    pub(crate) privacy_spend: Option<crate::audit::PrivacySpend>,
    /// The FHE aggregate a call concerned.
    pub(crate) aggregate_id: Option<String>,
    /// Risk thresholds this request found newly exceeded.
    pub(crate) risk_events: Vec<crate::risk::event::RiskEvent>,
    /// The exchange with the upstream, once forward ran.
    pub(crate) upstream: Option<UpstreamExchange>,
    /// The error code the client was answered with (the rescue step's), if refused.
    pub(crate) error_code: Option<&'static str>,
    /// The request body's length, when the client declared it (Content-Length).
    pub(crate) request_bytes: Option<u64>,
}

/// What the access log says about the forward phase.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamExchange {
    /// The upstream's configured name.
    pub(crate) name: String,
    /// Its response status; `None` when it gave none (unreachable, timeout).
    pub(crate) status: Option<u16>,
    /// From sending the request to its response head (or the failure).
    pub(crate) elapsed: std::time::Duration,
}

impl RequestRecord {
    /// A record for a request on `conn`, before any phase ran.
    pub(crate) fn new(conn: &ConnectionInfo, request_id: String, parts: &Parts) -> Self {
        // Until the identify phase names a principal: the certificate, or nobody.
        let principal = match &conn.peer_certificate {
            Some(cert) => format!("cert-sha256:{}", crate::audit::hex(&cert.thumbprint_sha256)),
            None => "anonymous".to_owned(),
        };
        Self {
            request_id,
            method: parts.method.clone(),
            version: parts.version,
            route: "none".to_owned(),
            principal,
            purpose: None,
            consent_id: None,
            subject: None,
            policy_ids: Vec::new(),
            policy_set_hash: None,
            decision: "allow",
            revealed_clear: Vec::new(),
            action: None,
            operation_id: None,
            privacy_spend: None,
            aggregate_id: None,
            risk_events: Vec::new(),
            upstream: None,
            error_code: None,
            request_bytes: parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok()),
        }
    }
}

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
pub struct RequestContext<'a> {
    /// State every connection shares (store, keys, audit trail, metrics).
    pub shared: &'a Shared,
    /// The configuration generation this request runs on, start to end.
    pub generation: &'a Generation,
    /// The connection the request came on (listener, client address, certificate).
    pub conn: &'a ConnectionInfo,
    /// When the request arrived (the record phase's latency).
    pub started: Instant,
    /// The request head. The protect phase adjusts its framing headers; the forward phase
    /// sends it upstream, keeping a copy only for routes decided after the response (the
    /// decision reads the client's purpose header), so later phases must not rely on it.
    pub parts: Parts,
    /// The host the client addressed, without port (set by routing).
    pub host: Option<String>,
    /// The route, once routed.
    pub route: Option<&'a Route>,
    /// The caller, once identified (routes that ask nothing of callers leave it `None`).
    pub identity: Option<Identity>,
    /// The amount the request body states (routes with `amount`), once the body is read.
    pub amount: Option<i64>,
    /// The route's decision, once decided (policy-decided routes only).
    pub decided: Option<Decided>,
    /// What the phases learned, for the record phase.
    pub record: RequestRecord,
}

/// A route's decision with the request it answered: per-subject views ask that request
/// again for each further data subject a body holds.
pub struct Decided {
    /// The policy set's answer (views, refusal, deciding policies).
    pub decision: Decision,
    /// What was asked.
    pub request: DecisionRequest,
}

impl<'a> RequestContext<'a> {
    /// The context of a request that has just arrived: gives it a request id (the client's
    /// if well-formed) and opens its record.
    pub fn new(
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
            record,
        }
    }

    /// The route; an internal error in a phase that runs before routing.
    pub fn route(&self) -> Result<&'a Route, GatewayError> {
        self.route
            .ok_or_else(|| GatewayError::Internal("a phase ran before routing".into()))
    }

    /// The field rules that cover the route, when any do.
    pub fn protection(&self) -> Option<&'a Protection> {
        let route = self.route?;
        self.generation
            .protection
            .as_ref()
            .filter(|p| p.covers(&route.name))
    }

    /// The route's upstream client.
    pub fn upstream(&self) -> Result<&'a Upstream, GatewayError> {
        let route = self.route()?;
        self.generation
            .upstreams
            .get(&route.upstream)
            .ok_or_else(|| {
                GatewayError::Internal(format!("route `{}` has no upstream", route.name))
            })
    }

    /// The data subject the route was decided on, when it names one.
    pub fn decided_subject(&self) -> Option<String> {
        self.decided
            .as_ref()
            .map(|d| d.request.customer.clone())
            .filter(|s| !s.is_empty())
    }
}

/// What the phases learned about a request, for the record.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Request id.
    pub request_id: String,
    /// HTTP method.
    pub method: http::Method,
    /// HTTP version the client used.
    pub version: http::Version,
    /// Route name (`none` before routing).
    pub route: String,
    /// Who called.
    pub principal: String,
    /// Purpose of use.
    pub purpose: Option<String>,
    /// Consent relied on.
    pub consent_id: Option<String>,
    /// The data subject (only its keyed pseudonym is recorded).
    pub subject: Option<String>,
    /// Deciding policies.
    pub policy_ids: Vec<String>,
    /// Active policy set.
    pub policy_set_hash: Option<String>,
    /// `allow`, `deny` or `error`.
    pub decision: &'static str,
    /// Field classes the response showed in clear.
    pub revealed_clear: Vec<String>,
    /// The admin action a gateway-served admin call asked for (e.g. `consent:grant`).
    pub action: Option<String>,
    /// The admin operation a call requested, read or approved.
    pub operation_id: Option<String>,
    /// What an analytics query spent.
    pub privacy_spend: Option<crate::audit::PrivacySpend>,
    /// The FHE aggregate a call concerned.
    pub aggregate_id: Option<String>,
}

impl RequestRecord {
    /// A record for a request on `conn`, before any phase ran.
    pub fn new(conn: &ConnectionInfo, request_id: String, parts: &Parts) -> Self {
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
        }
    }
}

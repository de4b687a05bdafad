//! The record phase: metrics, the request log line and the audit record, for every request
//! whatever its outcome.

use super::connection::ConnectionInfo;
use super::server::Shared;
use crate::audit::AuditEvent;
use std::time::Duration;

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
    pub fn new(conn: &ConnectionInfo, request_id: String, parts: &http::request::Parts) -> Self {
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

/// The subject's pseudonym for the record. Allowed requests use the subject's own keyring
/// key (made on first use, like any per-subject key an authorised caller causes), so the
/// pseudonym dies with a shred; refused ones, which revealed nothing, use the audit key
/// rather than create keys for whatever id a caller names. A shredded subject gets none.
async fn pseudonym(shared: &Shared, subject: &str, allowed: bool) -> Option<String> {
    if let (true, Some(keyring)) = (allowed, shared.keys.0.as_ref()) {
        match keyring
            .subject_key(subject, crate::keys::KeyKind::Hmac)
            .await
        {
            Ok(key) => return Some(crate::audit::subject_key_pseudonym(&key, subject)),
            Err(crate::keys::KeyError::Shredded) => return None,
            Err(e) => tracing::warn!(error = %e, "subject key unavailable; audit pseudonym used"),
        }
    }
    shared.pseudonyms.as_ref().map(|k| k.pseudonym(subject))
}

/// Records a finished request. A response that reveals personal data in clear is released
/// only once its audit record is on disk: the error returned then means it must not be.
pub async fn record(
    shared: &Shared,
    conn: &ConnectionInfo,
    status: u16,
    elapsed: Duration,
    rec: RequestRecord,
) -> Result<(), crate::audit::AuditError> {
    let request_id = &rec.request_id;
    shared.metrics.request(&rec.route, status, elapsed);
    // Never the path, query, headers or body: they may carry PII or credentials.
    tracing::info!(
        %request_id,
        route = %rec.route,
        listener = %conn.listener,
        client_cert = conn.peer_certificate.is_some(),
        method = %rec.method,
        version = ?rec.version,
        status,
        decision = rec.decision,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    if let Some(audit) = &shared.audit {
        let event = AuditEvent {
            request_id: request_id.clone(),
            principal: rec.principal,
            route: rec.route,
            method: rec.method.to_string(),
            status,
            decision: rec.decision.to_owned(),
            policy_ids: rec.policy_ids,
            policy_set_hash: rec.policy_set_hash,
            purpose: rec.purpose,
            consent_id: rec.consent_id,
            revealed_clear: rec.revealed_clear.clone(),
            action: rec.action,
            operation_id: rec.operation_id,
            privacy_spend: rec.privacy_spend,
            aggregate_id: rec.aggregate_id,
            subject_pseudonym: match rec.subject.as_deref() {
                Some(subject) => pseudonym(shared, subject, rec.decision == "allow").await,
                None => None,
            },
        };
        // Clear reveals wait for the fsync (configurable); other records are batched and a
        // failed write fails the log, so the next request is refused.
        let durable = !rec.revealed_clear.is_empty() && shared.durable_reveals;
        if let Err(e) = audit.append(event, durable).await {
            tracing::error!(%request_id, error = %e, "audit record not written");
            if !rec.revealed_clear.is_empty() {
                return Err(e);
            }
        }
    }
    Ok(())
}

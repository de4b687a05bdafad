//! The record phase: metrics, the request log line and the audit record, for every request
//! whatever its outcome; and its precondition, checked before a request is served: a
//! request that cannot be audited is not served.

use super::context::RequestContext;
use super::error::GatewayError;
use super::state::Shared;
use crate::audit::{AuditError, AuditEvent, AuditLog};
use std::future::Future;

/// The decision of a request refused because the audit trail could not take it: it
/// was not served, and is not recorded either (the trail cannot hold it; while it cannot,
/// every refusal of this kind would be held in memory for nothing).
pub(crate) const NOT_RECORDABLE: &str = "error_audit_unavailable";

/// The record phase's precondition. Runs right after routing (so the refusal is recorded
/// under the route), before identify and everything that could reveal or change data,
/// because a request the audit trail cannot hold must not be served.
pub(crate) fn audit_ready(shared: &Shared) -> Result<(), GatewayError> {
    match shared.audit.as_ref().is_some_and(|a| !a.is_healthy()) {
        true => Err(GatewayError::AuditUnavailable),
        false => Ok(()),
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

/// The record phase: runs last, once the response (or the rescue step's refusal) is
/// known and before it is released, for every request whatever its outcome. A response
/// that reveals personal data in clear is released only once its audit record is on disk:
/// the error returned then means it must not be. A call to an API the gateway serves
/// itself with a method that may change state is released once its record is on disk, or
/// held for the disk when the trail is failing.
///
/// The request is counted and logged, and its audit event built, before the returned
/// future runs: the future holds the event alone, not the request's context (kilobytes,
/// and a future moves by copying all of its state). `None` when there is nothing to wait
/// for (no audit trail, or the trail is what refused the request): no future is made, so
/// a request without a record copies and allocates none.
pub(crate) fn record<'a>(
    ctx: RequestContext<'a>,
    status: u16,
    response_bytes: Option<u64>,
) -> Option<impl Future<Output = Result<(), AuditError>> + 'a> {
    log_request(ctx, status, response_bytes).map(Pending::append)
}

/// Counts and logs the request; its audit record, unless the gateway keeps no trail or the
/// trail is what refused the request.
fn log_request<'a>(
    ctx: RequestContext<'a>,
    status: u16,
    response_bytes: Option<u64>,
) -> Option<Pending<'a>> {
    let elapsed = ctx.started.elapsed();
    let (shared, conn, rec) = (ctx.shared, ctx.conn, ctx.record);
    let request_id = &rec.request_id;
    shared.metrics.request(&rec.route, status, elapsed);
    let upstream = rec.upstream.as_ref();
    // The access log (Envoy's access-log fields as the model). Never the path, query,
    // headers or body: they may carry PII or credentials.
    tracing::info!(
        target: crate::telemetry::ACCESS_LOG,
        %request_id,
        route = %rec.route,
        listener = %conn.listener,
        client_cert = conn.peer_certificate.is_some(),
        method = %rec.method,
        version = ?rec.version,
        status,
        decision = rec.decision,
        error_code = rec.error_code,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        upstream = upstream.map(|u| u.name.as_str()),
        upstream_status = upstream.and_then(|u| u.status),
        upstream_latency_ms = upstream.map(|u| u.elapsed.as_secs_f64() * 1000.0),
        request_bytes = rec.request_bytes,
        response_bytes,
        // The W3C trace id (`[tracing]` on): the request's trace in the collector.
        trace_id = rec.trace_id.as_deref(),
        "request"
    );
    let audit = shared
        .audit
        .as_ref()
        .filter(|_| rec.decision != NOT_RECORDABLE)?;
    let change = rec.action.is_some() && !rec.method.is_safe();
    // Clear reveals wait for the fsync (configurable), as do calls that may have changed
    // the gateway's own state (consents, budgets, OTP uses, contributions): a crash must
    // not lose the record of a change its caller was told about. Other records are
    // batched; a failed write makes the log unhealthy (the next requests are refused)
    // and holds them until a write succeeds.
    let reveal = !rec.revealed_clear.is_empty() && shared.durable_reveals;
    let allowed = rec.decision == "allow";
    let event = AuditEvent {
        request_id: rec.request_id,
        principal: rec.principal,
        route: rec.route,
        method: rec.method.to_string(),
        status,
        decision: rec.decision.to_owned(),
        policy_ids: rec.policy_ids,
        policy_set_hash: rec.policy_set_hash,
        purpose: rec.purpose,
        consent_id: rec.consent_id,
        revealed_clear: rec.revealed_clear,
        action: rec.action,
        operation_id: rec.operation_id,
        privacy_spend: rec.privacy_spend,
        aggregate_id: rec.aggregate_id,
        risk_events: rec.risk_events,
        trace_id: rec.trace_id,
        subject_pseudonym: None,
    };
    Some(Pending {
        shared,
        audit,
        event,
        subject: rec.subject.map(|subject| (subject, allowed)),
        reveal,
        change,
    })
}

/// An audit record on its way to the trail: the event less its subject's pseudonym (which
/// may need the subject's key from the store), and how durable it must be.
struct Pending<'a> {
    shared: &'a Shared,
    audit: &'a AuditLog,
    event: AuditEvent,
    /// The data subject, and whether the request was allowed (see [`pseudonym`]).
    subject: Option<(String, bool)>,
    /// A clear reveal under `durable_reveals`: released only once on disk.
    reveal: bool,
    /// A call that may have changed the gateway's state: on disk, or held for the disk.
    change: bool,
}

impl<'a> Pending<'a> {
    /// Appends the record. An `async` block reading its fields in place, not an `async fn`
    /// taking them apart: an `async fn` moves its arguments into locals of its state, and
    /// the parts into locals again, holding the event twice.
    #[allow(clippy::manual_async_fn)]
    fn append(mut self) -> impl Future<Output = Result<(), AuditError>> + 'a {
        async move {
            if let Some((subject, allowed)) = self.subject.take() {
                self.event.subject_pseudonym = pseudonym(self.shared, &subject, allowed).await;
            }
            let request_id = self.event.request_id.clone();
            // A change's record is kept for a second try (below); others are not copied.
            let retry = self.change.then(|| self.event.clone());
            let durable = self.reveal || self.change;
            if let Err(e) = self.audit.append(self.event, durable).await {
                tracing::error!(%request_id, error = %e, "audit record not on disk");
                if self.reveal {
                    return Err(e);
                }
                // The change is made: its answer goes out (hiding it would invite a retry
                // that makes it twice) and its record waits, held, for the disk.
                if let Some(event) = retry {
                    if self.audit.append(event, false).await.is_err() {
                        tracing::error!(%request_id, "audit record of a change lost");
                    }
                }
            }
            Ok(())
        }
    }
}

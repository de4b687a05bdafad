//! W3C trace context (`traceparent`, `tracestate`) at the gateway's two edges, when
//! `[tracing]` is on.
//!
//! In: a caller's trace context is joined only when the operator trusts the caller
//! (`trusted_networks`, `trusted_clients`); from anyone else it is ignored, so an
//! untrusted caller cannot attach the gateway's spans to a trace of its choosing or force
//! sampling. Out: the client's trace headers never reach the upstream; the gateway sends
//! its own, naming the forward span as the upstream's parent. Without `[tracing]` the
//! gateway takes no part in traces and the headers pass as any other.

use super::generation::Generation;
use super::state::ConnectionInfo;
use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TraceId};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The field of the request span that carries its trace id (declared empty, recorded here).
pub(crate) const TRACE_ID_FIELD: &str = "trace_id";

/// Starts the request span's trace: joins the caller's when it is trusted (before the span
/// is first entered, so the span is built with that parent), and returns the trace id, which
/// is also recorded on the span for every log line under it. `None` when traces are off.
pub(crate) fn start(
    span: &tracing::Span,
    generation: &Generation,
    conn: &ConnectionInfo,
    headers: &HeaderMap,
) -> Option<String> {
    generation.config.tracing.as_ref()?;
    if trusts(generation, conn) {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        if parent.span().span_context().is_valid() {
            // Fails only when the span is already built, which it is not yet.
            let _ = span.set_parent(parent);
        }
    }
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id == TraceId::INVALID {
        return None;
    }
    let trace_id = trace_id.to_string();
    span.record(TRACE_ID_FIELD, trace_id.as_str());
    Some(trace_id)
}

/// Whether the caller on `conn` may continue its own trace here: its address is in a
/// trusted network, or it presented the certificate of a trusted registered client.
fn trusts(generation: &Generation, conn: &ConnectionInfo) -> bool {
    let Some(config) = &generation.config.tracing else {
        return false;
    };
    let ip = conn.client_addr.ip().to_canonical();
    if config.trusted_networks.iter().any(|net| net.contains(&ip)) {
        return true;
    }
    generation
        .identity
        .registered_client(conn.peer_certificate.as_ref())
        .is_some_and(|id| config.trusted_clients.iter().any(|t| t == id))
}

/// Replaces whatever trace headers the client sent with the gateway's: the current span
/// (the forward phase's) as the upstream's parent. Nothing when traces are off.
pub(crate) fn propagate(generation: &Generation, headers: &mut HeaderMap) {
    if generation.config.tracing.is_none() {
        return;
    }
    headers.remove("traceparent");
    headers.remove("tracestate");
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    // The propagator writes an empty `tracestate` for a trace without one; W3C lets it go.
    if headers.get("tracestate").is_some_and(|v| v.is_empty()) {
        headers.remove("tracestate");
    }
}

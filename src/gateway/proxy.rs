//! The request path, assembled in one place and in order: [`pipeline`] reads as the list
//! below, one line and one reason per phase, and each phase is a function taking the
//! request's [`RequestContext`] and its own input.
//!
//! ```text
//! route    -> which route (and so which upstream, body mode, later policy) applies
//! limit    -> the route's rate limits: per client address, then per caller once known
//! identify -> who is calling (bearer token or registered client certificate)
//! serve    -> routes the gateway answers itself (admin API, analytics, FHE, TOTP
//!             enrolment; [`super::served`]): decided per call where they act on data,
//!             never forwarded
//! decide   -> Cedar policy + the subject's consent, read fresh -> Decision (route, views),
//!             as early as the subject and amount are known (before the body, after the
//!             request body, or after the upstream's answer and before any of it leaves)
//! protect  -> request body: buffered routes are read whole and must be framed as JSON
//!             (no range asked upstream); field rules encrypt/tokenize bound members, the
//!             PII guard checks the rest
//! forward  -> cleaned headers (hop-by-hop, internal and client-asserted ones removed,
//!             forwarding headers the gateway's own), pooled upstream client, timeouts
//! reveal   -> response body (buffered: whole JSON only, never a 206): each bound member
//!             in the caller's view (per data subject for element-scoped rules); a body
//!             that cannot be revealed is refused
//! record   -> metrics, the request log line and the audit record (refused up front if the
//!             audit trail has failed; clear reveals leave only once recorded on disk)
//! ```
//!
//! Phases return data or a [`GatewayError`]; the rescue step alone turns errors into
//! responses, in [`handle`].
//!
//! The request runs in a `request` span (its id and trace id on every log line about it),
//! and each phase in a child span of the phase's name (target [`PHASE`]): with `[tracing]`
//! they are the request's OpenTelemetry spans. Span fields are ids, names, statuses and
//! codes only, never a path, header, body, token or data subject.

use super::admin_api::AdminApi;
use super::analytics_api::AnalyticsApi;
use super::body;
use super::console::ConsoleApi;
use super::context::{RequestContext, UpstreamExchange};
use super::decide::{self, decide_due};
use super::error::{GatewayError, Side};
#[cfg(feature = "fhe")]
use super::fhe_api::FheApi;
use super::framing;
use super::generation::Generation;
use super::headers::{self, REQUEST_ID};
use super::identify::{self, identify_caller};
use super::proxy_body::ProxyBody;
use super::record::{audit_ready, record};
use super::rescue::{refusal, rescue};
use super::reveal;
use super::router::Route;
use super::served::ServedApi;
use super::state::{ConnectionInfo, Shared};
use super::subject::{self, Known};
use super::totp_api::TotpApi;
use super::trace_context;
use super::upstream::UpstreamBody;
use crate::config::{BodyMode, Direction, GatewayService, Limits};
use crate::protect::document::Document;
use crate::protect::rules::BodySide;
use crate::protect::ProtectError;
use crate::telemetry::PHASE;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use tracing::field::Empty;
use tracing::Instrument;

/// Handles one client request; never fails (errors become responses through the rescue step).
pub(crate) async fn handle(
    shared: &Shared,
    conn: &ConnectionInfo,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    // One generation for the whole request, however a reload lands meanwhile.
    let generation = shared.generation.load_full();
    let (request, span) = begin(shared, &generation, conn, req);
    request.instrument(span).await
}

/// The request's context and span, and its handling boxed. A future moves by copying all
/// of its state, so each phase the request path awaits is boxed (the handling here, the
/// pipeline, the record phase): its state is copied once, into its own allocation, rather
/// than made part of every enclosing future and copied with each (into its parent, the
/// `instrument` wrapper, the connection's box: once about 80 KB a request, a tenth of the
/// stream route's time). Built here, outside any `async` body: a value an `async` body
/// moves away before an `.await` can keep its place in that body's state all the same (the
/// compiler may keep a moved local's or temporary's storage to the end of its scope), and
/// built inline the context and the boxed request's initial state made [`handle`]'s future
/// 14 KB.
fn begin<'a>(
    shared: &'a Shared,
    generation: &'a Generation,
    conn: &'a ConnectionInfo,
    req: Request<Incoming>,
) -> (
    Pin<Box<impl Future<Output = Response<ProxyBody>> + 'a>>,
    tracing::Span,
) {
    let (parts, body) = req.into_parts();
    let mut ctx = RequestContext::new(shared, generation, conn, parts);
    // Every line logged while the request is handled (any phase, any layer) carries its id
    // and trace id.
    let span = tracing::info_span!(
        parent: None,
        "request",
        request_id = %ctx.record.request_id,
        trace_id = Empty,
        "otel.kind" = "server",
        "http.request.method" = %ctx.record.method,
        "privgate.route" = Empty,
        "http.response.status_code" = Empty,
        "error.type" = Empty,
        "otel.status_code" = Empty,
    );
    ctx.record.trace_id = trace_context::start(&span, generation, conn, &ctx.parts.headers);
    (Box::pin(handle_in_span(ctx, body)), span)
}

/// [`handle`] inside the request's span. An `async` block, not an `async fn`: an `async fn`
/// moves its arguments into locals of its state, so the 1.4 KB context was held twice; the
/// block uses the one it captured.
#[allow(clippy::manual_async_fn)]
fn handle_in_span(
    mut ctx: RequestContext<'_>,
    body: Incoming,
) -> impl Future<Output = Response<ProxyBody>> + '_ {
    async move {
        let request_id = ctx.record.request_id.clone();
        // Boxed in a statement of its own: a temporary's storage may last to the end of its
        // statement, and boxed inside the `.await`'s statement the pipeline's initial state
        // could stay part of this future.
        let pipeline = Box::pin(pipeline(&mut ctx, body));
        let outcome = pipeline.await;
        // observe: the outcome counted against the caller's risk indicators.
        super::risk::observe(&ctx, outcome.as_ref().err());
        let response = match outcome {
            Ok(mut response) => {
                if let Some(id) = headers::request_id_value(&request_id) {
                    response.headers_mut().insert(REQUEST_ID, id);
                }
                response
            }
            Err(err) => {
                note_failure(&mut ctx, &err);
                let refusal = refusal(&err);
                ctx.record.error_code = Some(refusal.code());
                // People in the console get the same refusal as a page, not JSON.
                match ctx.route.and_then(|r| r.serve) {
                    Some(GatewayService::Console) => {
                        super::console::refusal_page(&refusal, &request_id)
                    }
                    _ => refusal.into_response(&request_id),
                }
            }
        };
        let status = response.status().as_u16();
        note_outcome(&ctx, status);
        // Known for answers the gateway holds whole (buffered, refusals, Content-Length).
        let response_bytes = http_body::Body::size_hint(response.body()).exact();
        // record: last, for every outcome, before the response leaves; its span whether or
        // not an audit record is waited for.
        // Boxed where it is made (`map`), so that its initial state is never part of this one.
        let span = tracing::info_span!(target: PHASE, "record");
        let recorded = match record(ctx, status, response_bytes).map(Box::pin) {
            Some(append) => append.instrument(span).await,
            None => Ok(()),
        };
        match recorded {
            Ok(()) => response,
            // A clear reveal whose audit record did not reach the disk is not released.
            Err(_) => rescue(&GatewayError::AuditUnavailable, &request_id),
        }
    }
}

/// The phases in order; the first error ends the request (the rescue step answers it).
async fn pipeline(
    ctx: &mut RequestContext<'_>,
    body: Incoming,
) -> Result<Response<ProxyBody>, GatewayError> {
    // route: everything after depends on the route (upstream, body mode, later policy).
    let route = tracing::info_span!(target: PHASE, "route").in_scope(|| route(ctx))?;
    // record (precondition): a request that cannot be audited is not served.
    audit_ready(ctx.shared)?;
    // limit (address): before identification, so guessing credentials or codes spends the
    // guesser's budget.
    let limits = ctx.generation.rate_limits.route(&route.name);
    limits.check_address(ctx.conn.client_addr.ip())?;
    // A phase with nothing to do on this request makes no future (a future is copied whole
    // where it is awaited, however little it does: docs/architecture.md); its span is
    // still opened, so every request's trace shows the same phases.
    // identify: before any body is read, so an unknown caller cannot make the gateway
    // buffer anything.
    let span = tracing::info_span!(target: PHASE, "identify");
    if identify::needed(route) {
        let identifying = Box::pin(identify_caller(ctx));
        identifying.instrument(span).await?;
    }
    // limit (principal): once the caller is known.
    if ctx.identity.is_some() {
        limits.check_principal(&ctx.record.principal)?;
    }
    // assess: the caller's risk indicators, before anything is decided or read, since the
    // decision weighs them and a threshold's response must stop the request first.
    if super::risk::assessed(ctx) {
        super::risk::assess(ctx).await?;
    }
    // serve: routes the gateway answers itself never go upstream; each call is decided on
    // its own action and resource, once its path and body say what it is.
    if let Some(service) = route.serve {
        let span = tracing::info_span!(target: PHASE, "serve");
        // Boxed, in a statement of its own: the served APIs' futures (the console's pages,
        // analytics) are kilobytes that every forwarded request's pipeline would otherwise
        // carry and copy.
        let served = Box::pin(serve(ctx, service, body));
        return served.instrument(span).await;
    }
    // decide: before the body where the path says all, so a refused caller costs no
    // buffering (later points: inside protect and reveal).
    if let Some(due) = decide::due_at(ctx, Known::BeforeBody, None)? {
        decide_due(ctx, due).await?;
    }
    // protect: the request body, decided once it names its subject or amount.
    let span = tracing::info_span!(target: PHASE, "protect");
    let upstream_body = match route.body {
        BodyMode::Stream => {
            let limits = &ctx.generation.config.limits;
            let streamed = span.in_scope(|| stream_request(limits, &ctx.parts.headers, body))?;
            // Configuration gives streamed routes no amount and no subject from a body, so
            // nothing is due here; asked all the same, since a decision is never skipped.
            if let Some(due) = decide::due_at(ctx, Known::AfterRequestBody, None)? {
                span.in_scope(|| decide_due(ctx, due)).await?;
            }
            streamed
        }
        // Boxed, in a statement of its own (as are identify and reveal): kilobytes that a
        // pipeline would otherwise carry for every request and copy at each await.
        BodyMode::Buffered => {
            let protecting = Box::pin(protect_request(ctx, body));
            protecting.instrument(span).await?
        }
    };
    // forward: only a request that passed every check above leaves the gateway.
    let span = tracing::info_span!(
        target: PHASE,
        "forward",
        "otel.kind" = "client",
        "privgate.upstream" = %route.upstream,
        "http.response.status_code" = Empty,
    );
    let response = forward(ctx, upstream_body).instrument(span).await?;
    // reveal: nothing of the answer is released before it is decided and in the caller's views.
    let span = tracing::info_span!(target: PHASE, "reveal");
    match route.body {
        BodyMode::Stream => span.in_scope(|| stream_response(ctx, route, response)),
        BodyMode::Buffered => {
            let revealing = Box::pin(reveal_response(ctx, response));
            revealing.instrument(span).await
        }
    }
}

/// The serve phase: runs after identify and the principal rate limit, instead of decide,
/// protect, forward and reveal; `service` picks the API.
async fn serve(
    ctx: &mut RequestContext<'_>,
    service: GatewayService,
    body: Incoming,
) -> Result<Response<ProxyBody>, GatewayError> {
    match service {
        GatewayService::AdminApi => AdminApi.serve(ctx, body).await,
        GatewayService::Analytics => AnalyticsApi.serve(ctx, body).await,
        #[cfg(feature = "fhe")]
        GatewayService::Fhe => FheApi.serve(ctx, body).await,
        // Configuration refuses `serve = "fhe"` in a build without the feature.
        #[cfg(not(feature = "fhe"))]
        GatewayService::Fhe => Err(GatewayError::NoRoute),
        GatewayService::Totp => TotpApi.serve(ctx, body).await,
        GatewayService::Console => ConsoleApi.serve(ctx, body).await,
    }
}

/// The route phase: runs first, because everything after depends on
/// the route. A token in the URL is refused here on every route: forwarded, it would reach
/// upstream logs.
fn route<'a>(ctx: &mut RequestContext<'a>) -> Result<&'a Route, GatewayError> {
    framing::check(&ctx.parts)?;
    let host = framing::request_host(&ctx.parts)?;
    let parts = &ctx.parts;
    let route = ctx.generation.router.route(
        host.as_deref().unwrap_or(""),
        parts.uri.path(),
        &parts.method,
    )?;
    ctx.record.route.clone_from(&route.name);
    ctx.route = Some(route);
    ctx.host = host;
    crate::identity::refuse_token_in_query(ctx.parts.uri.query())?;
    Ok(route)
}

/// The protect phase (ingress) of a buffered route: runs after the first decide point and
/// before forward. Reads the body whole, decides routes that needed it, then applies its
/// field rules: inbound routes protect what goes to the internal service, outbound routes
/// reveal what goes out. Returns the body to send upstream. A streamed route's request
/// body passes through [`stream_request`] instead.
async fn protect_request(
    ctx: &mut RequestContext<'_>,
    body: Incoming,
) -> Result<ProxyBody, GatewayError> {
    let route = ctx.route()?;
    let limits = &ctx.generation.config.limits;
    let bytes = read_request(limits, &mut ctx.parts.headers, body).await?;
    let upstream_body = body::full(bytes.clone());
    if let Some(due) = decide::due_at(ctx, Known::AfterRequestBody, Some(&bytes))? {
        decide_due(ctx, due).await?;
    }
    if ctx.protection().is_none() {
        return Ok(upstream_body);
    }
    let rewritten = match route.direction {
        Direction::Inbound => {
            let subject = ctx.decided_subject();
            protect(ctx, BodySide::Request, &bytes, subject.as_deref()).await?
        }
        Direction::Outbound => Some(
            reveal::reveal(ctx, BodySide::Request, &bytes, None)
                .await
                .map_err(reveal::on_request)?,
        ),
    };
    Ok(match rewritten {
        Some(rewritten) => {
            set_length(&mut ctx.parts.headers, rewritten.len());
            body::full(rewritten)
        }
        None => upstream_body,
    })
}

/// The forward phase: runs once the request is decided and protected. Cleans the headers
/// (hop-by-hop, internal and client-asserted ones out, the gateway's own forwarding headers
/// and the caller's identity in) and sends the request through the upstream's pool.
async fn forward(
    ctx: &mut RequestContext<'_>,
    upstream_body: ProxyBody,
) -> Result<Response<UpstreamBody>, GatewayError> {
    let route = ctx.route()?;
    let upstream = ctx.upstream()?;
    let generation = ctx.generation;
    // The head goes upstream; routes decided on the answer keep the client's, since that
    // decision reads it (the purpose header the forwarded copy no longer carries).
    let client_head = match subject::known(route) {
        Known::AfterResponse => request_head(&ctx.parts),
        _ => request_head_placeholder(),
    };
    let mut parts = std::mem::replace(&mut ctx.parts, client_head);
    parts.uri = upstream.target(upstream_path(route, parts.uri.path()), parts.uri.query())?;
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_internal(&mut parts.headers, &generation.internal_headers);
    headers::strip_client_asserted(
        &mut parts.headers,
        &generation.pass_client_headers,
        route.forward_authorization,
    );
    if let Some(identity) = &ctx.identity {
        identity.set_upstream_headers(&mut parts.headers);
    }
    headers::set_forwarded(
        &mut parts.headers,
        &ctx.conn.client_hop,
        ctx.host.as_deref(),
        generation.config.forwarding.trust_incoming_forwarded_for,
    );
    // The upstream client sets Host from the target URI.
    parts.headers.remove(http::header::HOST);
    // The upstream joins the gateway's trace (this span as its parent), never the client's.
    trace_context::propagate(generation, &mut parts.headers);
    let started = std::time::Instant::now();
    // A streamed body that failed on the client's side (its framing, a reset) is the
    // client's error, not the upstream's.
    let answer = match upstream
        .send(Request::from_parts(parts, upstream_body))
        .await
    {
        Err(GatewayError::UpstreamFailed { cause, .. }) if body::is_client_body_error(&*cause) => {
            Err(body::client_body_failure(cause))
        }
        other => other,
    };
    if let Ok(response) = &answer {
        tracing::Span::current().record("http.response.status_code", response.status().as_u16());
    }
    ctx.record.upstream = Some(UpstreamExchange {
        name: route.upstream.clone(),
        status: answer.as_ref().ok().map(|r| r.status().as_u16()),
        elapsed: started.elapsed(),
    });
    answer
}

/// The reveal phase (egress) of a buffered route: runs after forward, before record. Reads
/// the answer whole, decides routes whose subject only it names, then applies its field
/// rules: inbound routes show the caller its views, outbound routes protect what comes
/// back in. A streamed route's answer passes through [`stream_response`] instead.
async fn reveal_response(
    ctx: &mut RequestContext<'_>,
    response: Response<UpstreamBody>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let route = ctx.route()?;
    let upstream = ctx.upstream()?;
    let limits = &ctx.generation.config.limits;
    let (mut head, bytes) = read_response(limits, &upstream.name, response).await?;
    // What the request's field rules used: an answer naming a subject does not change it.
    let request_subject = ctx.decided_subject();
    // The answer is read as JSON once: parsed here when field rules reveal it (the document
    // they read), only checked otherwise.
    let reveals = route.direction == Direction::Inbound && ctx.protection().is_some();
    let parsed =
        body::check_response_framing(head.status, &head.headers, &bytes, &upstream.name, reveals)?;
    if let Some(due) = decide::due_at(ctx, Known::AfterResponse, Some(&bytes))? {
        decide_due(ctx, due).await?;
    }
    let client_body = match ctx.protection() {
        None => bytes,
        Some(_) => match route.direction {
            Direction::Inbound => {
                let revealed = reveal::reveal(ctx, BodySide::Response, &bytes, parsed.as_ref())
                    .await
                    .map_err(reveal::on_response)?;
                if let Some(decided) = &ctx.decided {
                    ctx.record.revealed_clear = decided.decision.revealed_clear();
                }
                revealed
            }
            Direction::Outbound => {
                protect(ctx, BodySide::Response, &bytes, request_subject.as_deref())
                    .await?
                    .map_or(bytes, Bytes::from)
            }
        },
    };
    note_outbound_clear(ctx, route);
    set_length(&mut head.headers, client_body.len());
    Ok(Response::from_parts(head, body::full(client_body)))
}

/// On outbound routes, whether the answer revealed anything in clear (the request's
/// reveal decided it): the record's `revealed_clear`.
fn note_outbound_clear(ctx: &mut RequestContext<'_>, route: &Route) {
    if route.direction == Direction::Outbound {
        if let Some(decided) = &ctx.decided {
            ctx.record.revealed_clear = decided.decision.revealed_clear();
        }
    }
}

/// The request span's outcome fields (the OpenTelemetry server span's status): the answer's
/// status, the route, and the stable error code of a refusal.
fn note_outcome(ctx: &RequestContext<'_>, status: u16) {
    let span = tracing::Span::current();
    span.record("privgate.route", ctx.record.route.as_str());
    span.record("http.response.status_code", status);
    if let Some(code) = ctx.record.error_code {
        span.record("error.type", code);
    }
    // Server spans are errors on 5xx only: a refused client is the gateway working.
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// What a failed request leaves in the record, metrics and log before the rescue step
/// answers it.
fn note_failure(ctx: &mut RequestContext<'_>, err: &GatewayError) {
    let (metrics, rec) = (&ctx.shared.metrics, &mut ctx.record);
    let request_id = &rec.request_id;
    rec.decision = err.audit_decision();
    if let Some((event, reason)) = err.security_event() {
        metrics.security_event(&rec.route, event, reason);
    }
    if let Some((upstream, kind)) = err.upstream_error_kind() {
        metrics.upstream_error(upstream, kind);
    }
    match err.side() {
        Side::Client => {
            tracing::info!(%request_id, route = %rec.route, error = %err, "request refused")
        }
        Side::Upstream | Side::Gateway => {
            tracing::warn!(%request_id, route = %rec.route, error = %err, "request failed")
        }
    }
}

/// Protects one body with the gateway's keyring; `None` when the body has no rules. The
/// subjects its rules name are checked against the route's form first, so no key is made
/// for an id in another spelling. Failures are the client's for the request, the
/// upstream's (or external party's) for the response.
async fn protect(
    ctx: &RequestContext<'_>,
    side: BodySide,
    bytes: &Bytes,
    subject: Option<&str>,
) -> Result<Option<Bytes>, GatewayError> {
    let route = ctx.route()?;
    let Some(protection) = ctx.protection() else {
        return Ok(None);
    };
    let failed = match side {
        BodySide::Request => GatewayError::RequestProtection,
        BodySide::Response => GatewayError::ResponseProtection,
    };
    if protection.names_subjects(&route.name, side) {
        let doc = Document::parse(bytes).map_err(|e| failed(ProtectError::Body(e)))?;
        let located = protection.locate(&route.name, side, &doc).map_err(failed)?;
        subject::check_located(route, side, &located)?;
    }
    Ok(protection
        .protect(&route.name, side, bytes, subject, &ctx.shared.keys)
        .await
        .map_err(failed)?
        .map(Bytes::from))
}

fn set_length(headers: &mut http::HeaderMap, len: usize) {
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
}

/// A buffered route's request body: a declared oversize body is refused before a byte is
/// read; the body is read whole under the limit and must be framed as JSON and be JSON; the
/// upstream is asked for a whole, unencoded response, and the headers declare the body's
/// length.
async fn read_request(
    limits: &Limits,
    headers: &mut http::HeaderMap,
    body: Incoming,
) -> Result<Bytes, GatewayError> {
    body::check_declared_length(headers, limits.max_body_bytes)?;
    let bytes = body::buffer_forwarded(headers, body, limits).await?;
    body::prepare_buffered(headers);
    headers.remove(http::header::CONTENT_LENGTH);
    if !bytes.is_empty() {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    }
    Ok(bytes)
}

/// A streamed route's request body, passed on as it arrives under the limit.
fn stream_request(
    limits: &Limits,
    headers: &http::HeaderMap,
    body: Incoming,
) -> Result<ProxyBody, GatewayError> {
    body::check_declared_length(headers, limits.max_body_bytes)?;
    Ok(body::stream_limited(body, limits))
}

/// A buffered route's answer, read whole under the limit, hop-by-hop headers out (the caller
/// then passes it on only as whole JSON, never a 206, a content coding or another media
/// type: [`body::check_response_framing`]).
async fn read_response(
    limits: &Limits,
    upstream: &str,
    response: Response<UpstreamBody>,
) -> Result<(http::response::Parts, Bytes), GatewayError> {
    let (mut head, upstream_body) = response.into_parts();
    headers::strip_hop_by_hop(&mut head.headers);
    head.headers.remove(http::header::CONTENT_LENGTH);
    let bytes =
        body::buffer_response(upstream_body, limits.max_response_body_bytes, upstream).await?;
    Ok((head, bytes))
}

/// The reveal phase of a streamed route: the answer passes on as it arrives, hop-by-hop
/// headers out.
fn stream_response(
    ctx: &mut RequestContext<'_>,
    route: &Route,
    response: Response<UpstreamBody>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (mut head, upstream_body) = response.into_parts();
    headers::strip_hop_by_hop(&mut head.headers);
    // Configuration gives streamed routes no subject from the answer; one would be refused
    // here, never passed on undecided.
    if decide::due_at(ctx, Known::AfterResponse, None)?.is_some() {
        return Err(GatewayError::Internal(
            "a subject from the response needs a buffered route".into(),
        ));
    }
    note_outbound_clear(ctx, route);
    Ok(Response::from_parts(
        head,
        upstream_body.map_err(Into::into).boxed_unsync(),
    ))
}

/// The path sent upstream: the request path, without the route prefix if asked.
fn upstream_path<'a>(route: &Route, path: &'a str) -> &'a str {
    if !route.strip_prefix || route.path_prefix == "/" {
        return path;
    }
    match &path[route.path_prefix.len()..] {
        "" => "/",
        rest => rest,
    }
}

/// An empty request head, left in the context once the client's has gone upstream.
fn request_head_placeholder() -> Parts {
    Request::new(()).into_parts().0
}

/// A copy of a request's head (method, URI, headers): what a decision reads of it.
fn request_head(parts: &Parts) -> Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = parts.method.clone();
    head.uri = parts.uri.clone();
    head.version = parts.version;
    head.headers = parts.headers.clone();
    head
}

//! The request path, assembled in one place and in order.
//!
//! ```text
//! route    -> which route (and so which upstream, body mode, later policy) applies
//! identify -> (identity issue) who is calling; before any body is read
//! decide   -> (policy issue) what they may do; produces the Decision
//! protect  -> request body: buffered routes are read whole and checked before forwarding
//! forward  -> cleaned headers, pooled upstream client, timeouts
//! reveal   -> response body: buffered routes are read whole (the egress rewrite plugs in)
//! record   -> metrics, the request log line and the audit record (refused up front if the
//!             audit trail has failed)
//! ```

use super::body;
use super::connection::ConnectionInfo;
use super::error::{GatewayError, Side};
use super::generation::Generation;
use super::headers::{self, REQUEST_ID};
use super::rescue::rescue;
use super::router::Route;
use super::server::Shared;
use super::ProxyBody;
use crate::audit::AuditEvent;
use crate::config::{BodyMode, Limits};
use http::request::Parts;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::time::Instant;

/// Handles one client request; never fails (errors become responses through the rescue step).
pub async fn handle(
    shared: &Shared,
    conn: &ConnectionInfo,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let generation = shared.generation.load_full();
    let (mut parts, body) = req.into_parts();
    let request_id = headers::ensure_request_id(&mut parts.headers);
    let method = parts.method.clone();
    let version = parts.version;
    let mut route_name = String::from("none");

    let audit_failed = shared.audit.as_ref().is_some_and(|a| !a.is_healthy());
    let mut decision = "allow";
    let response = match pipeline(
        &generation,
        conn,
        parts,
        body,
        &mut route_name,
        audit_failed,
    )
    .await
    {
        Ok(mut response) => {
            if let Ok(id) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID, id);
            }
            response
        }
        Err(err) => {
            decision = if err.side() == Side::Client {
                "deny"
            } else {
                "error"
            };
            if let Some((upstream, kind)) = err.upstream_error_kind() {
                shared.metrics.upstream_error(upstream, kind);
            }
            match err.side() {
                Side::Client => {
                    tracing::info!(%request_id, route = %route_name, error = %err, "request refused")
                }
                Side::Upstream | Side::Gateway => {
                    tracing::warn!(%request_id, route = %route_name, error = %err, "request failed")
                }
            }
            rescue(&err, &request_id)
        }
    };

    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    shared.metrics.request(&route_name, status, elapsed);
    if let Some(audit) = &shared.audit {
        let event = AuditEvent {
            request_id: request_id.clone(),
            principal: principal(conn),
            route: route_name.clone(),
            method: method.to_string(),
            status,
            decision: decision.to_owned(),
            ..AuditEvent::default()
        };
        // No field is revealed in clear yet (field-protection issue), so the record need not
        // reach the disk before the response leaves; a failed write fails the log, and the
        // next request is refused.
        if let Err(e) = audit.append(event, false).await {
            tracing::error!(%request_id, error = %e, "audit record not written");
        }
    }
    // Never the path, query, headers or body: they may carry PII or credentials.
    tracing::info!(
        %request_id,
        route = %route_name,
        listener = %conn.listener,
        client_cert = conn.peer_certificate.is_some(),
        method = %method,
        version = ?version,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

async fn pipeline(
    generation: &Generation,
    conn: &ConnectionInfo,
    mut parts: Parts,
    body: Incoming,
    route_name: &mut String,
    audit_failed: bool,
) -> Result<Response<ProxyBody>, GatewayError> {
    let limits = &generation.config.limits;

    // route: everything after depends on the route (upstream, body mode, later policy).
    let host = request_host(&parts);
    let route = generation.router.route(
        host.as_deref().unwrap_or(""),
        parts.uri.path(),
        &parts.method,
    )?;
    route_name.clone_from(&route.name);

    // identify / decide slot in here (identity and policy issues): before any body is read,
    // so an unauthenticated client cannot make the gateway buffer anything.

    // record (precondition): a request that cannot be audited is not served.
    if audit_failed {
        return Err(GatewayError::AuditUnavailable);
    }

    // protect (ingress): the body as the route's mode allows; field rules rewrite it here.
    let upstream_body = protect_request(route, limits, &mut parts.headers, body).await?;

    // forward: clean headers, then send through the upstream's pool.
    let upstream = generation
        .upstreams
        .get(&route.upstream)
        .ok_or_else(|| GatewayError::Internal(format!("route `{}` has no upstream", route.name)))?;
    parts.uri = upstream.target(upstream_path(route, parts.uri.path()), parts.uri.query())?;
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_internal(&mut parts.headers, &generation.internal_headers);
    headers::set_forwarded(
        &mut parts.headers,
        conn.client_addr.ip(),
        host.as_deref(),
        generation.config.forwarding.trust_incoming_forwarded_for,
    );
    // The upstream client sets Host from the target URI.
    parts.headers.remove(http::header::HOST);
    let response = upstream
        .send(Request::from_parts(parts, upstream_body))
        .await?;

    // reveal (egress): the response as the route's mode allows; field views apply here.
    reveal_response(route, limits, &upstream.name, response).await
}

/// Refuses a declared oversize body before reading a byte; buffered routes are read whole
/// and must be JSON, stream routes pass through under the size limit.
async fn protect_request(
    route: &Route,
    limits: &Limits,
    headers: &mut http::HeaderMap,
    body: Incoming,
) -> Result<ProxyBody, GatewayError> {
    body::check_declared_length(headers, limits.max_body_bytes)?;
    match route.body {
        BodyMode::Stream => Ok(body::stream_limited(body, limits.max_body_bytes)),
        BodyMode::Buffered => {
            let bytes =
                body::buffer_request(body, limits.max_body_bytes, limits.max_json_depth).await?;
            headers.remove(http::header::CONTENT_LENGTH);
            if !bytes.is_empty() {
                headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            }
            Ok(body::full(bytes))
        }
    }
}

/// Strips hop-by-hop headers; buffered routes read the body whole under the limit.
async fn reveal_response(
    route: &Route,
    limits: &Limits,
    upstream: &str,
    response: Response<Incoming>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (mut head, upstream_body) = response.into_parts();
    headers::strip_hop_by_hop(&mut head.headers);
    let client_body = match route.body {
        BodyMode::Stream => upstream_body.map_err(Into::into).boxed_unsync(),
        BodyMode::Buffered => {
            let bytes =
                body::buffer_response(upstream_body, limits.max_response_body_bytes, upstream)
                    .await?;
            head.headers.remove(http::header::CONTENT_LENGTH);
            head.headers
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            body::full(bytes)
        }
    };
    Ok(Response::from_parts(head, client_body))
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

/// Who called, as far as the gateway knows before the identity phase: the verified client
/// certificate's SHA-256 thumbprint, or `anonymous`.
fn principal(conn: &ConnectionInfo) -> String {
    match &conn.peer_certificate {
        Some(cert) => format!("cert-sha256:{}", crate::audit::hex(&cert.thumbprint_sha256)),
        None => "anonymous".to_owned(),
    }
}

/// The host the client addressed, without port: the URI authority (HTTP/2, absolute form)
/// or the Host header.
fn request_host(parts: &Parts) -> Option<String> {
    if let Some(host) = parts.uri.host() {
        return Some(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
        );
    }
    let value = parts.headers.get(http::header::HOST)?.to_str().ok()?;
    let authority: http::uri::Authority = value.parse().ok()?;
    Some(
        authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
    )
}

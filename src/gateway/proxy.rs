//! The request path, assembled in one place and in order.
//!
//! ```text
//! route    -> which route (and so which upstream, body mode, later policy) applies
//! identify -> who is calling (bearer token or registered client certificate)
//! decide   -> Cedar policy + the subject's consent, read fresh -> Decision
//! protect  -> request body: buffered routes are read whole and checked before forwarding
//! forward  -> cleaned headers, pooled upstream client, timeouts
//! reveal   -> response body: buffered routes are read whole (the egress rewrite plugs in)
//! record   -> metrics, the request log line and the audit record (refused up front if the
//!             audit trail has failed)
//! ```

use super::body;
use super::connection::ConnectionInfo;
use super::decide::decide;
use super::error::{GatewayError, Side};
use super::generation::Generation;
use super::headers::{self, REQUEST_ID};
use super::record::{record, RequestRecord};
use super::rescue::rescue;
use super::router::Route;
use super::server::Shared;
use super::ProxyBody;
use crate::config::{BodyMode, Limits};
use crate::identity::Identity;
use crate::store::Store;
use bytes::Bytes;
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
    let mut rec = RequestRecord::new(conn, request_id.clone(), &parts);

    let response = match pipeline(shared, &generation, conn, parts, body, &mut rec).await {
        Ok(mut response) => {
            if let Ok(id) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID, id);
            }
            response
        }
        Err(err) => {
            rec.decision = if err.side() == Side::Client {
                "deny"
            } else {
                "error"
            };
            if let Some((upstream, kind)) = err.upstream_error_kind() {
                shared.metrics.upstream_error(upstream, kind);
            }
            match err.side() {
                Side::Client => {
                    tracing::info!(%request_id, route = %rec.route, error = %err, "request refused")
                }
                Side::Upstream | Side::Gateway => {
                    tracing::warn!(%request_id, route = %rec.route, error = %err, "request failed")
                }
            }
            rescue(&err, &request_id)
        }
    };
    let status = response.status().as_u16();
    record(shared, conn, status, started.elapsed(), rec).await;
    response
}

async fn pipeline(
    shared: &Shared,
    generation: &Generation,
    conn: &ConnectionInfo,
    mut parts: Parts,
    body: Incoming,
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    let limits = &generation.config.limits;

    // route: everything after depends on the route (upstream, body mode, later policy).
    let host = request_host(&parts);
    let route = generation.router.route(
        host.as_deref().unwrap_or(""),
        parts.uri.path(),
        &parts.method,
    )?;
    rec.route.clone_from(&route.name);

    // record (precondition): a request that cannot be audited is not served.
    if shared.audit.as_ref().is_some_and(|a| !a.is_healthy()) {
        return Err(GatewayError::AuditUnavailable);
    }

    // identify: before any body is read, so an unknown caller cannot make the gateway
    // buffer anything. Routes that ask nothing of callers pass them anonymously.
    let identity = match route.identity.authenticate {
        true => Some(identify(generation, shared.store.as_ref(), conn, &parts, route, rec).await?),
        false => None,
    };

    // decide: also before the body, so a caller the policy refuses costs no buffering.
    // Routes without an action are not policy-decided; routes whose decision needs the
    // amount are decided once the body is read and checked.
    let store = shared.store.as_ref();
    let caller = identity.as_ref();
    if route.action.is_some() && route.amount.is_none() {
        decide(generation, store, caller, &parts, route, None, rec).await?;
    }

    // protect (ingress): the body as the route's mode allows; field rules rewrite it here.
    let (upstream_body, buffered) =
        protect_request(route, limits, &mut parts.headers, body).await?;
    if let Some(path) = &route.amount {
        let amount = body::amount(path, buffered.as_deref().unwrap_or_default())?;
        decide(generation, store, caller, &parts, route, Some(amount), rec).await?;
    }

    // forward: clean headers, then send through the upstream's pool.
    let upstream = generation
        .upstreams
        .get(&route.upstream)
        .ok_or_else(|| GatewayError::Internal(format!("route `{}` has no upstream", route.name)))?;
    parts.uri = upstream.target(upstream_path(route, parts.uri.path()), parts.uri.query())?;
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_internal(&mut parts.headers, &generation.internal_headers);
    if let Some(identity) = &identity {
        identity.set_upstream_headers(&mut parts.headers);
    }
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

/// Runs the identify phase for a route that asks for an identified caller.
async fn identify(
    generation: &Generation,
    store: Option<&Store>,
    conn: &ConnectionInfo,
    parts: &Parts,
    route: &Route,
    rec: &mut RequestRecord,
) -> Result<Identity, GatewayError> {
    let identity = generation
        .identity
        .identify(
            conn.peer_certificate.as_ref(),
            &parts.headers,
            parts.uri.query(),
            &route.identity,
            store,
            crate::store::now_ms() / 1000,
        )
        .await?;
    rec.principal.clone_from(&identity.caller.id);
    Ok(identity)
}

/// Refuses a declared oversize body before reading a byte; buffered routes are read whole
/// and must be JSON (their bytes are also returned, for decisions that read the body),
/// stream routes pass through under the size limit.
async fn protect_request(
    route: &Route,
    limits: &Limits,
    headers: &mut http::HeaderMap,
    body: Incoming,
) -> Result<(ProxyBody, Option<Bytes>), GatewayError> {
    body::check_declared_length(headers, limits.max_body_bytes)?;
    match route.body {
        BodyMode::Stream => Ok((body::stream_limited(body, limits.max_body_bytes), None)),
        BodyMode::Buffered => {
            let bytes =
                body::buffer_request(body, limits.max_body_bytes, limits.max_json_depth).await?;
            headers.remove(http::header::CONTENT_LENGTH);
            if !bytes.is_empty() {
                headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            }
            Ok((body::full(bytes.clone()), Some(bytes)))
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

//! The request path, assembled in one place and in order.
//!
//! ```text
//! route    -> which route (and so which upstream, body mode, later policy) applies
//! identify -> who is calling (bearer token or registered client certificate)
//! serve    -> routes the gateway answers itself (admin API, analytics, FHE, TOTP
//!             enrolment): decided per call where they act on data, never forwarded
//! decide   -> Cedar policy + the subject's consent, read fresh -> Decision (route, views)
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

use super::admin_api;
use super::analytics_api;
use super::body;
use super::connection::ConnectionInfo;
use super::decide::decide;
use super::error::{GatewayError, Side};
use super::generation::Generation;
use super::headers::{self, REQUEST_ID};
use super::mfa;
use super::record::{record, RequestRecord};
use super::rescue::rescue;
use super::reveal;
use super::router::Route;
use super::server::Shared;
use super::subject::{self, Known};
use super::ProxyBody;
use crate::config::{BodyMode, Direction, GatewayService, Limits};
use crate::identity::{Identity, IdentityState, RouteRequirements};
use crate::protect::document::Document;
use crate::protect::rules::BodySide;
use crate::protect::{ProtectError, Protection};
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
            rec.decision = err.audit_decision();
            if let Some((event, reason)) = err.security_event() {
                shared.metrics.security_event(&rec.route, event, reason);
            }
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
    match record(shared, conn, status, started.elapsed(), rec).await {
        Ok(()) => response,
        // A clear reveal whose audit record did not reach the disk is not released.
        Err(_) => rescue(&GatewayError::AuditUnavailable, &request_id),
    }
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
    // a token in the URL is refused on every route: forwarded, it would reach upstream logs.
    crate::identity::refuse_token_in_query(parts.uri.query())?;

    // record (precondition): a request that cannot be audited is not served.
    audit_ready(shared)?;

    // rate limit (address): before identification, so guessing credentials or codes
    // spends the guesser's budget.
    let rate_limits = generation.rate_limits.route(&route.name);
    rate_limits.check_address(conn.client_addr.ip())?;

    // identify: before any body is read, so an unknown caller cannot make the gateway
    // buffer anything. Routes that ask nothing of callers pass them anonymously. `X-OTP`
    // is a factor everywhere but on TOTP enrolment, where the code is what is enrolled.
    let check_otp = route.serve != Some(GatewayService::Totp);
    let identity = match route.identity.authenticate {
        true => Some(
            identify(
                shared,
                generation,
                conn,
                &parts,
                &route.identity,
                check_otp,
                rec,
            )
            .await?,
        ),
        false => None,
    };
    // rate limit (principal): once the caller is known.
    if let Some(identity) = &identity {
        rate_limits.check_principal(&identity.caller)?;
    }

    // serve: routes the gateway answers itself never go upstream; each call of those APIs
    // is decided on its own action and resource, once its path and body say what it is.
    if let Some(service) = route.serve {
        let identity = identity.as_ref();
        return match service {
            GatewayService::AdminApi => {
                admin_api::serve(shared, generation, identity, route, &parts, body, rec).await
            }
            GatewayService::Analytics => {
                analytics_api::serve(shared, generation, identity, route, &parts, body, rec).await
            }
            #[cfg(feature = "fhe")]
            GatewayService::Fhe => {
                super::fhe_api::serve(shared, generation, identity, route, &parts, body, rec).await
            }
            // Configuration refuses `serve = "fhe"` in a build without the feature.
            #[cfg(not(feature = "fhe"))]
            GatewayService::Fhe => Err(GatewayError::NoRoute),
            GatewayService::Totp => {
                mfa::serve(shared, generation, identity, route, &parts, body, rec).await
            }
        };
    }

    // decide: also before the body, so a caller the policy refuses costs no buffering.
    // Routes without an action are not policy-decided; routes whose decision needs the
    // amount or a subject the request body names are decided once the body is read and
    // checked; routes whose subject only the upstream's answer names, once that answer is
    // read and before any of it is released. Views are decided for the classes of the body
    // this route reveals. A subject id not in the route's one form is refused here, before
    // any consent lookup or key use.
    let store = shared.store.as_ref();
    let caller = identity.as_ref();
    let protection = generation
        .protection
        .as_ref()
        .filter(|p| p.covers(&route.name));
    let revealed_side = match route.direction {
        Direction::Inbound => BodySide::Response,
        Direction::Outbound => BodySide::Request,
    };
    let classes = protection.map_or(&[][..], |p| p.classes(&route.name, revealed_side));
    let known = subject::known(route);
    let path_subject = subject::from_path(route, parts.uri.path())?;
    let mut decided = None;
    if route.action.is_some() && route.amount.is_none() && known == Known::BeforeBody {
        let subject = path_subject.as_deref();
        decided = Some(
            decide(
                generation, store, caller, &parts, route, subject, None, classes, rec,
            )
            .await?,
        );
    }

    // protect (ingress): the body as the route's mode allows, then its field rules: inbound
    // routes protect what goes to the internal service, outbound routes reveal what goes out.
    let (mut upstream_body, buffered) =
        read_request(route, limits, &mut parts.headers, body).await?;
    let amount = match &route.amount {
        Some(path) => Some(body::amount(path, buffered.as_deref().unwrap_or_default())?),
        None => None,
    };
    if route.action.is_some() && decided.is_none() && known != Known::AfterResponse {
        let subject = match known {
            Known::AfterRequestBody => Some(subject::from_body(
                route,
                BodySide::Request,
                buffered.as_deref().unwrap_or_default(),
            )?),
            _ => path_subject.clone(),
        };
        decided = Some(
            decide(
                generation,
                store,
                caller,
                &parts,
                route,
                subject.as_deref(),
                amount,
                classes,
                rec,
            )
            .await?,
        );
    }
    let subject = decided
        .as_ref()
        .map(|(_, req)| req.customer.clone())
        .filter(|s| !s.is_empty());
    if let (Some(protection), Some(bytes)) = (protection, buffered) {
        let rewritten = match (route.direction, decided.as_mut()) {
            (Direction::Inbound, _) => {
                protect(
                    shared,
                    protection,
                    route,
                    BodySide::Request,
                    &bytes,
                    subject.as_deref(),
                )
                .await?
            }
            (Direction::Outbound, Some((decision, request))) => Some(
                reveal::reveal(
                    shared,
                    generation,
                    protection,
                    route,
                    BodySide::Request,
                    bytes,
                    decision,
                    request,
                )
                .await
                .map_err(reveal::on_request)?,
            ),
            (Direction::Outbound, None) => {
                return Err(GatewayError::Internal(
                    "outbound route without a decision".into(),
                ))
            }
        };
        if let Some(rewritten) = rewritten {
            set_length(&mut parts.headers, rewritten.len());
            upstream_body = body::full(rewritten);
        }
    }

    // forward: clean headers, then send through the upstream's pool.
    let upstream = generation
        .upstreams
        .get(&route.upstream)
        .ok_or_else(|| GatewayError::Internal(format!("route `{}` has no upstream", route.name)))?;
    // The request as the client sent it, for a decision after the upstream's answer.
    let request_parts = match known {
        Known::AfterResponse => Some(request_head(&parts)),
        _ => None,
    };
    parts.uri = upstream.target(upstream_path(route, parts.uri.path()), parts.uri.query())?;
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_internal(&mut parts.headers, &generation.internal_headers);
    headers::strip_client_asserted(
        &mut parts.headers,
        &generation.pass_client_headers,
        route.forward_authorization,
    );
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

    // reveal (egress): the response as the route's mode allows, then its field rules:
    // inbound routes show the caller its views, outbound routes protect what comes back in.
    let (mut head, response_body) = read_response(route, limits, &upstream.name, response).await?;
    if route.action.is_some() && known == Known::AfterResponse {
        let (ResponseBody::Buffered(bytes), Some(request_parts)) = (&response_body, &request_parts)
        else {
            return Err(GatewayError::Internal(
                "a subject from the response needs a buffered route".into(),
            ));
        };
        let subject = subject::from_body(route, BodySide::Response, bytes)?;
        decided = Some(
            decide(
                generation,
                store,
                caller,
                request_parts,
                route,
                Some(&subject),
                amount,
                classes,
                rec,
            )
            .await?,
        );
    }
    let client_body = match (response_body, protection) {
        (ResponseBody::Stream(stream), _) => stream,
        (ResponseBody::Buffered(bytes), None) => {
            set_length(&mut head.headers, bytes.len());
            body::full(bytes)
        }
        (ResponseBody::Buffered(bytes), Some(protection)) => {
            let revealed = match (route.direction, decided.as_mut()) {
                (Direction::Inbound, Some((decision, request))) => {
                    let revealed = reveal::reveal(
                        shared,
                        generation,
                        protection,
                        route,
                        BodySide::Response,
                        bytes,
                        decision,
                        request,
                    )
                    .await
                    .map_err(reveal::on_response)?;
                    rec.revealed_clear = decision.revealed_clear();
                    revealed
                }
                (Direction::Outbound, _) => protect(
                    shared,
                    protection,
                    route,
                    BodySide::Response,
                    &bytes,
                    subject.as_deref(),
                )
                .await?
                .map_or(bytes, Bytes::from),
                (Direction::Inbound, None) => {
                    return Err(GatewayError::Internal(
                        "protected route without a decision".into(),
                    ))
                }
            };
            set_length(&mut head.headers, revealed.len());
            body::full(revealed)
        }
    };
    if route.direction == Direction::Outbound {
        if let Some((decision, _)) = &decided {
            rec.revealed_clear = decision.revealed_clear();
        }
    }
    Ok(Response::from_parts(head, client_body))
}

/// A request that cannot be audited is not served (checked before anything else runs).
fn audit_ready(shared: &Shared) -> Result<(), GatewayError> {
    match shared.audit.as_ref().is_some_and(|a| !a.is_healthy()) {
        true => Err(GatewayError::AuditUnavailable),
        false => Ok(()),
    }
}

/// Protects one body with the gateway's keyring; `None` when the body has no rules. The
/// subjects its rules name are checked against the route's form first, so no key is made
/// for an id in another spelling. Failures are the client's for the request, the
/// upstream's (or external party's) for the response.
async fn protect(
    shared: &Shared,
    protection: &Protection,
    route: &Route,
    side: BodySide,
    bytes: &Bytes,
    subject: Option<&str>,
) -> Result<Option<Bytes>, GatewayError> {
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
        .protect(&route.name, side, bytes, subject, &shared.keys)
        .await
        .map_err(failed)?
        .map(Bytes::from))
}

fn set_length(headers: &mut http::HeaderMap, len: usize) {
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
}

/// A response body as the route's mode reads it.
enum ResponseBody {
    Stream(ProxyBody),
    Buffered(Bytes),
}

/// Runs the identify phase for a route that asks for an identified caller; `X-OTP` is
/// checked when `check_otp`.
async fn identify(
    shared: &Shared,
    generation: &Generation,
    conn: &ConnectionInfo,
    parts: &Parts,
    requirements: &RouteRequirements,
    check_otp: bool,
    rec: &mut RequestRecord,
) -> Result<Identity, GatewayError> {
    let state = IdentityState {
        store: shared.store.as_ref(),
        keyring: shared.keys.0.as_ref(),
        check_otp,
    };
    let identity = generation
        .identity
        .identify(
            conn.peer_certificate.as_ref(),
            &parts.headers,
            parts.uri.query(),
            requirements,
            state,
            crate::store::now_ms() / 1000,
        )
        .await?;
    rec.principal = identity.caller.principal();
    Ok(identity)
}

/// Refuses a declared oversize body before reading a byte; buffered routes are read whole
/// and must be framed as JSON and be JSON (their bytes are also returned, for decisions and
/// field rules that read the body), and ask the upstream for a whole, unencoded response;
/// stream routes pass through under the size limit.
async fn read_request(
    route: &Route,
    limits: &Limits,
    headers: &mut http::HeaderMap,
    body: Incoming,
) -> Result<(ProxyBody, Option<Bytes>), GatewayError> {
    body::check_declared_length(headers, limits.max_body_bytes)?;
    match route.body {
        BodyMode::Stream => Ok((body::stream_limited(body, limits.max_body_bytes), None)),
        BodyMode::Buffered => {
            let bytes = body::buffer_forwarded(headers, body, limits).await?;
            body::prepare_buffered(headers);
            headers.remove(http::header::CONTENT_LENGTH);
            if !bytes.is_empty() {
                headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            }
            Ok((body::full(bytes.clone()), Some(bytes)))
        }
    }
}

/// Strips hop-by-hop headers; buffered routes read the body whole under the limit and pass
/// it on only as whole JSON (never a 206, a content coding or another media type).
async fn read_response(
    route: &Route,
    limits: &Limits,
    upstream: &str,
    response: Response<Incoming>,
) -> Result<(http::response::Parts, ResponseBody), GatewayError> {
    let (mut head, upstream_body) = response.into_parts();
    headers::strip_hop_by_hop(&mut head.headers);
    let body = match route.body {
        BodyMode::Stream => ResponseBody::Stream(upstream_body.map_err(Into::into).boxed_unsync()),
        BodyMode::Buffered => {
            head.headers.remove(http::header::CONTENT_LENGTH);
            let bytes =
                body::buffer_response(upstream_body, limits.max_response_body_bytes, upstream)
                    .await?;
            body::check_response_framing(head.status, &head.headers, &bytes, upstream)?;
            ResponseBody::Buffered(bytes)
        }
    };
    Ok((head, body))
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

/// A copy of a request's head (method, URI, headers): what a decision reads of it.
fn request_head(parts: &Parts) -> Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = parts.method.clone();
    head.uri = parts.uri.clone();
    head.version = parts.version;
    head.headers = parts.headers.clone();
    head
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

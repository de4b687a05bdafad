//! The identify phase: who is calling, from a registered client certificate, an API key or
//! a bearer token (and `X-OTP` where a route asks for a second factor), as
//! [`crate::identity`] establishes it for the route's requirements.
//!
//! It runs after routing and the per-address rate limit, and before anything reads the
//! body: an unknown caller can make the gateway buffer nothing, and guessing credentials
//! spends the guesser's address budget first.

use super::context::RequestContext;
use super::error::GatewayError;
use super::router::Route;
use crate::config::GatewayService;
use crate::identity::{Identity, IdentityState, RouteRequirements};

/// Whether the identify phase has anything to do on `route`: routes that ask nothing of
/// callers pass them anonymously (no identity), and the console identifies people from
/// their session in its serve phase ([`identify_session`]; a browser sends no bearer
/// token).
pub(super) fn needed(route: &Route) -> bool {
    route.identity.authenticate && route.serve != Some(GatewayService::Console)
}

/// The identify phase of a routed request that [`needed`] it: runs after routing and the
/// address rate limit, before the principal rate limit, the served APIs and the decide
/// phase, which all need the caller; the record names the principal from here on. `X-OTP`
/// is a factor everywhere but on TOTP enrolment: on `/enroll` the gateway's own code must
/// not vouch for adding a code, on `/confirm` it is the code being confirmed.
pub(super) async fn identify_caller(ctx: &mut RequestContext<'_>) -> Result<(), GatewayError> {
    let route = ctx.route()?;
    let check_otp = route.serve != Some(GatewayService::Totp);
    let peer = ctx.conn.peer_certificate.as_ref();
    let identity = identify_with(ctx, peer, &ctx.parts.headers, &route.identity, check_otp).await?;
    ctx.record.principal = identity.caller.principal();
    ctx.identity = Some(identity);
    Ok(())
}

/// The console's person: the access token their session holds, checked exactly as a
/// bearer token is on any route (signature, issuer, audience, lifetime, deny list, the
/// route's step-up), so an expired or revoked token ends the console session too. Not
/// certificate-bound: a browser session holds no client certificate.
pub(super) async fn identify_session(
    ctx: &mut RequestContext<'_>,
    access_token: &str,
) -> Result<(), GatewayError> {
    let route = ctx.route()?;
    let mut headers = http::HeaderMap::new();
    let bearer = http::HeaderValue::from_str(&format!("Bearer {access_token}"))
        .map_err(|_| crate::identity::IdentityError::Missing)?;
    headers.insert(http::header::AUTHORIZATION, bearer);
    let identity = identify_with(ctx, None, &headers, &route.identity, false).await?;
    ctx.record.principal = identity.caller.principal();
    ctx.identity = Some(identity);
    Ok(())
}

async fn identify_with(
    ctx: &RequestContext<'_>,
    peer: Option<&crate::certs::PeerCertificate>,
    headers: &http::HeaderMap,
    requirements: &RouteRequirements,
    check_otp: bool,
) -> Result<Identity, GatewayError> {
    let shared = ctx.shared;
    let state = IdentityState {
        store: shared.store.as_ref(),
        keyring: shared.keys.0.as_ref(),
        check_otp,
    };
    let identity = ctx
        .generation
        .identity
        .identify(
            peer,
            headers,
            ctx.parts.uri.query(),
            requirements,
            state,
            crate::store::now_ms() / 1000,
        )
        .await?;
    Ok(identity)
}

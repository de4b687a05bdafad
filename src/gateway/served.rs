//! The APIs the gateway serves itself, instead of forwarding: the admin API, analytics,
//! FHE and TOTP enrolment, each on routes with its `serve = "..."`.
//!
//! They share one shape, [`ServedApi`], and one place in the path: the serve phase runs
//! after route, the route's rate limits and identify (served routes always identify
//! callers; TOTP enrolment without `X-OTP` as a factor), and replaces decide, protect,
//! forward and reveal. Each API resolves its own paths under the route's prefix (404/405
//! for others), reads a JSON body under the configured limits where it takes one, and
//! decides each call itself by policy on the call's own action and resource where the call
//! acts on data (enrolment is the caller's own and is not policy-decided). What it learns
//! goes into the context's record, so every call is audited, refused ones too. Refusals are
//! [`GatewayError`]s for the rescue step; answers are built by [`super::respond`].
//!
//! The trait is a leaf the four APIs implement; the serve phase that picks one by the
//! route's `serve` value is in `proxy`, so no API and this trait import each other.

use super::body;
use super::context::{RequestContext, RequestRecord};
use super::error::GatewayError;
use super::generation::Generation;
use super::proxy_body::ProxyBody;
use super::router::Route;
use super::state::Shared;
use crate::identity::{Identity, IdentityError};
use bytes::Bytes;
use http::request::Parts;
use http::Response;
use hyper::body::Incoming;

/// One API the gateway serves itself.
pub(crate) trait ServedApi {
    /// Answers one call on this API's route: the context holds the route and the
    /// identified caller; `body` is unread.
    async fn serve(
        &self,
        ctx: &mut RequestContext<'_>,
        body: Incoming,
    ) -> Result<Response<ProxyBody>, GatewayError>;
}

/// What a served API reads of one call, borrowed apart from the record it fills, so an API
/// can read the caller and the head while it writes what it decided into the record.
pub(crate) struct ServedCall<'c> {
    pub(crate) shared: &'c Shared,
    pub(crate) generation: &'c Generation,
    pub(crate) route: &'c Route,
    /// Served routes always identify their callers; a call without one is refused here.
    pub(crate) identity: &'c Identity,
    pub(crate) parts: &'c Parts,
}

impl<'c> ServedCall<'c> {
    /// Splits the context into the call to read and the record to fill.
    pub(crate) fn split(
        ctx: &'c mut RequestContext<'_>,
    ) -> Result<(Self, &'c mut RequestRecord), GatewayError> {
        let route = ctx.route()?;
        let identity = ctx.identity.as_ref().ok_or(IdentityError::Missing)?;
        let call = Self {
            shared: ctx.shared,
            generation: ctx.generation,
            route,
            identity,
            parts: &ctx.parts,
        };
        Ok((call, &mut ctx.record))
    }

    /// The call's JSON body, read whole under the configured limits.
    pub(crate) async fn read_body(&self, body: Incoming) -> Result<Bytes, GatewayError> {
        body::buffer_served(&self.parts.headers, body, &self.generation.config.limits).await
    }
}

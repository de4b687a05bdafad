//! TOTP enrolment, served by the gateway itself on the route with `serve = "totp"`: the
//! one `[totp]` makes at its `path_prefix` (default `/mfa/v1/totp`, route name `totp`), or a
//! `[[route]]` of its own. These requests never go upstream.
//!
//! - `POST {prefix}/enroll[?algorithm=SHA256&digits=8]`: a user whose bearer token meets
//!   `[totp.enrollment.step_up]` (by default: the identity provider's `amr` shows a factor
//!   beyond a password, signed in at most 5 minutes ago) gets a new secret, once, as an
//!   `otpauth://` URI and an SVG QR code (201). A token that falls short gets the RFC 9470
//!   challenge (401). The pending enrollment belongs to the token's session: that session
//!   may start again; another gets 409 `totp_enrollment_pending` until `pending_ttl`
//!   passes; a confirmed enrollment is kept (409 `totp_already_enrolled`).
//! - `POST {prefix}/confirm` with the first code in `X-OTP`: activates the pending
//!   enrollment of the same session (200).
//! - With `[totp.enrollment] mode = "operator"` both answer 403
//!   `totp_enrollment_by_operator` (operators enroll with `privgate totp provision`).
//!
//! Like every served route, the calls are routed, rate limited by their route (`[rate_limit]`
//! unless the route has its own), identified and recorded (an audit record per call, with
//! the action `totp:enroll` or `totp:confirm`); no policy decides them. The identify phase
//! never takes `X-OTP` as a factor here (on `/enroll` the gateway's own code must not
//! vouch for adding a code; on `/confirm` it is the code being confirmed); enrolment's
//! step-up is checked here, after the operator-mode refusal. Responses carry
//! `Cache-Control: no-store`; bodies, secrets and codes are never logged or audited.

use super::context::RequestContext;
use super::error::GatewayError;
use super::proxy_body::ProxyBody;
use super::respond;
use super::served::ServedApi;
use crate::config::{TotpAlgorithm, TotpEnrollmentMode};
use crate::identity::totp::{self, CodeUse, TotpContext};
use crate::identity::{IdentityError, IdentityState, RouteRequirements, OTP_HEADER};
use crate::policy::CallerKind;
use http::request::Parts;
use http::{Method, Response};
use hyper::body::Incoming;

/// A gateway-served TOTP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `POST {prefix}/enroll`.
    Enroll,
    /// `POST {prefix}/confirm`.
    Confirm,
}

impl Endpoint {
    /// The audit record's action.
    fn action(self) -> &'static str {
        match self {
            Self::Enroll => "totp:enroll",
            Self::Confirm => "totp:confirm",
        }
    }
}

/// TOTP enrolment (`serve = "totp"`).
pub(crate) struct TotpApi;

impl ServedApi for TotpApi {
    async fn serve(
        &self,
        ctx: &mut RequestContext<'_>,
        _body: Incoming,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let (shared, generation, route) = (ctx.shared, ctx.generation, ctx.route()?);
        let endpoint = match route.served_segments(ctx.parts.uri.path()).as_slice() {
            ["enroll"] => Endpoint::Enroll,
            ["confirm"] => Endpoint::Confirm,
            _ => return Err(GatewayError::NoRoute),
        };
        ctx.record.action = Some(endpoint.action().to_owned());
        if ctx.parts.method != Method::POST {
            return Err(GatewayError::MethodNotAllowed {
                allowed: vec![Method::POST],
            });
        }
        let settings = generation
            .identity
            .totp_settings()
            .ok_or(GatewayError::NoRoute)?;
        if settings.enrollment.mode == TotpEnrollmentMode::Operator {
            return Err(IdentityError::OtpEnrollmentByOperator.into());
        }
        let identity = ctx.identity.as_ref().ok_or(IdentityError::Missing)?;
        // Enrolling is the step-up; confirming is bound to the session that enrolled.
        if endpoint == Endpoint::Enroll {
            let requirements = RouteRequirements::with_step_up(&settings.enrollment.step_up);
            if !requirements.step_up_met(identity, crate::store::now_ms() / 1000) {
                return Err(IdentityError::StepUp(requirements.challenge()).into());
            }
        }
        if identity.token.is_none() || identity.caller.kind != CallerKind::User {
            return Err(GatewayError::Refused {
                reason: "user_token_required".into(),
            });
        }
        let session = totp::session_of(identity).ok_or(IdentityError::InvalidRequest(
            "the token names no session (sid, auth_time or jti)",
        ))?;
        let state = IdentityState {
            store: shared.store.as_ref(),
            keyring: shared.keys.0.as_ref(),
            check_otp: false,
        };
        let totp = TotpContext::new(settings, state)?;
        answer(totp, endpoint, &identity.caller.id, &session, &ctx.parts).await
    }
}

/// Enrolls or confirms `user` in `session` as the endpoint asks.
async fn answer(
    ctx: TotpContext<'_>,
    endpoint: Endpoint,
    user: &str,
    session: &str,
    parts: &Parts,
) -> Result<Response<ProxyBody>, GatewayError> {
    let now_ms = crate::store::now_ms();
    match endpoint {
        Endpoint::Enroll => {
            let (algorithm, digits) = options(parts.uri.query(), ctx.settings)?;
            let enrollment = totp::enroll(ctx, user, session, algorithm, digits, now_ms).await?;
            let body = serde_json::json!({
                "otpauth_uri": enrollment.uri.as_str(),
                "qr_svg": enrollment.qr_svg.as_str(),
                "algorithm": algorithm.as_str(),
                "digits": digits,
                "period": 30,
            });
            respond::created(&body)
        }
        Endpoint::Confirm => {
            let code = parts
                .headers
                .get(OTP_HEADER)
                .and_then(|v| v.to_str().ok())
                .ok_or(IdentityError::OtpInvalid("no code"))?;
            totp::check_code(ctx, user, code.trim(), CodeUse::Confirm { session }, now_ms).await?;
            respond::ok(&serde_json::json!({ "status": "confirmed" }))
        }
    }
}

/// `algorithm` and `digits` from the query, defaulting to `[totp]`.
fn options(
    query: Option<&str>,
    settings: &crate::config::TotpConfig,
) -> Result<(TotpAlgorithm, u32), GatewayError> {
    let mut algorithm = settings.algorithm;
    let mut digits = settings.digits;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "algorithm" => {
                algorithm = TotpAlgorithm::parse(&value)
                    .ok_or(GatewayError::InvalidParameter("algorithm"))?
            }
            "digits" => {
                digits = match value.as_ref() {
                    "6" => 6,
                    "8" => 8,
                    _ => return Err(GatewayError::InvalidParameter("digits")),
                }
            }
            _ => return Err(GatewayError::InvalidParameter("unknown parameter")),
        }
    }
    Ok((algorithm, digits))
}

//! TOTP enrollment, served by the gateway itself under `[totp] path_prefix` (default
//! `/mfa/v1/totp`); these requests never go upstream.
//!
//! - `POST {prefix}/enroll[?algorithm=SHA256&digits=8]`: a user identified by a valid
//!   bearer token gets a new secret, once, as an `otpauth://` URI and an SVG QR code
//!   (201). A pending enrollment is replaced; a confirmed one is kept (409).
//! - `POST {prefix}/confirm` with the first code in `X-OTP`: activates it (200).
//!
//! Both are identified like any route (`X-OTP` is not taken as a factor here: it is the
//! code being confirmed) and rate limited by the global `[rate_limit]`. Responses carry
//! `Cache-Control: no-store`; bodies are never logged or audited.

use super::connection::ConnectionInfo;
use super::error::GatewayError;
use super::generation::Generation;
use super::proxy::{audit_ready, identify};
use super::record::RequestRecord;
use super::server::Shared;
use super::{body, ProxyBody};
use crate::config::TotpAlgorithm;
use crate::identity::totp::{self, TotpContext};
use crate::identity::{IdentityError, IdentityState, RouteRequirements, OTP_HEADER};
use crate::policy::CallerKind;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;

/// A gateway-served TOTP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST {prefix}/enroll`.
    Enroll,
    /// `POST {prefix}/confirm`.
    Confirm,
    /// Anything else under the prefix.
    Unknown,
}

/// The endpoint `path` names, when it is under the configured TOTP prefix.
pub fn endpoint(generation: &Generation, path: &str) -> Option<Endpoint> {
    let prefix = &generation.config.totp.as_ref()?.path_prefix;
    let rest = path.strip_prefix(prefix.as_str())?;
    Some(match rest {
        "/enroll" => Endpoint::Enroll,
        "/confirm" => Endpoint::Confirm,
        "" => Endpoint::Unknown,
        r if r.starts_with('/') => Endpoint::Unknown,
        _ => return None, // `/mfa/v1/totpx`: not under the prefix
    })
}

/// Serves one TOTP endpoint request.
pub async fn serve(
    shared: &Shared,
    generation: &Generation,
    conn: &ConnectionInfo,
    parts: Parts,
    _body: Incoming,
    endpoint: Endpoint,
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    rec.route = "totp".to_owned();
    audit_ready(shared)?;
    if endpoint == Endpoint::Unknown {
        return Err(GatewayError::NoRoute);
    }
    if parts.method != Method::POST {
        return Err(GatewayError::MethodNotAllowed {
            allowed: vec![Method::POST],
        });
    }
    let limits = generation.rate_limits.global();
    limits.check_address(conn.client_addr.ip())?;
    let requirements = RouteRequirements {
        authenticate: true,
        ..RouteRequirements::default()
    };
    let identity = identify(shared, generation, conn, &parts, &requirements, false, rec).await?;
    limits.check_principal(&identity.caller)?;
    if identity.token.is_none() || identity.caller.kind != CallerKind::User {
        return Err(GatewayError::Refused {
            reason: "user_token_required".into(),
        });
    }
    let settings = generation
        .identity
        .totp_settings()
        .ok_or(GatewayError::NoRoute)?;
    let state = IdentityState {
        store: shared.store.as_ref(),
        keyring: shared.keys.0.as_ref(),
        check_otp: false,
    };
    let ctx = TotpContext::new(settings, state)?;
    answer(ctx, endpoint, &identity.caller.id, &parts).await
}

/// Enrolls or confirms `user` as the endpoint asks.
async fn answer(
    ctx: TotpContext<'_>,
    endpoint: Endpoint,
    user: &str,
    parts: &Parts,
) -> Result<Response<ProxyBody>, GatewayError> {
    let now_ms = crate::store::now_ms();
    match endpoint {
        Endpoint::Enroll => {
            let (algorithm, digits) = options(parts.uri.query(), ctx.settings)?;
            let enrollment = totp::enroll(ctx, user, algorithm, digits, now_ms).await?;
            let body = serde_json::json!({
                "otpauth_uri": enrollment.uri.as_str(),
                "qr_svg": enrollment.qr_svg.as_str(),
                "algorithm": algorithm.as_str(),
                "digits": digits,
                "period": 30,
            });
            body::json(StatusCode::CREATED, &body)
        }
        Endpoint::Confirm => {
            let code = parts
                .headers
                .get(OTP_HEADER)
                .and_then(|v| v.to_str().ok())
                .ok_or(IdentityError::OtpInvalid("no code"))?;
            totp::check_code(ctx, user, code.trim(), true, now_ms).await?;
            body::json(
                StatusCode::OK,
                &serde_json::json!({ "status": "confirmed" }),
            )
        }
        Endpoint::Unknown => Err(GatewayError::NoRoute),
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

//! The rescue step: the only place that turns a [`GatewayError`] into an HTTP response, and
//! the only place that knows HTTP statuses, error codes and client-facing messages.
//!
//! Inner phases and domain errors only classify (which side failed, whether a retry is
//! safe, `is_client()`); [`refusal`] walks the error to a [`Refusal`] made by one of its
//! named constructors. The client sees a status, a stable machine-readable code, a fixed
//! human message and the request id; never the error's internal detail (upstream names,
//! addresses, causes). The maps are split by area: the request path here, identification
//! in [`identity`], field protection in [`protection`], the APIs the gateway serves itself
//! in [`served`]; the operations listener's plain-text answers are in [`listener`].
//! Successful answers of the served APIs are [`super::respond`]'s.

mod identity;
pub(super) mod listener;
mod protection;
mod refusal;
mod served;
#[cfg(test)]
mod tests;

pub(super) use refusal::Refusal;

use super::error::GatewayError;
use crate::gateway::proxy_body::ProxyBody;
use http::Response;

/// Builds the JSON error response for `err`.
pub(super) fn rescue(err: &GatewayError, request_id: &str) -> Response<ProxyBody> {
    refusal(err).into_response(request_id)
}

/// What the client is told about `err`.
pub(super) fn refusal(err: &GatewayError) -> Refusal {
    use GatewayError as E;
    let refusal = match err {
        E::NoRoute => Refusal::not_found("route_not_found", "No route matches this request."),
        E::MethodNotAllowed { allowed } => Refusal::method_not_allowed(allowed),
        E::AmbiguousPath => Refusal::bad_request(
            "invalid_path",
            "The request path contains dot-segments or encoded separators.",
        ),
        E::MalformedHead(_) => Refusal::bad_request(
            "malformed_request",
            "The request line or headers can be read more than one way.",
        ),
        E::BodyTooLarge => Refusal::payload_too_large(),
        E::RequestBodyTimeout => Refusal::request_timeout(),
        E::ClientBody(_) => {
            Refusal::bad_request("bad_request", "The request body could not be read.")
        }
        E::InvalidJson => invalid_json(),
        E::UnsupportedMediaType => Refusal::unsupported_media_type(),
        E::NotAcceptable => Refusal::not_acceptable(),
        E::JsonTooDeep => Refusal::bad_request(
            "json_too_deep",
            "The request body nests JSON deeper than the gateway accepts.",
        ),
        E::UpstreamUnreachable { .. } => Refusal::bad_gateway(
            "upstream_unavailable",
            "The service behind the gateway could not be reached.",
        ),
        E::UpstreamFailed { .. }
        | E::UpstreamNotJson { .. }
        | E::UpstreamResponseTooLarge { .. }
        | E::ResponseSubject { .. } => Refusal::unusable_upstream_answer(),
        E::UpstreamTimeout { .. } => Refusal::gateway_timeout(),
        E::InvalidAmount => Refusal::bad_request(
            "invalid_amount",
            "The request must carry exactly one integer amount where this route expects it.",
        ),
        E::InvalidSubject => Refusal::bad_request(
            "invalid_subject",
            "The data subject's id is not in the one form this route accepts.",
        ),
        E::Identity(e) => identity::refusal(e),
        E::InvalidParameter(_) => Refusal::bad_request(
            "invalid_parameter",
            "A query parameter is not one this endpoint accepts.",
        ),
        E::RateLimited { .. } => Refusal::rate_limited(
            "rate_limited",
            "Too many requests; try again after the time in Retry-After.",
        ),
        E::Refused { reason } => policy_refusal(reason),
        E::ConsentUnavailable(_) => Refusal::unavailable(
            "consent_unavailable",
            "Consent cannot be confirmed right now; the request is refused.",
        ),
        E::RiskUnavailable(_) => Refusal::unavailable(
            "risk_unavailable",
            "The caller's risk indicators cannot be read right now; the request is refused.",
        ),
        E::AuditUnavailable => Refusal::unavailable(
            "audit_unavailable",
            "The gateway cannot record requests right now and refuses them.",
        ),
        E::RequestProtection(e) => protection::request(e),
        E::ResponseProtection(e) => protection::response(e),
        E::Admin(e) => served::admin_api(e),
        E::Analytics(e) => served::analytics(e),
        E::Console(e) => served::console(e),
        #[cfg(feature = "fhe")]
        E::Fhe(e) => served::fhe(e),
        E::Policy(_) | E::Encode(_) | E::Internal(_) => Refusal::internal(),
    };
    refusal.with_retry_after(err.retry_after_s())
}

/// 400 `invalid_json`: a buffered route's body that is not JSON.
fn invalid_json() -> Refusal {
    Refusal::bad_request(
        "invalid_json",
        "The request body must be valid JSON on this route.",
    )
}

/// A policy refusal. Reasons the gateway does not know (a security team's own `@reason`
/// codes) answer 403 `forbidden`; the reason itself is audited.
fn policy_refusal(reason: &str) -> Refusal {
    match reason {
        "consent_required" => Refusal::forbidden(
            "consent_required",
            "The data subject has not consented to this access for this purpose.",
        ),
        "purpose_not_allowed" => Refusal::forbidden(
            "purpose_not_allowed",
            "This caller is not registered for the requested purpose.",
        ),
        "threshold_below_floor" => Refusal::forbidden(
            "threshold_below_floor",
            "Policy requires more distinct organisations for an aggregate's release.",
        ),
        "threshold_not_met" => Refusal::forbidden(
            "threshold_not_met",
            "Too few distinct organisations have contributed for a release.",
        ),
        crate::risk::SUSPENDED => Refusal::forbidden(
            crate::risk::SUSPENDED,
            "This caller is suspended by a risk threshold until an operator clears it.",
        ),
        _ => Refusal::forbidden("forbidden", "Policy does not allow this request."),
    }
}

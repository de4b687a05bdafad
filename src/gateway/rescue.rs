//! The rescue step: the only place that turns a [`GatewayError`] into an HTTP response.
//!
//! The client sees a status, a stable machine-readable code, a fixed human message and the
//! request id; never the error's internal detail (upstream names, addresses, causes).

use super::error::GatewayError;
use super::headers::REQUEST_ID;
use super::ProxyBody;
use crate::identity::IdentityError;
use crate::protect::ProtectError;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

/// Status, stable code and client-facing message for an error.
pub fn status_and_code(err: &GatewayError) -> (StatusCode, &'static str, &'static str) {
    use GatewayError as E;
    match err {
        E::NoRoute => (
            StatusCode::NOT_FOUND,
            "route_not_found",
            "No route matches this request.",
        ),
        E::MethodNotAllowed { .. } => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This method is not allowed on this route.",
        ),
        E::AmbiguousPath => (
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "The request path contains dot-segments or encoded separators.",
        ),
        E::BodyTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "The request body is larger than the gateway accepts.",
        ),
        E::ClientBody(_) => (
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The request body could not be read.",
        ),
        E::InvalidJson => (
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The request body must be valid JSON on this route.",
        ),
        E::UnsupportedMediaType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "The request body must be whole JSON (Content-Type application/json, no content coding) on this route.",
        ),
        E::JsonTooDeep => (
            StatusCode::BAD_REQUEST,
            "json_too_deep",
            "The request body nests JSON deeper than the gateway accepts.",
        ),
        E::UpstreamUnreachable { .. } => (
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            "The service behind the gateway could not be reached.",
        ),
        E::UpstreamFailed { .. }
        | E::UpstreamNotJson { .. }
        | E::UpstreamResponseTooLarge { .. } => (
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            "The service behind the gateway gave no usable response.",
        ),
        E::UpstreamTimeout { .. } => (
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "The service behind the gateway did not answer in time.",
        ),
        E::InvalidAmount => (
            StatusCode::BAD_REQUEST,
            "invalid_amount",
            "The request must carry exactly one integer amount where this route expects it.",
        ),
        E::InvalidSubject => (
            StatusCode::BAD_REQUEST,
            "invalid_subject",
            "The data subject's id is not in the one form this route accepts.",
        ),
        E::ResponseSubject { .. } => (
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            "The service behind the gateway gave no usable response.",
        ),
        E::Identity(e) => identity_refusal(e),
        E::InvalidParameter(_) => (
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "A query parameter is not one this endpoint accepts.",
        ),
        E::RateLimited { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests; try again after the time in Retry-After.",
        ),
        E::Refused { reason } => refusal(reason),
        E::ConsentUnavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "consent_unavailable",
            "Consent cannot be confirmed right now; the request is refused.",
        ),
        E::AuditUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            "The gateway cannot record requests right now and refuses them.",
        ),
        E::RequestProtection(e) => request_protection(e),
        E::ResponseProtection(e) => response_protection(e),
        E::Admin(e) => super::admin_api::status_and_code(e),
        E::Analytics(e) => super::analytics_api::status_and_code(e),
        #[cfg(feature = "fhe")]
        E::Fhe(e) => super::fhe_api::status_and_code(e),
        E::Internal(_) => INTERNAL,
    }
}

type Answer = (StatusCode, &'static str, &'static str);

const INTERNAL: Answer = (
    StatusCode::INTERNAL_SERVER_ERROR,
    "internal_error",
    "The gateway failed to handle this request.",
);

const KEYS_UNAVAILABLE: Answer = (
    StatusCode::SERVICE_UNAVAILABLE,
    "keys_unavailable",
    "Protection keys are unavailable; the request is refused rather than sent unprotected.",
);

/// A request body field protection refused: the client's, unless keys or rules failed.
fn request_protection(e: &ProtectError) -> Answer {
    use crate::protect::document::DocumentError;
    use crate::protect::transform::TransformError as T;
    use crate::protect::KeyUnavailable as K;
    match e {
        ProtectError::Body(DocumentError::DuplicateKey) => (
            StatusCode::BAD_REQUEST,
            "duplicate_key",
            "The request body has an object with the same key twice.",
        ),
        ProtectError::Body(_) => (
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The request body must be valid JSON on this route.",
        ),
        ProtectError::Misspelled(_) => (
            StatusCode::BAD_REQUEST,
            "ambiguous_member",
            "A member name differs only in case, `_` or `-` from a protected member's name.",
        ),
        ProtectError::SubjectRequired => (
            StatusCode::BAD_REQUEST,
            "subject_required",
            "The request does not say whose data it carries, and this route needs it.",
        ),
        ProtectError::PiiDetected { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "pii_detected",
            "The request carries personal data in a field that is not meant to hold it.",
        ),
        ProtectError::Key(K::Shredded) => (
            StatusCode::CONFLICT,
            "subject_erased",
            "The data subject's data was erased; nothing new is stored under their key.",
        ),
        ProtectError::Transform(_, T::Random) => INTERNAL,
        ProtectError::Transform(_, T::MissingKey { .. } | T::WrongKeyKind { .. }) => INTERNAL,
        ProtectError::Transform(_, _) => (
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "A protected field has a value this route cannot protect.",
        ),
        ProtectError::Key(_) => KEYS_UNAVAILABLE,
        ProtectError::Internal => INTERNAL,
    }
}

/// A response field protection could not reveal as decided: never passed on.
fn response_protection(e: &ProtectError) -> Answer {
    match e {
        ProtectError::Key(crate::protect::KeyUnavailable::Unavailable(_)) => KEYS_UNAVAILABLE,
        ProtectError::PiiDetected { .. } => (
            StatusCode::BAD_GATEWAY,
            "pii_blocked",
            "The service behind the gateway answered with personal data it may not release.",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            "The service behind the gateway gave no usable response.",
        ),
    }
}

/// Status and message for a policy refusal. Reasons the gateway does not know (a security
/// team's own `@reason` codes) answer 403 `forbidden`; the reason itself is audited.
fn refusal(reason: &str) -> (StatusCode, &'static str, &'static str) {
    match reason {
        "consent_required" => (
            StatusCode::FORBIDDEN,
            "consent_required",
            "The data subject has not consented to this access for this purpose.",
        ),
        "purpose_not_allowed" => (
            StatusCode::FORBIDDEN,
            "purpose_not_allowed",
            "This caller is not registered for the requested purpose.",
        ),
        "threshold_below_floor" => (
            StatusCode::FORBIDDEN,
            "threshold_below_floor",
            "Policy requires more distinct organisations for an aggregate's release.",
        ),
        "threshold_not_met" => (
            StatusCode::FORBIDDEN,
            "threshold_not_met",
            "Too few distinct organisations have contributed for a release.",
        ),
        _ => (
            StatusCode::FORBIDDEN,
            "forbidden",
            "Policy does not allow this request.",
        ),
    }
}

/// Status, code and message for an identify-phase refusal (RFC 6750 section 3.1 codes).
fn identity_refusal(err: &IdentityError) -> (StatusCode, &'static str, &'static str) {
    match err {
        IdentityError::Missing => (
            StatusCode::UNAUTHORIZED,
            "authentication_required",
            "This route needs a bearer token or a registered client certificate.",
        ),
        IdentityError::InvalidRequest(_) => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Send the access token once, in the Authorization header only.",
        ),
        IdentityError::InvalidToken(_) => (
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "The access token is not valid here.",
        ),
        IdentityError::StepUp(_) => (
            StatusCode::UNAUTHORIZED,
            "step_up_required",
            "A stronger or more recent authentication is required for this request.",
        ),
        IdentityError::RevocationUnavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "revocation_unavailable",
            "Token revocation cannot be checked right now; the request is refused.",
        ),
        IdentityError::IntrospectionUnavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "introspection_unavailable",
            "The access token cannot be checked with its issuer right now; the request is refused.",
        ),
        IdentityError::InvalidApiKey(_) => (
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "The API key is not valid.",
        ),
        IdentityError::ApiKeysUnavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "api_keys_unavailable",
            "API keys cannot be checked right now; the request is refused.",
        ),
        IdentityError::OtpInvalid(_) => (
            StatusCode::UNAUTHORIZED,
            "otp_invalid",
            "The one-time code is not valid.",
        ),
        IdentityError::OtpLocked { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "otp_locked",
            "Too many wrong one-time codes; try again after the time in Retry-After.",
        ),
        IdentityError::OtpAlreadyEnrolled => (
            StatusCode::CONFLICT,
            "totp_already_enrolled",
            "A confirmed authenticator is enrolled; an operator must remove it first.",
        ),
        IdentityError::OtpEnrollmentPending => (
            StatusCode::CONFLICT,
            "totp_enrollment_pending",
            "Another session's enrollment is pending; confirm it from that session or wait until it expires.",
        ),
        IdentityError::OtpEnrollmentByOperator => (
            StatusCode::FORBIDDEN,
            "totp_enrollment_by_operator",
            "Authenticators are enrolled by operators on this gateway.",
        ),
        IdentityError::OtpUnavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "otp_unavailable",
            "One-time codes cannot be checked right now; the request is refused.",
        ),
    }
}

/// The `WWW-Authenticate` challenge for an identify-phase refusal.
fn challenge(err: &IdentityError) -> Option<String> {
    match err {
        IdentityError::Missing => Some("Bearer realm=\"privgate\"".to_owned()),
        IdentityError::InvalidRequest(_) => {
            Some("Bearer realm=\"privgate\", error=\"invalid_request\"".to_owned())
        }
        IdentityError::InvalidToken(_) => {
            Some("Bearer realm=\"privgate\", error=\"invalid_token\"".to_owned())
        }
        IdentityError::StepUp(challenge) => Some(challenge.www_authenticate()),
        IdentityError::OtpInvalid(_) => Some(
            "Bearer realm=\"privgate\", error=\"invalid_token\", \
             error_description=\"one-time code not accepted\""
                .to_owned(),
        ),
        IdentityError::InvalidApiKey(_) => Some("ApiKey realm=\"privgate\"".to_owned()),
        IdentityError::RevocationUnavailable(_)
        | IdentityError::IntrospectionUnavailable(_)
        | IdentityError::ApiKeysUnavailable(_)
        | IdentityError::OtpLocked { .. }
        | IdentityError::OtpAlreadyEnrolled
        | IdentityError::OtpEnrollmentPending
        | IdentityError::OtpEnrollmentByOperator
        | IdentityError::OtpUnavailable(_) => None,
    }
}

/// Builds the JSON error response for `err`.
pub fn rescue(err: &GatewayError, request_id: &str) -> Response<ProxyBody> {
    let (status, code, message) = status_and_code(err);
    // Analytics refusals tell the analyst what is allowed, what ran out and when it
    // refreshes; their messages name SQL forms, columns and budgets, never data values.
    let detail = match err {
        GatewayError::Analytics(e) => super::analytics_api::client_message(e),
        _ => None,
    };
    let message = detail.as_deref().unwrap_or(message);
    let body = serde_json::json!({
        "error": { "code": code, "message": message, "request_id": request_id }
    });
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, id);
    }
    if let GatewayError::MethodNotAllowed { allowed } = err {
        let list: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
        if let Ok(value) = HeaderValue::from_str(&list.join(", ")) {
            headers.insert(header::ALLOW, value);
        }
    }
    if let Some(value) = match err {
        GatewayError::Identity(e) => challenge(e),
        _ => None,
    }
    .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    if let Some(seconds) = err.retry_after_s() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn error_body_is_stable_json_without_internal_detail() {
        let err = GatewayError::UpstreamUnreachable {
            upstream: "core-banking-secret-host".into(),
            cause: "tcp connect error 10.1.2.3:443".into(),
        };
        let response = rescue(&err, "req-1");
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(response.headers()[REQUEST_ID], "req-1");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            !text.contains("secret-host") && !text.contains("10.1.2.3"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["error"]["code"], "upstream_unavailable");
        assert_eq!(json["error"]["request_id"], "req-1");
    }

    #[test]
    fn identity_refusals_carry_the_rfc_6750_challenge() {
        use crate::identity::StepUpChallenge;
        let cases = [
            (IdentityError::Missing, 401, Some("Bearer realm=\"privgate\"")),
            (
                IdentityError::InvalidRequest("x"),
                400,
                Some("Bearer realm=\"privgate\", error=\"invalid_request\""),
            ),
            (
                IdentityError::InvalidToken("x"),
                401,
                Some("Bearer realm=\"privgate\", error=\"invalid_token\""),
            ),
            (
                IdentityError::StepUp(StepUpChallenge::default()),
                401,
                Some("Bearer error=\"insufficient_user_authentication\", error_description=\"A different authentication level is required\""),
            ),
            (IdentityError::RevocationUnavailable("x".into()), 503, None),
            (IdentityError::IntrospectionUnavailable("x".into()), 503, None),
        ];
        for (err, status, challenge) in cases {
            let name = err.to_string();
            let response = rescue(&GatewayError::Identity(err), "r");
            assert_eq!(response.status().as_u16(), status, "{name}");
            assert_eq!(
                response
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .map(|v| v.to_str().unwrap()),
                challenge,
                "{name}"
            );
        }
    }

    #[test]
    fn statuses_follow_the_failing_side() {
        let cases = [
            (GatewayError::BodyTooLarge, 413),
            (GatewayError::NoRoute, 404),
            (GatewayError::InvalidJson, 400),
            (
                GatewayError::UpstreamTimeout {
                    upstream: "u".into(),
                },
                504,
            ),
            (
                GatewayError::UpstreamFailed {
                    upstream: "u".into(),
                    cause: "x".into(),
                },
                502,
            ),
            (GatewayError::Internal("x".into()), 500),
        ];
        for (err, status) in cases {
            assert_eq!(status_and_code(&err).0.as_u16(), status, "{err}");
        }
    }
}

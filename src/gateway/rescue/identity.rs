//! Refusals of the identify phase: RFC 6750 section 3.1 codes and challenges (RFC 9470 for
//! step-up), the API key and one-time code refusals, and TOTP enrolment's conflicts.

use super::Refusal;
use crate::identity::{IdentityError, StepUpChallenge};

/// What the client is told about an identify-phase refusal, with its challenge.
pub(super) fn refusal(err: &IdentityError) -> Refusal {
    let refusal = match err {
        IdentityError::Missing => Refusal::unauthorized(
            "authentication_required",
            "This route needs a bearer token or a registered client certificate.",
        ),
        IdentityError::InvalidRequest(_) => Refusal::bad_request(
            "invalid_request",
            "Send the access token once, in the Authorization header only.",
        ),
        IdentityError::InvalidToken(_) => {
            Refusal::unauthorized("invalid_token", "The access token is not valid here.")
        }
        IdentityError::StepUp(_) => Refusal::unauthorized(
            "step_up_required",
            "A stronger or more recent authentication is required for this request.",
        ),
        IdentityError::RevocationUnavailable(_) => Refusal::unavailable(
            "revocation_unavailable",
            "Token revocation cannot be checked right now; the request is refused.",
        ),
        IdentityError::IntrospectionUnavailable(_) => Refusal::unavailable(
            "introspection_unavailable",
            "The access token cannot be checked with its issuer right now; the request is refused.",
        ),
        IdentityError::InvalidApiKey(_) => {
            Refusal::unauthorized("invalid_api_key", "The API key is not valid.")
        }
        IdentityError::ApiKeysUnavailable(_) => Refusal::unavailable(
            "api_keys_unavailable",
            "API keys cannot be checked right now; the request is refused.",
        ),
        IdentityError::OtpInvalid(_) => {
            Refusal::unauthorized("otp_invalid", "The one-time code is not valid.")
        }
        IdentityError::OtpLocked { .. } => Refusal::rate_limited(
            "otp_locked",
            "Too many wrong one-time codes; try again after the time in Retry-After.",
        ),
        IdentityError::OtpAlreadyEnrolled => Refusal::conflict(
            "totp_already_enrolled",
            "A confirmed authenticator is enrolled; an operator must remove it first.",
        ),
        IdentityError::OtpEnrollmentPending => Refusal::conflict(
            "totp_enrollment_pending",
            "Another session's enrollment is pending; confirm it from that session or wait until it expires.",
        ),
        IdentityError::OtpEnrollmentByOperator => Refusal::forbidden(
            "totp_enrollment_by_operator",
            "Authenticators are enrolled by operators on this gateway.",
        ),
        IdentityError::OtpUnavailable(_) => Refusal::unavailable(
            "otp_unavailable",
            "One-time codes cannot be checked right now; the request is refused.",
        ),
    };
    refusal.with_challenge(challenge(err))
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
        IdentityError::StepUp(challenge) => Some(step_up_challenge(challenge)),
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

/// The RFC 9470 (section 3) step-up challenge: what the caller must come back with. Values
/// were checked at configuration load to need no escaping inside quotes.
pub(super) fn step_up_challenge(challenge: &StepUpChallenge) -> String {
    let mut value = String::from(
        "Bearer error=\"insufficient_user_authentication\", \
         error_description=\"A different authentication level is required\"",
    );
    if !challenge.acr_values().is_empty() {
        value.push_str(&format!(
            ", acr_values=\"{}\"",
            challenge.acr_values().join(" ")
        ));
    }
    if let Some(max_age) = challenge.max_age() {
        value.push_str(&format!(", max_age={}", max_age.as_secs()));
    }
    value
}

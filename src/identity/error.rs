//! Why the identify phase refused a request. Reasons are fixed, log-safe strings: they
//! never carry the token, a claim value or key material.

use super::step_up::StepUpChallenge;

/// A refusal by the identify phase; the gateway's rescue step says what the client is told
/// (with the `WWW-Authenticate` challenge of RFC 6750 section 3 or RFC 9470). The statuses
/// named below are the rescue step's choice, given here as a reader's guide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No credentials at all (401, challenge without an error code).
    #[error("no credentials")]
    Missing,
    /// Credentials presented the wrong way (400 `invalid_request`).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// A token that is not acceptable (401 `invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// The caller's authentication is not strong or fresh enough (401
    /// `insufficient_user_authentication`).
    #[error("step-up authentication required")]
    StepUp(StepUpChallenge),
    /// The issuer's introspection endpoint could not be asked: opaque tokens are refused.
    #[error("token introspection unavailable: {0}")]
    IntrospectionUnavailable(String),
    /// The revocation list could not be read: tokens are refused rather than trusted.
    #[error("token revocation list unavailable: {0}")]
    RevocationUnavailable(String),
    /// An API key that is malformed, unknown, wrong or revoked (401 `invalid_api_key`).
    #[error("invalid API key: {0}")]
    InvalidApiKey(&'static str),
    /// The API key store could not be read: the key is refused rather than trusted.
    #[error("API keys unavailable: {0}")]
    ApiKeysUnavailable(String),
    /// A one-time code that is wrong, malformed, already used, or for a user without a
    /// (matching) enrollment (401 `otp_invalid`).
    #[error("one-time code refused: {0}")]
    OtpInvalid(&'static str),
    /// Too many wrong codes: no code is checked until the cool-down ends (429 `otp_locked`).
    #[error("one-time codes locked for {retry_after_s} s")]
    OtpLocked {
        /// Seconds until codes are checked again.
        retry_after_s: u64,
        /// This attempt started the lockout (for metrics: lockouts vs. attempts while locked).
        started: bool,
    },
    /// Enrollment refused: the user has a confirmed TOTP enrollment (409).
    #[error("TOTP already enrolled")]
    OtpAlreadyEnrolled,
    /// Enrollment refused: another session's pending enrollment is still current (409).
    #[error("a pending TOTP enrollment of another session exists")]
    OtpEnrollmentPending,
    /// Self-service enrollment is off (`[totp.enrollment] mode = "operator"`) (403).
    #[error("TOTP enrollment is by operators only")]
    OtpEnrollmentByOperator,
    /// Enrollments, the keyring or the replay state could not be used (503).
    #[error("one-time codes unavailable: {0}")]
    OtpUnavailable(String),
}

impl IdentityError {
    /// Whether the caller's credentials (or their absence) caused it, rather than a store,
    /// list or issuer the gateway could not consult (those fail closed, and are the gateway's).
    pub fn is_client(&self) -> bool {
        !matches!(
            self,
            Self::RevocationUnavailable(_)
                | Self::IntrospectionUnavailable(_)
                | Self::ApiKeysUnavailable(_)
                | Self::OtpUnavailable(_)
        )
    }
}

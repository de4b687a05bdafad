//! Refusals of field protection: the request body's faults are the client's (4xx), the
//! keys' and rules' are the gateway's, and a response that cannot be revealed as decided is
//! never passed on (502).

use super::Refusal;
use crate::protect::document::DocumentError;
use crate::protect::transform::TransformError;
use crate::protect::{KeyUnavailable, ProtectError};

/// A request body that field protection refused (or could not protect).
pub(super) fn request(e: &ProtectError) -> Refusal {
    match e {
        ProtectError::Body(DocumentError::DuplicateKey) => Refusal::bad_request(
            "duplicate_key",
            "The request body has an object with the same key twice.",
        ),
        ProtectError::Body(_) => super::invalid_json(),
        ProtectError::Misspelled(_) => Refusal::bad_request(
            "ambiguous_member",
            "A member name differs only in case, `_` or `-` from a protected member's name.",
        ),
        ProtectError::SubjectRequired => Refusal::bad_request(
            "subject_required",
            "The request does not say whose data it carries, and this route needs it.",
        ),
        ProtectError::PiiDetected { .. } => Refusal::unprocessable(
            "pii_detected",
            "The request carries personal data in a field that is not meant to hold it.",
        ),
        ProtectError::Key(KeyUnavailable::Shredded) => Refusal::conflict(
            "subject_erased",
            "The data subject's data was erased; nothing new is stored under their key.",
        ),
        ProtectError::Transform(_, TransformError::Random) => Refusal::internal(),
        ProtectError::Transform(
            _,
            TransformError::MissingKey { .. } | TransformError::WrongKeyKind { .. },
        ) => Refusal::internal(),
        ProtectError::Transform(_, _) => Refusal::bad_request(
            "invalid_field",
            "A protected field has a value this route cannot protect.",
        ),
        ProtectError::Key(_) => keys_unavailable(),
        ProtectError::Internal => Refusal::internal(),
    }
}

/// An upstream response that field protection could not reveal as decided.
pub(super) fn response(e: &ProtectError) -> Refusal {
    match e {
        ProtectError::Key(KeyUnavailable::Unavailable(_)) => keys_unavailable(),
        ProtectError::PiiDetected { .. } => Refusal::bad_gateway(
            "pii_blocked",
            "The service behind the gateway answered with personal data it may not release.",
        ),
        _ => Refusal::unusable_upstream_answer(),
    }
}

/// 503 `keys_unavailable`: the gateway refuses rather than pass plaintext.
fn keys_unavailable() -> Refusal {
    Refusal::unavailable(
        "keys_unavailable",
        "Protection keys are unavailable; the request is refused rather than sent unprotected.",
    )
}

//! Refusals of the APIs the gateway serves itself: the admin API, analytics and FHE. Their
//! domain errors only classify (`is_client()`); what a client is told is decided here.

use super::Refusal;
use crate::analytics::dp::AnalyticsError;
use crate::approval::AdminError;
use crate::gateway::error::ConsoleError;

/// An admin API call that was refused or could not be carried out.
pub(super) fn admin_api(err: &AdminError) -> Refusal {
    match err {
        AdminError::Invalid(_) => invalid_request(),
        AdminError::NotFound => Refusal::not_found("not_found", "No such record."),
        AdminError::AlreadyApproved => Refusal::conflict(
            "already_approved",
            "This principal has already approved the operation; it counts once.",
        ),
        AdminError::Expired => Refusal::conflict(
            "operation_expired",
            "The operation expired before it had its approvals; request it again.",
        ),
        AdminError::NotPending => Refusal::conflict(
            "operation_not_pending",
            "The operation has already been executed.",
        ),
        AdminError::ApprovalsRequired(_) | AdminError::Store(_) => Refusal::store_unavailable(),
    }
}

/// A differentially private query that got no answer. Client-side refusals tell the analyst
/// what is allowed, what ran out and when it refreshes (the error's own text, which names
/// SQL forms, columns and budgets, never data values); the others say only what failed.
pub(super) fn analytics(err: &AnalyticsError) -> Refusal {
    let refusal = match err {
        AnalyticsError::UnknownDataset(_) => {
            Refusal::not_found("dataset_not_found", "No such dataset.")
        }
        AnalyticsError::InvalidRequest(_) => {
            Refusal::bad_request("invalid_request", "The request is malformed.")
        }
        AnalyticsError::Query(_) => Refusal::bad_request(
            "query_not_allowed",
            "The SQL is outside the allowed subset.",
        ),
        AnalyticsError::Plan(_) => Refusal::bad_request(
            "invalid_privacy_parameters",
            "The privacy parameters cannot be met.",
        ),
        AnalyticsError::BudgetExhausted { .. } => Refusal::rate_limited(
            "privacy_budget_exhausted",
            "The privacy budget cannot cover this query; it refreshes at the time in Retry-After.",
        ),
        AnalyticsError::Busy => Refusal::unavailable(
            "query_in_progress",
            "An identical query is still being answered; retry shortly.",
        ),
        AnalyticsError::Source(_) => Refusal::unavailable(
            "dataset_unavailable",
            "The dataset's database is unavailable; nothing was spent.",
        ),
        AnalyticsError::Store(_) => Refusal::store_unavailable(),
        AnalyticsError::Internal(_) => Refusal::internal(),
    };
    match err {
        AnalyticsError::UnknownDataset(_)
        | AnalyticsError::InvalidRequest(_)
        | AnalyticsError::Query(_)
        | AnalyticsError::Plan(_)
        | AnalyticsError::BudgetExhausted { .. } => refusal.with_message(err.to_string()),
        _ => refusal,
    }
}

/// An encrypted-sum API call that was refused or could not be carried out.
#[cfg(feature = "fhe")]
pub(super) fn fhe(err: &crate::analytics::fhe::FheError) -> Refusal {
    use crate::analytics::fhe::FheError as E;
    match err {
        E::Invalid(_) => invalid_request(),
        E::Malformed(_) => Refusal::bad_request(
            "fhe_malformed",
            "The ciphertext is malformed, oversized or not made for this gateway's parameters.",
        ),
        E::ProofInvalid => Refusal::bad_request(
            "fhe_proof_invalid",
            "The contribution's proof does not verify for this aggregate, contributor, nonce and key.",
        ),
        E::TooWide(_) => Refusal::bad_request(
            "fhe_contribution_too_wide",
            "The contribution is wider than the aggregate's bit width.",
        ),
        E::NotFound => Refusal::not_found("not_found", "No such aggregate."),
        E::OrganisationRequired => Refusal::forbidden(
            "organisation_required",
            "Contributions count toward a threshold of distinct organisations; this caller has no organisation.",
        ),
        E::Closed => Refusal::conflict(
            "aggregate_closed",
            "The aggregate is closed (released or past its deadline).",
        ),
        E::NonceReused => Refusal::conflict(
            "nonce_reused",
            "This nonce was already used in this aggregate.",
        ),
        E::ThresholdNotMet { .. } => Refusal::conflict(
            "threshold_not_met",
            "Too few distinct organisations have contributed for a release.",
        ),
        E::BudgetExhausted => Refusal::conflict(
            "privacy_budget_exhausted",
            "The aggregate's privacy budget cannot pay for another release.",
        ),
        E::Full => Refusal::conflict(
            "aggregate_full",
            "The aggregate has its maximum number of contributors.",
        ),
        E::Keys(_) => Refusal::unavailable(
            "fhe_keys_unavailable",
            "The gateway's FHE keys are unavailable.",
        ),
        E::Store(_) => Refusal::store_unavailable(),
        E::Internal(_) => Refusal::internal(),
    }
}

/// 400 `invalid_request`: a served API call that is malformed or names something invalid.
fn invalid_request() -> Refusal {
    Refusal::bad_request(
        "invalid_request",
        "The request is malformed or names something invalid.",
    )
}

/// A console sign-in or form that was refused, or an issuer that did not answer: the
/// person is told what to do next, never which check failed in detail.
pub(super) fn console(err: &ConsoleError) -> Refusal {
    match err {
        ConsoleError::SignInFailed => Refusal::bad_request(
            "sign_in_failed",
            "The sign-in could not be completed (it expired, was used already or was not started here); sign in again.",
        ),
        ConsoleError::FormRefused => Refusal::forbidden(
            "form_refused",
            "The form was not sent from this session's own page; reload the page and try again.",
        ),
        ConsoleError::Invalid(_) => {
            Refusal::bad_request("invalid_request", "The form is incomplete or malformed.")
        }
        ConsoleError::Busy => Refusal::unavailable(
            "console_busy",
            "The console cannot open more sessions now; try again later.",
        ),
        ConsoleError::Store(_) => Refusal::store_unavailable(),
        ConsoleError::TrailTimeout => Refusal::unavailable(
            "trail_read_timeout",
            "Reading the audit trail took too long; narrow the filters, or use `privgate audit`.",
        ),
        ConsoleError::Issuer(_) => Refusal::bad_gateway(
            "issuer_unavailable",
            "The identity provider did not complete the sign-in; try again.",
        ),
    }
}

//! Granting and revoking consents: the one way `privgate consent`, the admin API and the
//! console do it (same validation, same store calls). A revocation is an approval-gated
//! operation ([`revocation`]); it holds from the moment it executes, on every replica within
//! `[store] revocation_window`.

use super::{AdminError, Operation, OperationStatus, OperationView};
use crate::config::subject::SubjectIds;
use crate::consent::{ConsentError, ConsentRecord, NewConsent};
use crate::store::{Revocation, Store};
use std::time::Duration;

/// The expiry of a consent granted at `now_ms` for `lifetime` (none: it does not expire).
pub(crate) fn expiry(now_ms: i64, lifetime: Option<Duration>) -> Option<i64> {
    lifetime.map(|d| now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// Refuses a subject id no route spells that way: decisions look consent up by the route's
/// one spelling of the id, so a consent for `042` would be stored and never match customer
/// 42's requests (the customer's consent silently without effect).
pub(crate) fn subject_known(subject_ids: &SubjectIds, subject: &str) -> Result<(), AdminError> {
    match subject_ids.accepts(subject) {
        true => Ok(()),
        false => Err(AdminError::Invalid(
            "subject: not an id as the routes spell subject ids (a consent for another \
             spelling would never match the customer's requests)"
                .to_owned(),
        )),
    }
}

/// Validates and stores a new consent.
pub(crate) async fn grant(
    store: &Store,
    subject_ids: &SubjectIds,
    new: &NewConsent,
    now_ms: i64,
) -> Result<ConsentRecord, AdminError> {
    subject_known(subject_ids, &new.subject)?;
    new.validate(now_ms)
        .map_err(|ConsentError::Invalid { field, problem }| {
            AdminError::Invalid(format!("{field}: {problem}"))
        })?;
    Ok(store.grant_consent(new, now_ms).await?)
}

/// The revocation of consent `id` as an approval-gated operation, naming the record's own
/// data subject (what policy decides on). Every way to revoke a consent comes here: the
/// console, the admin API and `privgate consent revoke` all go through the approval flow,
/// so `[admin] consent_revocation_approvals` holds whichever is used.
pub(crate) async fn revocation(store: &Store, id: &str) -> Result<Operation, AdminError> {
    let record = store.consent(id).await?.ok_or(AdminError::NotFound)?;
    Ok(Operation::ConsentRevoke {
        consent: record.id,
        subject: record.subject,
    })
}

/// Checks that consent `id` exists and is `subject`'s. Another subject's consent is "not
/// found" too: a caller allowed to act for one subject learns nothing of others' records.
pub(crate) async fn of_subject(store: &Store, id: &str, subject: &str) -> Result<(), AdminError> {
    match store.consent(id).await? {
        Some(record) if record.subject == subject => Ok(()),
        _ => Err(AdminError::NotFound),
    }
}

/// Withdraws `subject`'s consent `id` from `now_ms` on (an approved operation's execution);
/// revoking a revoked consent changes nothing.
pub(super) async fn revoke(
    store: &Store,
    id: &str,
    subject: &str,
    now_ms: i64,
) -> Result<Revocation, AdminError> {
    of_subject(store, id, subject).await?;
    match store.revoke_consent(id, now_ms).await? {
        Revocation::NotFound => Err(AdminError::NotFound),
        done => Ok(done),
    }
}

/// A record as shown to operators: its fields and its status at `now_ms`.
pub(crate) fn shown(record: &ConsentRecord, now_ms: i64) -> serde_json::Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    value["status"] = serde_json::json!(record.status(now_ms));
    value
}

/// What became of a requested consent revocation, as the admin API and the console say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RevocationOutcome {
    /// It executed and withdrew the consent.
    Revoked,
    /// It executed; the consent had been revoked before.
    AlreadyRevoked,
    /// It waits for more approvals (`[admin] consent_revocation_approvals`).
    AwaitingApproval,
    /// It executed and failed (the operation's outcome says why), or expired or was denied.
    Failed,
}

impl RevocationOutcome {
    /// The outcome of the revocation operation `view`.
    pub(crate) fn of(view: &OperationView) -> Self {
        let summary = view
            .outcome
            .as_deref()
            .and_then(|o| o.strip_prefix(super::DONE))
            .map(|s| s.trim_start_matches(": "));
        match (view.status, summary) {
            (OperationStatus::Pending, _) => Self::AwaitingApproval,
            (OperationStatus::Executed, Some(super::execute::CONSENT_REVOKED)) => Self::Revoked,
            (OperationStatus::Executed, Some(_)) => Self::AlreadyRevoked,
            _ => Self::Failed,
        }
    }

    /// Its name in API answers and the console's notices.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::AlreadyRevoked => "already_revoked",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Failed => "failed",
        }
    }
}

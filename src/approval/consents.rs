//! Granting and revoking consents: the one way both `privgate consent` and the admin API do
//! it (same validation, same store calls). Revocation holds from the moment it commits: the
//! decide phase reads consent from the store on every decision.

use super::AdminError;
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

/// Withdraws a consent from `now_ms` on; revoking a revoked consent changes nothing.
pub(crate) async fn revoke(store: &Store, id: &str, now_ms: i64) -> Result<Revocation, AdminError> {
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

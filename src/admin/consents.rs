//! Granting and revoking consents: the one way both `privgate consent` and the admin API do
//! it (same validation, same store calls). Revocation holds from the moment it commits: the
//! decide phase reads consent from the store on every decision.

use super::AdminError;
use crate::consent::{ConsentError, ConsentRecord, NewConsent};
use crate::store::{Revocation, Store};
use std::time::Duration;

/// The expiry of a consent granted at `now_ms` for `lifetime` (none: it does not expire).
pub fn expiry(now_ms: i64, lifetime: Option<Duration>) -> Option<i64> {
    lifetime.map(|d| now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// Validates and stores a new consent.
pub async fn grant(
    store: &Store,
    new: &NewConsent,
    now_ms: i64,
) -> Result<ConsentRecord, AdminError> {
    new.validate(now_ms)
        .map_err(|ConsentError::Invalid { field, problem }| {
            AdminError::Invalid(format!("{field}: {problem}"))
        })?;
    Ok(store.grant_consent(new, now_ms).await?)
}

/// Withdraws a consent from `now_ms` on; revoking a revoked consent changes nothing.
pub async fn revoke(store: &Store, id: &str, now_ms: i64) -> Result<Revocation, AdminError> {
    match store.revoke_consent(id, now_ms).await? {
        Revocation::NotFound => Err(AdminError::NotFound),
        done => Ok(done),
    }
}

/// A record as shown to operators: its fields and its status at `now_ms`.
pub fn shown(record: &ConsentRecord, now_ms: i64) -> serde_json::Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    value["status"] = serde_json::json!(record.status(now_ms));
    value
}

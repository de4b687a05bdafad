//! The decide phase: ask the policy set whether the caller may take the route's action on
//! the data subject, with the subject's consent for the caller and purpose read fresh from
//! the store (so a revocation holds on every replica from the moment it commits).

use super::error::GatewayError;
use super::generation::Generation;
use super::record::RequestRecord;
use super::router::Route;
use crate::decision::Decision;
use crate::identity::{Identity, IdentityError};
use crate::policy::{ConsentGrant, DecisionRequest};
use crate::store::{now_ms, Store};
use http::request::Parts;

/// Header a caller picks its purpose with (one of those it is registered for).
const PURPOSE: &str = "x-purpose";

/// The `@reason` by which a forbid policy asks for step-up authentication.
pub(super) const STEP_UP_REQUIRED: &str = "step_up_required";

/// Decides a policy-decided route on `subject`, the data subject its route resolved (in the
/// route's canonical form, see [`super::subject`]); fills the audit record as it learns
/// who, why and what. Views are decided for `field_classes` (the classes the route's
/// response rules bind). Returns the request it decided too, so per-subject views can be
/// asked the same way.
#[allow(clippy::too_many_arguments)] // the phase's inputs, each used once
pub async fn decide(
    generation: &Generation,
    store: Option<&Store>,
    identity: Option<&Identity>,
    parts: &Parts,
    route: &Route,
    subject: Option<&str>,
    amount: Option<i64>,
    field_classes: &[String],
    record: &mut RequestRecord,
) -> Result<(Decision, DecisionRequest), GatewayError> {
    let action = route
        .action
        .as_deref()
        .ok_or_else(|| GatewayError::Internal("route has no action".into()))?;
    let engine = generation.policy.as_ref().ok_or_else(|| {
        GatewayError::Internal(format!(
            "route `{}` has an action but no policy set",
            route.name
        ))
    })?;
    record.policy_set_hash = Some(engine.hash().to_owned());
    let identity = identity.ok_or(IdentityError::Missing)?;
    let caller = &identity.caller;

    record.subject = subject.map(str::to_owned);

    let purpose = purpose(parts, caller, record)?;

    let consent = match (subject, store) {
        (Some(subject), Some(store)) => {
            consent_for(store, subject, &caller.grantee(), &purpose).await?
        }
        (Some(_), None) => return Err(GatewayError::Internal("consent needs a store".into())),
        (None, _) => None,
    };
    record.consent_id = consent.as_ref().map(|c| c.id.clone());

    let request = DecisionRequest {
        caller: caller.clone(),
        action: action.to_owned(),
        customer: subject.unwrap_or("").to_owned(),
        purpose,
        amr: identity.amr.clone(),
        auth_age_seconds: identity.auth_age_seconds(now_ms() / 1000),
        certificate_bound: identity.certificate_bound,
        amount,
        consent,
        field_classes: field_classes.to_vec(),
        aggregate: None,
    };
    let decision = engine.decide(&request)?;
    record.policy_ids.clone_from(&decision.policy_ids);
    if let Some(refusal) = &decision.refusal {
        return Err(refused(refusal.reason.clone(), route));
    }
    Ok((decision, request))
}

/// A policy refusal as the gateway answers it: a step-up demand like the route's own
/// (RFC 9470 challenge), anything else refused with its reason.
pub(super) fn refused(reason: String, route: &Route) -> GatewayError {
    if reason == STEP_UP_REQUIRED {
        IdentityError::StepUp(route.identity.challenge()).into()
    } else {
        GatewayError::Refused { reason }
    }
}

/// The decision request of a service the gateway serves itself (admin, analytics, FHE): the
/// caller's identity and purpose (recorded), `action` on `resource`, nothing else.
pub(super) fn served_request(
    parts: &Parts,
    identity: &Identity,
    action: &str,
    resource: &str,
    record: &mut RequestRecord,
) -> Result<DecisionRequest, GatewayError> {
    let caller = &identity.caller;
    let purpose = purpose(parts, caller, record)?;
    Ok(DecisionRequest {
        caller: caller.clone(),
        action: action.to_owned(),
        customer: resource.to_owned(),
        purpose,
        amr: identity.amr.clone(),
        auth_age_seconds: identity.auth_age_seconds(now_ms() / 1000),
        certificate_bound: identity.certificate_bound,
        amount: None,
        consent: None,
        field_classes: Vec::new(),
        aggregate: None,
    })
}

/// The purpose: picked by the header among the caller's registered purposes, implied when
/// it has exactly one. A purpose it is not registered for is refused here whatever the
/// policies say, so no policy edit can let a header add a purpose.
pub(super) fn purpose(
    parts: &Parts,
    caller: &crate::policy::Caller,
    record: &mut RequestRecord,
) -> Result<String, GatewayError> {
    let asked = parts
        .headers
        .get(PURPOSE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let purpose = match (asked, caller.purposes.as_slice()) {
        (Some(p), _) => p,
        (None, [only]) => only.clone(),
        (None, _) => String::new(),
    };
    record.purpose = Some(purpose.clone()).filter(|p| !p.is_empty());
    if !caller.purposes.contains(&purpose) {
        return Err(GatewayError::Refused {
            reason: "purpose_not_allowed".into(),
        });
    }
    Ok(purpose)
}

/// Views for each data subject of a response holding several (element-scoped rules): the
/// route's request asked again per subject, with that subject's consent read fresh. A
/// subject the policies refuse gets every field removed, not the whole response refused.
/// One decision per distinct subject; the route's own subject reuses the route's views.
pub async fn subject_views(
    generation: &Generation,
    store: Option<&Store>,
    route_request: &DecisionRequest,
    decision: &mut Decision,
    subjects: &[String],
) -> Result<(), GatewayError> {
    let engine = generation
        .policy
        .as_ref()
        .ok_or_else(|| GatewayError::Internal("per-subject views need a policy set".into()))?;
    for subject in subjects {
        if *subject == route_request.customer || decision.subject_views.contains_key(subject) {
            continue;
        }
        let consent = match store {
            Some(store) => {
                consent_for(
                    store,
                    subject,
                    &route_request.caller.grantee(),
                    &route_request.purpose,
                )
                .await?
            }
            None => return Err(GatewayError::Internal("consent needs a store".into())),
        };
        let request = DecisionRequest {
            customer: subject.clone(),
            consent,
            ..route_request.clone()
        };
        let answer = engine.decide(&request)?;
        let views = if answer.allowed() {
            answer.views
        } else {
            request
                .field_classes
                .iter()
                .map(|c| (c.clone(), crate::decision::FieldView::Removed))
                .collect()
        };
        decision.subject_views.insert(subject.clone(), views);
    }
    Ok(())
}

/// The subject's Authorised consent for this grantee and purpose, read now.
async fn consent_for(
    store: &Store,
    subject: &str,
    grantee: &str,
    purpose: &str,
) -> Result<Option<ConsentGrant>, GatewayError> {
    let now = now_ms();
    let records = store
        .consents(Some(subject), Some(grantee))
        .await
        .map_err(GatewayError::ConsentUnavailable)?;
    Ok(records
        .into_iter()
        .find(|r| r.covers(purpose, now))
        .map(|r| ConsentGrant {
            id: r.id,
            permissions: r.permissions,
        }))
}

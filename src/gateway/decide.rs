//! The decide phase: ask the policy set whether the caller may take the route's action on
//! the data subject, with the subject's consent for the caller and purpose read fresh from
//! the store (so a revocation holds on every replica from the moment it commits).
//!
//! A route is decided as early as its inputs allow ([`due_at`]): before the body
//! when the path names the subject, after the request body when the body names it or the
//! amount, after the upstream's answer when only that names it, and always before anything
//! of a protected body is revealed. The services the gateway serves itself decide each call
//! on its own action and resource ([`served_request`]).

use super::body;
use super::context::{Decided, RequestContext, RequestRecord};
use super::error::GatewayError;
use super::generation::Generation;
use super::router::Route;
use super::subject::{self, Known};
use crate::config::Direction;
use crate::decision::FieldClasses;
use crate::identity::{Identity, IdentityError};
use crate::policy::{ConsentGrant, DecisionRequest};
use crate::protect::rules::BodySide;
use crate::store::{now_ms, Store};
use bytes::Bytes;
use http::request::Parts;
use std::future::Future;
use tracing::Instrument;

/// Header a caller picks its purpose with (one of those it is registered for).
pub(super) const PURPOSE: &str = "x-purpose";

/// The `@reason` by which a forbid policy asks for step-up authentication.
pub(super) const STEP_UP_REQUIRED: &str = "step_up_required";

/// The decide phase's timing: the decision due at `point` for a policy-decided route, at
/// the first point of the path where what the decision needs is known, and `None` at the
/// other points ([`decide_due`] decides it). A plain function, so that where nothing is due
/// no future is made: a future is copied whole where it is awaited, however little it does
/// (docs/architecture.md, "The request path").
///
/// - [`Known::BeforeBody`] runs after identify and before the body is read, so a caller the
///   policy refuses costs no buffering; a path subject not in the route's form is refused
///   here on every route, before any consent lookup or key use.
/// - [`Known::AfterRequestBody`] runs once the protect phase has read the request body and
///   before its field rules: routes whose decision needs the amount or the subject the body
///   names. The amount is read here on every route that declares one.
/// - [`Known::AfterResponse`] runs once the upstream's answer is read and before any of it
///   is released: routes whose subject only that answer names (`body` is the answer).
pub(crate) fn due_at(
    ctx: &mut RequestContext<'_>,
    point: Known,
    body: Option<&Bytes>,
) -> Result<Option<Due>, GatewayError> {
    let route = ctx.route()?;
    let known = subject::known(route);
    let decided = route.action.is_some();
    let subject = match point {
        Known::BeforeBody => {
            let path_subject = subject::from_path(route, ctx.parts.uri.path())?;
            if !decided || route.amount.is_some() || known != Known::BeforeBody {
                return Ok(None);
            }
            path_subject
        }
        Known::AfterRequestBody => {
            let bytes = body.map_or(&[][..], |b| &b[..]);
            if let Some(path) = &route.amount {
                ctx.amount = Some(body::amount(path, bytes)?);
            }
            if !decided || ctx.decided.is_some() || known == Known::AfterResponse {
                return Ok(None);
            }
            match known {
                Known::AfterRequestBody => {
                    Some(subject::from_body(route, BodySide::Request, bytes)?)
                }
                _ => subject::from_path(route, ctx.parts.uri.path())?,
            }
        }
        Known::AfterResponse => {
            if !decided || known != Known::AfterResponse {
                return Ok(None);
            }
            let Some(bytes) = body else {
                return Err(GatewayError::Internal(
                    "a subject from the response needs a buffered route".into(),
                ));
            };
            Some(subject::from_body(route, BodySide::Response, bytes)?)
        }
    };
    Ok(Some(Due {
        subject,
        amount: ctx.amount,
    }))
}

/// A decision [`due_at`] a point of the path: what it is decided on.
pub(crate) struct Due {
    /// The data subject, in the route's canonical form ([`super::subject`]).
    subject: Option<String>,
    amount: Option<i64>,
}

/// Decides a [`Due`] decision in its `decide` span (a child of the span current here).
pub(crate) fn decide_due<'c, 'a>(
    ctx: &'c mut RequestContext<'a>,
    due: Due,
) -> impl Future<Output = Result<(), GatewayError>> + use<'c, 'a> {
    decide(ctx, due).instrument(tracing::info_span!(target: crate::telemetry::PHASE, "decide"))
}

/// Decides the route on `subject`, the data subject its route resolved (in the route's
/// canonical form, see [`super::subject`]), and `amount`; fills the audit record as it
/// learns who, why and what, and leaves the decision in the context. Views are decided for
/// the classes of the body the route reveals (its response for inbound routes, its request
/// for outbound ones).
async fn decide(ctx: &mut RequestContext<'_>, due: Due) -> Result<(), GatewayError> {
    let (subject, amount) = (due.subject.as_deref(), due.amount);
    let route = ctx.route()?;
    let record = &mut ctx.record;
    let action = route
        .action
        .as_deref()
        .ok_or_else(|| GatewayError::Internal("route has no action".into()))?;
    let engine = ctx.generation.policy.as_ref().ok_or_else(|| {
        GatewayError::Internal(format!(
            "route `{}` has an action but no policy set",
            route.name
        ))
    })?;
    record.policy_set_hash = Some(engine.hash().to_owned());
    let identity = ctx.identity.as_ref().ok_or(IdentityError::Missing)?;
    let caller = &identity.caller;

    record.subject = subject.map(str::to_owned);

    let purpose = purpose(&ctx.parts, caller, record)?;

    let consent = match (subject, ctx.shared.store.as_ref()) {
        (Some(subject), Some(store)) => {
            consent_for(store, subject, &caller.grantee(), &purpose).await?
        }
        (Some(_), None) => return Err(GatewayError::Internal("consent needs a store".into())),
        (None, _) => None,
    };
    record.consent_id = consent.as_ref().map(|c| c.id.clone());

    let revealed_side = match route.direction {
        Direction::Inbound => BodySide::Response,
        Direction::Outbound => BodySide::Request,
    };
    let field_classes = ctx
        .generation
        .protection
        .as_ref()
        .filter(|p| p.covers(&route.name))
        .map(|p| p.classes(&route.name, revealed_side))
        .unwrap_or_default();
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
        field_classes,
        aggregate: None,
        // Only for a policy set that reads them: the exact values are in the memo's key.
        risk: ctx.risk.clone().filter(|_| engine.reads_risk()),
    };
    let decision = engine.decide(&request)?;
    record.policy_ids.clone_from(&decision.policy_ids);
    if let Some(refusal) = &decision.refusal {
        return Err(refused(refusal.reason.clone(), route));
    }
    ctx.decided = Some(Decided { decision, request });
    Ok(())
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
        field_classes: FieldClasses::default(),
        aggregate: None,
        risk: None,
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
pub(crate) async fn subject_views(
    generation: &Generation,
    store: Option<&Store>,
    decided: &mut Decided,
    subjects: &[String],
) -> Result<(), GatewayError> {
    let Decided {
        decision,
        request: route_request,
    } = decided;
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
            std::sync::Arc::new(
                request
                    .field_classes
                    .iter()
                    .map(|c| (c.clone(), crate::decision::FieldView::Removed))
                    .collect(),
            )
        };
        decision.subject_views.insert(subject.clone(), views);
    }
    Ok(())
}

/// The subject's Authorised consent for this grantee and purpose: read from the store, or
/// cached within `[store] revocation_window` (expiry checked now either way).
async fn consent_for(
    store: &Store,
    subject: &str,
    grantee: &str,
    purpose: &str,
) -> Result<Option<ConsentGrant>, GatewayError> {
    let now = now_ms();
    let in_force = store
        .consents_in_force(subject, grantee, now)
        .await
        .map_err(GatewayError::ConsentUnavailable)?;
    Ok(in_force
        .iter()
        .find(|r| r.covers(purpose, now))
        .map(|r| ConsentGrant {
            id: r.id.clone(),
            permissions: r.permissions.clone(),
        }))
}

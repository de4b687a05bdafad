//! The risk phases: [`assess`] runs after identify and the principal rate limit, before
//! serve and decide, because the indicators feed the decision (`context.risk`) and a
//! threshold's response (step-up, throttle, suspension) must stop a request before it
//! reads anything; [`observe`] runs after the pipeline, before record, because only then is
//! the outcome known (subjects decided, classes revealed, refusal, epsilon spent).

use super::context::RequestContext;
use super::error::GatewayError;
use crate::identity::IdentityError;
use crate::risk::{Observation, Verdict};
use crate::store::now_ms;

/// Whether the assess phase has anything to do: risk indicators are configured and the
/// caller is identified (an anonymous caller has no indicators).
pub(crate) fn assessed(ctx: &RequestContext<'_>) -> bool {
    ctx.shared.risk.is_some() && ctx.identity.is_some()
}

/// The assess phase, where [`assessed`]: the caller's indicators into the context, newly exceeded thresholds
/// into the record (and a log line, a metric and a webhook post each: the post only
/// queued, never awaited), and the thresholds' verdict.
pub(crate) async fn assess(ctx: &mut RequestContext<'_>) -> Result<(), GatewayError> {
    let (Some(risk), Some(identity)) = (ctx.shared.risk.as_ref(), ctx.identity.as_ref()) else {
        return Ok(());
    };
    let assessment = risk
        .assess(identity, &ctx.record.principal, now_ms())
        .await
        .map_err(GatewayError::RiskUnavailable)?;
    for event in &assessment.events {
        // Names only: never the indicator's value, the subjects or the request.
        tracing::warn!(
            request_id = %ctx.record.request_id,
            principal = %ctx.record.principal,
            threshold = %event.threshold,
            indicator = %event.indicator,
            window = %event.window,
            scope = %event.scope,
            response = %event.response,
            "risk threshold exceeded"
        );
        ctx.shared.metrics.risk_event(
            &event.indicator,
            &event.window,
            &event.scope,
            identity.caller.kind,
            &event.response,
        );
        if let Some(webhook) = &ctx.shared.risk_webhook {
            webhook.send(
                event,
                &ctx.record.request_id,
                &ctx.record.principal,
                identity.caller.kind,
            );
        }
    }
    ctx.record.risk_events = assessment.events;
    ctx.risk = Some(assessment.facts);
    match assessment.verdict {
        Verdict::Admit => Ok(()),
        Verdict::StepUp(challenge) => Err(IdentityError::StepUp(challenge).into()),
        Verdict::Throttled { retry_after_s } => Err(GatewayError::RateLimited {
            scope: "risk",
            retry_after_s,
        }),
        Verdict::Suspended => Err(GatewayError::Refused {
            reason: crate::risk::SUSPENDED.to_owned(),
        }),
    }
}

/// The observe phase: counts the request against its caller, whatever its outcome
/// (`failure`: the error the pipeline ended with).
pub(crate) fn observe(ctx: &RequestContext<'_>, failure: Option<&GatewayError>) {
    let (Some(risk), Some(identity)) = (ctx.shared.risk.as_ref(), ctx.identity.as_ref()) else {
        return;
    };
    let now = now_ms();
    let rec = &ctx.record;
    // Subjects count as accessed once the policy allowed them (the route's and, for
    // element-scoped bodies, each further subject's views).
    let mut subjects = Vec::new();
    if let Some(decided) = ctx.decided.as_ref().filter(|d| d.decision.allowed()) {
        if !decided.request.customer.is_empty() {
            subjects.push(decided.request.customer.as_str());
        }
        subjects.extend(decided.decision.subject_views.keys().map(String::as_str));
    }
    let refusal = failure.and_then(refusal_reason);
    let dp_epsilon_nano = rec
        .privacy_spend
        .as_ref()
        .and_then(|spend| spend.epsilon.parse::<f64>().ok())
        .filter(|e| e.is_finite() && *e > 0.0)
        .map_or(0, |e| (e * 1e9) as u64);
    let seen = Observation {
        subjects,
        clear_reveals: &rec.revealed_clear,
        refusal: refusal.as_deref(),
        off_hours: risk.off_hours(&identity.caller.roles, now),
        dp_epsilon_nano,
        fhe_release: failure.is_none() && rec.action.as_deref() == Some("aggregate:release"),
    };
    risk.observe(identity, &rec.principal, now, &seen);
}

/// The refusal reason a failure counts under: the policy's `@reason`, a step-up demand, a
/// rate limit; failures of the gateway or the upstream are not the caller's refusals.
fn refusal_reason(err: &GatewayError) -> Option<String> {
    match err {
        GatewayError::Refused { reason } => Some(reason.clone()),
        GatewayError::RateLimited { .. } => Some("rate_limited".to_owned()),
        GatewayError::Identity(IdentityError::StepUp(_)) => Some("step_up_required".to_owned()),
        GatewayError::Identity(e) if e.is_client() => Some("identity".to_owned()),
        _ => None,
    }
}

//! The analytics API the gateway serves itself on routes with `serve = "analytics"`:
//!
//! ```text
//! POST /query   {"dataset", "sql", "epsilon" | "accuracy", "delta", "dry_run"}   query on Dataset
//! ```
//!
//! The identify phase has run (such routes always identify callers). Each query is decided
//! by the policy set (Cedar action `query` on `Dataset::"<name>"`; the first of the
//! dataset's budget tiers granted by `use_budget_tier` sets the caller's budget), then answered by
//! [`crate::analytics::dp`]; the audit record carries the action, the deciding policies and
//! the privacy loss spent (never the SQL or the answer).

use super::context::RequestContext;
use super::decide;
use super::error::GatewayError;
use super::generation::Generation;
use super::proxy_body::ProxyBody;
use super::respond;
use super::served::{ServedApi, ServedCall};
use crate::analytics::dp::tiers::USE_BUDGET_TIER_ACTION;
use crate::analytics::dp::{AnalyticsError, AnswerRequest};
use crate::identity::IdentityError;
use crate::policy::DecisionRequest;
use http::{Method, Response};
use hyper::body::Incoming;

/// The Cedar action a query is decided on.
pub(crate) const QUERY_ACTION: &str = "query";

/// The analytics API (`serve = "analytics"`): differentially private queries.
pub(crate) struct AnalyticsApi;

impl ServedApi for AnalyticsApi {
    async fn serve(
        &self,
        ctx: &mut RequestContext<'_>,
        body: Incoming,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let (shared, generation) = (ctx.shared, ctx.generation);
        let (call, _) = ServedCall::split(ctx)?;
        let parts = call.parts;
        match (
            &parts.method,
            call.route.served_segments(parts.uri.path()).as_slice(),
        ) {
            (&Method::POST, ["query"]) => {}
            (_, ["query"]) => {
                return Err(GatewayError::MethodNotAllowed {
                    allowed: vec![Method::POST],
                })
            }
            _ => return Err(GatewayError::NoRoute),
        }
        let store = shared
            .store
            .as_ref()
            .ok_or_else(|| GatewayError::Internal("the analytics API needs a store".into()))?;
        let bytes = call.read_body(body).await?;
        // serde's messages can quote the value; this one says only what is expected.
        let request: AnswerRequest = serde_json::from_slice(&bytes).map_err(|_| {
            AnalyticsError::InvalidRequest(
                "the body must be JSON {\"dataset\": string, \"sql\": string, \"epsilon\": number or \"accuracy\": number, \"delta\": number (GROUP BY key only), \"dry_run\": bool} and nothing else".into(),
            )
        })?;
        let decided = authorize(ctx, &request.dataset)?;
        let tier = budget_tier(ctx, &decided, &request.dataset)?;
        // The budget is the principal's, namespaced by credential like every other use of a
        // caller's name: a service's API key and its client certificate are two analysts.
        let analyst = decided.caller.principal();
        let outcome = generation
            .datasets
            .answer(store, &analyst, tier.as_deref(), &request)
            .await?;
        ctx.record.privacy_spend = Some(crate::audit::PrivacySpend {
            dataset: request.dataset.clone(),
            epsilon: format!("{}", outcome.epsilon_spent),
            delta: (outcome.delta_spent > 0.0).then(|| format!("{}", outcome.delta_spent)),
            cached: outcome.cached,
            dry_run: request.dry_run,
            budget_tier: tier,
        });
        respond::ok(&outcome.body)
    }
}

/// Asks the policy set whether the caller may `query` the dataset; records who and why.
/// Returns the decided request, which the budget-tier questions reuse.
fn authorize(ctx: &mut RequestContext<'_>, dataset: &str) -> Result<DecisionRequest, GatewayError> {
    let (generation, route) = (ctx.generation, ctx.route()?);
    let identity = ctx.identity.as_ref().ok_or(IdentityError::Missing)?;
    let rec = &mut ctx.record;
    rec.action = Some(QUERY_ACTION.to_owned());
    let engine = policy_engine(generation)?;
    rec.policy_set_hash = Some(engine.hash().to_owned());
    let request = decide::served_request(&ctx.parts, identity, QUERY_ACTION, dataset, rec)?;
    let decision = engine.decide(&request)?;
    rec.policy_ids.clone_from(&decision.policy_ids);
    match decision.refusal {
        Some(refusal) => Err(decide::refused(refusal.reason, route)),
        None => Ok(request),
    }
}

/// The first of the dataset's budget tiers the policy set grants the caller (Cedar
/// `use_budget_tier` on `BudgetTier::"<dataset>/<tier>"`), or `None` for the default
/// budget. The granting policies join the record's policy ids.
fn budget_tier(
    ctx: &mut RequestContext<'_>,
    decided: &DecisionRequest,
    dataset: &str,
) -> Result<Option<String>, GatewayError> {
    let (generation, rec) = (ctx.generation, &mut ctx.record);
    let engine = policy_engine(generation)?;
    for tier in generation.datasets.budget_tiers(dataset)? {
        let question = DecisionRequest {
            action: USE_BUDGET_TIER_ACTION.to_owned(),
            customer: tier.resource_id(dataset),
            ..decided.clone()
        };
        let decision = engine.decide(&question)?;
        if decision.refusal.is_none() {
            rec.policy_ids.extend(decision.policy_ids);
            return Ok(Some(tier.name.clone()));
        }
    }
    Ok(None)
}

fn policy_engine(generation: &Generation) -> Result<&crate::policy::PolicyEngine, GatewayError> {
    generation
        .policy
        .as_ref()
        .ok_or_else(|| GatewayError::Internal("the analytics API needs a policy set".into()))
}

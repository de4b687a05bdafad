//! The analytics API the gateway serves itself on routes with `serve = "analytics"`:
//!
//! ```text
//! POST /query            {"dataset", "sql", "epsilon" | "accuracy", "delta", "dry_run"}   query on Dataset
//! GET  /datasets         the datasets the caller may describe, each as declared            dataset:describe on each Dataset
//! GET  /datasets/<name>  one of them                                                       dataset:describe on Dataset
//! GET  /budget[?dataset=<name>]   what the caller has left, per dataset and globally      budget:read on each Dataset
//! ```
//!
//! The identify phase has run (such routes always identify callers). Each call is decided
//! by the policy set on its own action and dataset (a query's budget is the first of the
//! dataset's budget tiers granted by `use_budget_tier`, and so is the budget a caller is
//! shown), then answered by [`crate::analytics::dp`]; the audit record carries the action,
//! the deciding policies and, for a query, the privacy loss spent (never the SQL or the
//! answer). Discovery and budget calls read only the config and the ledger: they spend
//! nothing. A listing shows only the datasets the policy lets the caller describe (or read
//! the budget of) and is refused, like a query, when it allows none. A query answers as
//! JSON or, under `Accept: text/csv`, as CSV ([`crate::analytics::dp::tabular`]), the
//! format negotiated before anything is read or spent.

use super::accept::negotiate;
use super::context::RequestContext;
use super::decide;
use super::error::GatewayError;
use super::generation::Generation;
use super::proxy_body::ProxyBody;
use super::respond;
use super::served::{ServedApi, ServedCall};
use crate::analytics::dp::tabular;
use crate::analytics::dp::tiers::USE_BUDGET_TIER_ACTION;
use crate::analytics::dp::{AnalyticsError, AnswerRequest};
use crate::identity::IdentityError;
use crate::policy::DecisionRequest;
use http::{Method, Response};
use hyper::body::Incoming;
use serde_json::json;

/// The Cedar action a query is decided on.
pub(crate) const QUERY_ACTION: &str = "query";

/// The Cedar action that lets a caller see a dataset's description.
pub(crate) const DESCRIBE_ACTION: &str = "dataset:describe";

/// The Cedar action that lets a caller see their budget left on a dataset.
pub(crate) const READ_BUDGET_ACTION: &str = "budget:read";

/// What a query answers in, the gateway's preference first.
const QUERY_FORMATS: [&str; 2] = ["application/json", "text/csv"];

/// What discovery and budget calls answer in.
const JSON_ONLY: [&str; 1] = ["application/json"];

/// The analytics API (`serve = "analytics"`): differentially private queries, dataset
/// discovery and budgets.
pub(crate) struct AnalyticsApi;

impl ServedApi for AnalyticsApi {
    async fn serve(
        &self,
        ctx: &mut RequestContext<'_>,
        body: Incoming,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let (call, _) = ServedCall::split(ctx)?;
        let segments: Vec<String> = call
            .route
            .served_segments(call.parts.uri.path())
            .into_iter()
            .map(str::to_owned)
            .collect();
        let method = call.parts.method.clone();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (&method, segments.as_slice()) {
            (&Method::POST, ["query"]) => query(ctx, body).await,
            (&Method::GET, ["datasets"]) => datasets(ctx, None),
            (&Method::GET, ["datasets", name]) => datasets(ctx, Some(name)),
            (&Method::GET, ["budget"]) => budget(ctx).await,
            (_, ["query"]) => Err(GatewayError::MethodNotAllowed {
                allowed: vec![Method::POST],
            }),
            (_, ["datasets"] | ["datasets", _] | ["budget"]) => {
                Err(GatewayError::MethodNotAllowed {
                    allowed: vec![Method::GET],
                })
            }
            _ => Err(GatewayError::NoRoute),
        }
    }
}

/// `POST /query`: one differentially private query.
async fn query(
    ctx: &mut RequestContext<'_>,
    body: Incoming,
) -> Result<Response<ProxyBody>, GatewayError> {
    // Before the body is read or anything spent: a 406 must cost nothing.
    let format = negotiate(&ctx.parts.headers, &QUERY_FORMATS)?;
    let (call, _) = ServedCall::split(ctx)?;
    let bytes = call.read_body(body).await?;
    // serde's messages can quote the value; this one says only what is expected.
    let request: AnswerRequest = serde_json::from_slice(&bytes).map_err(|_| {
        AnalyticsError::InvalidRequest(
            "the body must be JSON {\"dataset\": string, \"sql\": string, \"epsilon\": number or \"accuracy\": number, \"delta\": number (GROUP BY key only), \"dry_run\": bool} and nothing else".into(),
        )
    })?;
    let body = answer(ctx, &request).await?;
    match format {
        "text/csv" => {
            let csv = tabular::to_csv(&body)
                .map_err(|e| GatewayError::Internal(format!("CSV answer: {e}")))?;
            let headers = tabular::SPEND_HEADERS.iter().filter_map(|(name, path)| {
                tabular::spend_header_value(&body, path).map(|v| (*name, v))
            });
            Ok(respond::ok_csv(csv.into(), headers))
        }
        _ => respond::ok(&body),
    }
}

/// Decides, budgets and answers one query for the identified caller (the JSON answer);
/// the record gets the decision and the privacy loss spent. The console asks through this
/// too, so a query costs and is audited the same wherever it is asked.
pub(super) async fn answer(
    ctx: &mut RequestContext<'_>,
    request: &AnswerRequest,
) -> Result<serde_json::Value, GatewayError> {
    let (shared, generation) = (ctx.shared, ctx.generation);
    let store = shared
        .store
        .as_ref()
        .ok_or_else(|| GatewayError::Internal("the analytics API needs a store".into()))?;
    let decided = authorize(ctx, QUERY_ACTION, &request.dataset)?;
    let tier = budget_tier(ctx, &decided, &request.dataset)?;
    // The budget is the principal's, namespaced by credential like every other use of a
    // caller's name: a service's API key and its client certificate are two analysts.
    let analyst = decided.caller.principal();
    let outcome = generation
        .datasets
        .answer(store, &analyst, tier.as_deref(), request)
        .await?;
    ctx.record.privacy_spend = Some(crate::audit::PrivacySpend {
        dataset: request.dataset.clone(),
        epsilon: format!("{}", outcome.epsilon_spent),
        delta: (outcome.delta_spent > 0.0).then(|| format!("{}", outcome.delta_spent)),
        cached: outcome.cached,
        dry_run: request.dry_run,
        budget_tier: tier,
    });
    Ok(outcome.body)
}

/// `GET /datasets` (every dataset the caller may describe) or `GET /datasets/<name>`.
fn datasets(
    ctx: &mut RequestContext<'_>,
    name: Option<&str>,
) -> Result<Response<ProxyBody>, GatewayError> {
    negotiate(&ctx.parts.headers, &JSON_ONLY)?;
    let generation = ctx.generation;
    let (_, allowed) = permitted(ctx, DESCRIBE_ACTION, name)?;
    match name {
        Some(name) => respond::ok(&generation.datasets.describe(name)?),
        None => {
            let described = allowed
                .iter()
                .map(|n| generation.datasets.describe(n))
                .collect::<Result<Vec<_>, _>>()?;
            respond::ok(&json!({ "datasets": described }))
        }
    }
}

/// `GET /budget[?dataset=<name>]`: what the caller has left on each dataset it may read
/// the budget of (with the tier policy grants it), and what all analysts have left.
async fn budget(ctx: &mut RequestContext<'_>) -> Result<Response<ProxyBody>, GatewayError> {
    negotiate(&ctx.parts.headers, &JSON_ONLY)?;
    let (shared, generation) = (ctx.shared, ctx.generation);
    let store = shared
        .store
        .as_ref()
        .ok_or_else(|| GatewayError::Internal("the analytics API needs a store".into()))?;
    let wanted = dataset_parameter(ctx.parts.uri.query())?;
    let (decided, allowed) = permitted(ctx, READ_BUDGET_ACTION, wanted.as_deref())?;
    let analyst = decided.caller.principal();
    let mut budgets = Vec::new();
    for name in allowed {
        let tier = budget_tier(ctx, &decided, &name)?;
        budgets.push(
            generation
                .datasets
                .budget_left(store, &analyst, tier.as_deref(), &name)
                .await?,
        );
    }
    respond::ok(&json!({ "budgets": budgets }))
}

/// The `dataset` query parameter of `GET /budget`, if given; anything else is refused.
fn dataset_parameter(query: Option<&str>) -> Result<Option<String>, GatewayError> {
    let mut dataset = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "dataset" if dataset.is_none() => dataset = Some(value.into_owned()),
            _ => {
                return Err(AnalyticsError::InvalidRequest(
                    "the only query parameter is `dataset`, at most once".into(),
                )
                .into())
            }
        }
    }
    Ok(dataset)
}

/// Decides `action` on dataset `name`, or on every dataset when `None`, and returns the
/// decided request (for the tier questions) and the datasets permitted, in name order.
/// Nothing permitted (the one named, or any of all of them): refused like a query, with the
/// first refusal's reason and policies. The record gets the action, the policy set and
/// the deciding policies of every dataset permitted.
pub(super) fn permitted(
    ctx: &mut RequestContext<'_>,
    action: &str,
    name: Option<&str>,
) -> Result<(DecisionRequest, Vec<String>), GatewayError> {
    let (generation, route) = (ctx.generation, ctx.route()?);
    let names: Vec<String> = match name {
        Some(name) => vec![name.to_owned()],
        None => generation
            .datasets
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect(),
    };
    let identity = ctx.identity.as_ref().ok_or(IdentityError::Missing)?;
    let rec = &mut ctx.record;
    rec.action = Some(action.to_owned());
    let engine = policy_engine(generation)?;
    rec.policy_set_hash = Some(engine.hash().to_owned());
    let first = names.first().map_or("", String::as_str);
    let request = decide::served_request(&ctx.parts, identity, action, first, rec)?;
    let mut allowed = Vec::new();
    let mut refusal = None;
    for name in names {
        let decision = engine.decide(&DecisionRequest {
            customer: name.clone(),
            ..request.clone()
        })?;
        match decision.refusal {
            None => {
                rec.policy_ids.extend(decision.policy_ids);
                allowed.push(name);
            }
            Some(r) => {
                refusal.get_or_insert((r.reason, decision.policy_ids));
            }
        }
    }
    if allowed.is_empty() {
        let (reason, policy_ids) = refusal.unwrap_or_else(|| ("forbidden".into(), Vec::new()));
        rec.policy_ids = policy_ids;
        return Err(decide::refused(reason, route));
    }
    Ok((request, allowed))
}

/// Asks the policy set whether the caller may take `action` on the dataset; records who
/// and why. Returns the decided request, which the budget-tier questions reuse.
fn authorize(
    ctx: &mut RequestContext<'_>,
    action: &str,
    dataset: &str,
) -> Result<DecisionRequest, GatewayError> {
    permitted(ctx, action, Some(dataset)).map(|(request, _)| request)
}

/// The first of the dataset's budget tiers the policy set grants the caller (Cedar
/// `use_budget_tier` on `BudgetTier::"<dataset>/<tier>"`), or `None` for the default
/// budget. The granting policies join the record's policy ids.
pub(super) fn budget_tier(
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

//! Turning a [`DecisionRequest`] into a [`Decision`] with Cedar.

use super::validated::{ContextShape, Shape};
use super::{Action, AggregateFacts, DecisionRequest, PolicyEngine, PolicyError, RiskWindowFacts};
use crate::decision::{Decision, FieldView, Refusal};
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    Response, RestrictedExpression, Schema,
};
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

/// When several forbid policies refuse, the reason reported is the first in this order:
/// the most fundamental problem first (a caller acting for a purpose it does not have gets
/// that answer, not a step-up challenge it could never satisfy).
const REASON_PRIORITY: &[&str] = &[
    "purpose_not_allowed",
    "consent_required",
    "step_up_required",
];

/// Whether a question is checked against the schema (principal, resource and context types
/// the action applies to) before Cedar answers it.
#[derive(Clone, Copy)]
enum Validate<'a> {
    /// Unless a question of the same shape was accepted before ([`super::validated`]).
    Yes(&'a ContextShape),
    /// The same question with only another entity of the same type was validated.
    No,
}

/// Refusal when no policy permits (Cedar's default deny).
pub(super) const DEFAULT_REFUSAL: &str = "forbidden";

fn uid(kind: &str, id: &str) -> Result<EntityUid, PolicyError> {
    let kind = EntityTypeName::from_str(&format!("PrivGate::{kind}"))
        .map_err(|e| PolicyError::Invalid(e.to_string()))?;
    Ok(EntityUid::from_type_name_and_id(kind, EntityId::new(id)))
}

/// The entities every decision shares: one per field class (with the consent permission
/// that covers it) and, from the schema, the actions. Validated against the schema once,
/// when the policy set loads.
pub(super) fn shared_entities(
    schema: &Schema,
    field_classes: &BTreeMap<String, String>,
) -> Result<Entities, PolicyError> {
    let invalid = |e: &dyn std::fmt::Display| PolicyError::Invalid(e.to_string());
    let mut all = Vec::new();
    for (class, permission) in field_classes {
        let attrs = [(
            "permission".to_owned(),
            RestrictedExpression::new_string(permission.clone()),
        )];
        all.push(
            Entity::new(uid("FieldClass", class)?, attrs.into(), HashSet::new())
                .map_err(|e| invalid(&e))?,
        );
    }
    Entities::from_entities(all, Some(schema)).map_err(|e| invalid(&e))
}

impl PolicyEngine {
    /// Decides the route action and, if allowed, the view of each requested field class:
    /// from the memo when an equal request was decided by this policy set, else by Cedar.
    pub fn decide(&self, req: &DecisionRequest) -> Result<Decision, PolicyError> {
        if let Some(decision) = self.memo.get(req) {
            return Ok(decision);
        }
        let decision = self.evaluate(req)?;
        self.memo.insert(req, &decision);
        Ok(decision)
    }

    /// Cedar's decision on `req`, the route action first, then up to three view actions per
    /// field class.
    pub(super) fn evaluate(&self, req: &DecisionRequest) -> Result<Decision, PolicyError> {
        if !self.route_actions.contains(&req.action) {
            return Err(PolicyError::UnknownAction(req.action.clone()));
        }
        if let Some(unknown) = req
            .field_classes
            .iter()
            .find(|c| !self.field_classes.contains_key(*c))
        {
            return Err(PolicyError::UnknownFieldClass(unknown.clone()));
        }
        let entities = self.entities(req)?;
        let context = context(req)?;
        let shape = ContextShape::of(req);
        let principal = uid(&format!("{:?}", req.caller.kind), &req.caller.cedar_id())?;
        let resource = self.resource(req)?;

        let route = self.ask(
            &principal,
            self.action(&req.action)?,
            &resource,
            context.clone(),
            Validate::Yes(&shape),
            &entities,
            &self.action(&req.action)?.policies,
        )?;
        let policy_ids = determining(&route);
        let mut decision = Decision {
            refusal: None,
            policy_ids,
            views: Default::default(),
            subject_views: BTreeMap::new(),
            view_policy_ids: Default::default(),
            policy_set_hash: self.hash.clone(),
        };
        if route.decision() != cedar_policy::Decision::Allow {
            decision.refusal = Some(Refusal {
                reason: self.reason(&decision.policy_ids),
            });
            return Ok(decision);
        }
        if req.field_classes.is_empty() {
            return Ok(decision);
        }
        let view_actions = FieldView::ASKED
            .iter()
            .map(|(view, action)| Ok((*view, self.action(action)?)))
            .collect::<Result<Vec<_>, PolicyError>>()?;
        // Each view request differs from the first asked of its action only in the field
        // class, an entity of the same type: Cedar validates it against the schema once. The
        // policies of a view action that never read the resource answer the same for every
        // class: they are asked once, with the first class that needs them.
        let mut any_class: [Option<Verdict>; FieldView::ASKED.len()] = Default::default();
        for class in req.field_classes.iter() {
            let resource = uid("FieldClass", class)?;
            let mut view = (FieldView::Removed, Vec::new());
            for (index, (candidate, action)) in view_actions.iter().enumerate() {
                let shared = match &any_class[index] {
                    Some(verdict) => verdict,
                    None => any_class[index].insert(Verdict::of(&self.ask(
                        &principal,
                        action,
                        &resource,
                        context.clone(),
                        Validate::Yes(&shape),
                        &entities,
                        &action.by_resource.any_resource,
                    )?)),
                };
                let own = if action.by_resource.per_resource.is_empty() {
                    Verdict::default()
                } else {
                    Verdict::of(&self.ask(
                        &principal,
                        action,
                        &resource,
                        context.clone(),
                        Validate::No,
                        &entities,
                        &action.by_resource.per_resource,
                    )?)
                };
                if let Some(permits) = shared.permitted_with(&own) {
                    view = (*candidate, permits);
                    break;
                }
            }
            Arc::make_mut(&mut decision.views).insert(class.clone(), view.0);
            Arc::make_mut(&mut decision.view_policy_ids).insert(class.clone(), view.1);
        }
        Ok(decision)
    }

    /// Whether a request context with indicators for `windows` (`5m`, ...) fits the
    /// schema: checked when the configuration loads, so a window the schema does not
    /// declare is refused there instead of failing every decision.
    pub fn check_risk_windows(&self, windows: &[String]) -> Result<(), PolicyError> {
        let window = super::RiskWindowFacts::default();
        let by_window = windows
            .iter()
            .map(|w| (format!("last_{w}"), window))
            .collect::<std::collections::BTreeMap<_, _>>();
        let request = DecisionRequest {
            caller: super::Caller {
                kind: super::CallerKind::User,
                credential: super::Credential::Token,
                id: String::new(),
                roles: Vec::new(),
                organisation: None,
                purposes: Vec::new(),
            }
            .into(),
            action: String::new(),
            customer: String::new(),
            purpose: String::new(),
            amr: Default::default(),
            auth_age_seconds: 0,
            certificate_bound: false,
            amount: None,
            consent: None,
            field_classes: Default::default(),
            aggregate: None,
            risk: Some(super::RiskFacts {
                principal: by_window.clone(),
                organisation: Some(by_window),
            }),
        };
        let context = context(&request)?;
        for (_, action) in FieldView::ASKED {
            context
                .validate(&self.schema, &self.action(action)?.uid)
                .map_err(|e| PolicyError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    fn action(&self, action: &str) -> Result<&Action, PolicyError> {
        self.actions
            .get(action)
            .ok_or_else(|| PolicyError::UnknownAction(action.to_owned()))
    }

    /// One question to Cedar, asked of `policies` (the policies that can decide `action`,
    /// or a part of them: [`super::slice::ByResource`]).
    #[allow(clippy::too_many_arguments)]
    fn ask(
        &self,
        principal: &EntityUid,
        action: &Action,
        resource: &EntityUid,
        context: Context,
        validate: Validate<'_>,
        entities: &Entities,
        policies: &PolicySet,
    ) -> Result<Response, PolicyError> {
        let unchecked = match validate {
            Validate::Yes(context_shape) => {
                let question = Shape::question(&action.uid, principal, resource, context_shape);
                (!self.validated.accepted(&question)).then_some(question)
            }
            Validate::No => None,
        };
        let request = Request::new(
            principal.clone(),
            action.uid.clone(),
            resource.clone(),
            context,
            unchecked.as_ref().map(|_| &self.schema),
        )
        .map_err(|e| PolicyError::Invalid(e.to_string()))?;
        if let Some(question) = unchecked {
            self.validated.accept(question);
        }
        let response = Authorizer::new().is_authorized(&request, policies, entities);
        if let Some(error) = response.diagnostics().errors().next() {
            // A policy that errors is skipped by Cedar; treat it as a refusal-worthy fault.
            return Err(PolicyError::Invalid(error.to_string()));
        }
        Ok(response)
    }

    /// The action's resource: the data subject for per-subject actions; for actions on
    /// another entity type (gateway-wide admin actions), that type named by `customer`.
    fn resource(&self, req: &DecisionRequest) -> Result<EntityUid, PolicyError> {
        let kind = self
            .resource_types
            .get(&req.action)
            .map_or("Customer", String::as_str);
        uid(kind, &req.customer)
    }

    fn reason(&self, policy_ids: &[String]) -> String {
        let reasons: Vec<&str> = policy_ids
            .iter()
            .filter_map(|id| self.reasons.get(id).map(String::as_str))
            .collect();
        REASON_PRIORITY
            .iter()
            .find(|r| reasons.contains(r))
            .copied()
            .or_else(|| reasons.first().copied())
            .unwrap_or(DEFAULT_REFUSAL)
            .to_owned()
    }

    fn entities(&self, req: &DecisionRequest) -> Result<Entities, PolicyError> {
        let invalid = |e: &dyn std::fmt::Display| PolicyError::Invalid(e.to_string());
        let caller = &req.caller;
        let mut parents = HashSet::new();
        for role in &caller.roles {
            parents.insert(uid("Role", role)?);
        }
        if let Some(org) = &caller.organisation {
            parents.insert(uid("Organisation", org)?);
        }
        let purposes = RestrictedExpression::new_set(
            caller
                .purposes
                .iter()
                .map(|p| RestrictedExpression::new_string(p.clone())),
        );
        let principal = Entity::new(
            uid(&format!("{:?}", caller.kind), &caller.cedar_id())?,
            [("purposes".to_owned(), purposes)].into(),
            parents.clone(),
        )
        .map_err(|e| invalid(&e))?;
        let resource = self.resource(req)?;
        let shape = Shape::entities(caller, &resource);
        let unchecked = (!self.validated.accepted(&shape)).then_some(shape);
        let mut all = vec![principal, Entity::new_no_attrs(resource, HashSet::new())];
        for parent in parents {
            all.push(Entity::new_no_attrs(parent, HashSet::new()));
        }
        let entities = self
            .shared_entities
            .clone()
            .add_entities(all, unchecked.as_ref().map(|_| &self.schema))
            .map_err(|e| invalid(&e))?;
        if let Some(shape) = unchecked {
            self.validated.accept(shape);
        }
        Ok(entities)
    }
}

/// The request's context, built from typed values rather than parsed from JSON (parsing
/// and schema-typing a JSON context cost two thirds of a first decision). It is checked
/// against the action's context type where Cedar validates the request ([`Validate::Yes`]),
/// as strictly as a schema-typed JSON context would be: it holds no extension values, so
/// the schema has nothing to add to how its values are read.
fn context(req: &DecisionRequest) -> Result<Context, PolicyError> {
    let invalid = |e: &dyn std::fmt::Display| PolicyError::Invalid(e.to_string());
    let strings = |values: &[String]| {
        RestrictedExpression::new_set(values.iter().cloned().map(RestrictedExpression::new_string))
    };
    let record = |fields: Vec<(&str, RestrictedExpression)>| {
        RestrictedExpression::new_record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)))
            .map_err(|e| invalid(&e))
    };
    let no_permissions = Vec::new();
    let mut pairs = vec![
        (
            "purpose",
            RestrictedExpression::new_string(req.purpose.clone()),
        ),
        (
            "authentication",
            record(vec![
                ("amr", strings(&req.amr)),
                (
                    "age_seconds",
                    RestrictedExpression::new_long(req.auth_age_seconds),
                ),
            ])?,
        ),
        (
            "certificate_bound",
            RestrictedExpression::new_bool(req.certificate_bound),
        ),
        (
            "consent",
            record(vec![
                (
                    "present",
                    RestrictedExpression::new_bool(req.consent.is_some()),
                ),
                (
                    "permissions",
                    strings(
                        req.consent
                            .as_ref()
                            .map_or(&no_permissions, |c| &c.permissions),
                    ),
                ),
            ])?,
        ),
    ];
    if let Some(amount) = req.amount {
        pairs.push(("amount", RestrictedExpression::new_long(amount)));
    }
    if let Some(aggregate) = &req.aggregate {
        let AggregateFacts {
            min_organisations,
            organisations,
            contributors,
            release_mode,
        } = aggregate;
        pairs.push((
            "aggregate",
            record(vec![
                (
                    "min_organisations",
                    RestrictedExpression::new_long(*min_organisations),
                ),
                (
                    "organisations",
                    RestrictedExpression::new_long(*organisations),
                ),
                (
                    "contributors",
                    RestrictedExpression::new_long(*contributors),
                ),
                (
                    "release_mode",
                    RestrictedExpression::new_string(release_mode.clone()),
                ),
            ])?,
        ));
    }
    if let Some(risk) = &req.risk {
        let mut parts = vec![("principal", risk_windows(&risk.principal)?)];
        if let Some(organisation) = &risk.organisation {
            parts.push(("organisation", risk_windows(organisation)?));
        }
        pairs.push(("risk", record(parts)?));
    }
    Context::from_pairs(pairs.into_iter().map(|(k, v)| (k.to_owned(), v))).map_err(|e| invalid(&e))
}

/// `context.risk.principal` or `.organisation`: one record per window, named as configured.
fn risk_windows(
    windows: &BTreeMap<String, RiskWindowFacts>,
) -> Result<RestrictedExpression, PolicyError> {
    let window = |facts: &RiskWindowFacts| {
        let RiskWindowFacts {
            requests,
            distinct_subjects,
            clear_reveals,
            refusals,
            off_hours,
            dp_epsilon_milli,
            fhe_releases,
        } = *facts;
        RestrictedExpression::new_record([
            (
                "requests".to_owned(),
                RestrictedExpression::new_long(requests),
            ),
            (
                "distinct_subjects".to_owned(),
                RestrictedExpression::new_long(distinct_subjects),
            ),
            (
                "clear_reveals".to_owned(),
                RestrictedExpression::new_long(clear_reveals),
            ),
            (
                "refusals".to_owned(),
                RestrictedExpression::new_long(refusals),
            ),
            (
                "off_hours".to_owned(),
                RestrictedExpression::new_long(off_hours),
            ),
            (
                "dp_epsilon_milli".to_owned(),
                RestrictedExpression::new_long(dp_epsilon_milli),
            ),
            (
                "fhe_releases".to_owned(),
                RestrictedExpression::new_long(fhe_releases),
            ),
        ])
    };
    let fields = windows
        .iter()
        .map(|(name, facts)| Ok((name.clone(), window(facts)?)))
        .collect::<Result<Vec<_>, cedar_policy::ExpressionConstructionError>>()
        .map_err(|e| PolicyError::Invalid(e.to_string()))?;
    RestrictedExpression::new_record(fields).map_err(|e| PolicyError::Invalid(e.to_string()))
}

/// What Cedar answered for part of an action's policies: the satisfied permits when it
/// allowed; when it denied, whether a forbid was satisfied (Cedar denies with the
/// satisfied forbids as its reason, or with none when nothing permitted).
#[derive(Default)]
struct Verdict {
    forbidden: bool,
    permits: Vec<String>,
}

impl Verdict {
    fn of(response: &Response) -> Self {
        let ids = determining(response);
        if response.decision() == cedar_policy::Decision::Allow {
            Self {
                forbidden: false,
                permits: ids,
            }
        } else {
            Self {
                forbidden: !ids.is_empty(),
                permits: Vec::new(),
            }
        }
    }

    /// Cedar's rule over both parts as one set: any satisfied forbid denies, else any
    /// satisfied permit allows (its determining policies: every satisfied permit, sorted),
    /// else nothing permits.
    fn permitted_with(&self, other: &Self) -> Option<Vec<String>> {
        if self.forbidden || other.forbidden {
            return None;
        }
        let mut permits: Vec<String> = self.permits.iter().chain(&other.permits).cloned().collect();
        permits.sort();
        (!permits.is_empty()).then_some(permits)
    }
}

fn determining(response: &Response) -> Vec<String> {
    let mut ids: Vec<String> = response
        .diagnostics()
        .reason()
        .map(|id| id.to_string())
        .collect();
    ids.sort();
    ids
}

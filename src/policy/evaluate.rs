//! Turning a [`DecisionRequest`] into a [`Decision`] with Cedar.

use super::{Action, DecisionRequest, PolicyEngine, PolicyError};
use crate::decision::{Decision, FieldView, Refusal};
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, Response,
    RestrictedExpression, Schema,
};
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

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
enum Validate {
    Yes,
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
        let context = self.context(req)?;
        let principal = uid(&format!("{:?}", req.caller.kind), &req.caller.cedar_id())?;
        let resource = self.resource(req)?;

        let route_context = self.typed_context(&context, &req.action)?;
        let route = self.ask(
            &principal,
            self.action(&req.action)?,
            &resource,
            route_context,
            Validate::Yes,
            &entities,
        )?;
        let policy_ids = determining(&route);
        let mut decision = Decision {
            refusal: None,
            policy_ids,
            views: BTreeMap::new(),
            subject_views: BTreeMap::new(),
            view_policy_ids: BTreeMap::new(),
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
        // The view actions share one context type (RequestContext): typed once for all.
        let view_context = self.typed_context(&context, FieldView::ASKED[0].1)?;
        let view_actions = FieldView::ASKED
            .iter()
            .map(|(view, action)| Ok((*view, self.action(action)?)))
            .collect::<Result<Vec<_>, PolicyError>>()?;
        // Each view request differs from the first asked of its action only in the field
        // class, an entity of the same type: Cedar validates it against the schema once.
        let mut validated = [false; FieldView::ASKED.len()];
        for class in &req.field_classes {
            let resource = uid("FieldClass", class)?;
            let mut view = (FieldView::Removed, Vec::new());
            for (index, (candidate, action)) in view_actions.iter().enumerate() {
                let validate = if std::mem::replace(&mut validated[index], true) {
                    Validate::No
                } else {
                    Validate::Yes
                };
                let answer = self.ask(
                    &principal,
                    action,
                    &resource,
                    view_context.clone(),
                    validate,
                    &entities,
                )?;
                if answer.decision() == cedar_policy::Decision::Allow {
                    view = (*candidate, determining(&answer));
                    break;
                }
            }
            decision.views.insert(class.clone(), view.0);
            decision.view_policy_ids.insert(class.clone(), view.1);
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
            },
            action: String::new(),
            customer: String::new(),
            purpose: String::new(),
            amr: Vec::new(),
            auth_age_seconds: 0,
            certificate_bound: false,
            amount: None,
            consent: None,
            field_classes: Vec::new(),
            aggregate: None,
            risk: Some(super::RiskFacts {
                principal: by_window.clone(),
                organisation: Some(by_window),
            }),
        };
        let context = self.context(&request)?;
        for (_, action) in FieldView::ASKED {
            self.typed_context(&context, action)?;
        }
        Ok(())
    }

    fn action(&self, action: &str) -> Result<&Action, PolicyError> {
        self.actions
            .get(action)
            .ok_or_else(|| PolicyError::UnknownAction(action.to_owned()))
    }

    /// The request context typed by the schema for `action`.
    fn typed_context(
        &self,
        context: &serde_json::Value,
        action: &str,
    ) -> Result<Context, PolicyError> {
        Context::from_json_value(
            context.clone(),
            Some((&self.schema, &self.action(action)?.uid)),
        )
        .map_err(|e| PolicyError::Invalid(e.to_string()))
    }

    /// One question to Cedar, asked of the policies that can decide `action`.
    fn ask(
        &self,
        principal: &EntityUid,
        action: &Action,
        resource: &EntityUid,
        context: Context,
        validate: Validate,
        entities: &Entities,
    ) -> Result<Response, PolicyError> {
        let schema = match validate {
            Validate::Yes => Some(&self.schema),
            Validate::No => None,
        };
        let request = Request::new(
            principal.clone(),
            action.uid.clone(),
            resource.clone(),
            context,
            schema,
        )
        .map_err(|e| PolicyError::Invalid(e.to_string()))?;
        let response = Authorizer::new().is_authorized(&request, &action.policies, entities);
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

    fn context(&self, req: &DecisionRequest) -> Result<serde_json::Value, PolicyError> {
        let mut context = serde_json::json!({
            "purpose": req.purpose,
            "authentication": { "amr": req.amr, "age_seconds": req.auth_age_seconds },
            "certificate_bound": req.certificate_bound,
            "consent": {
                "present": req.consent.is_some(),
                "permissions": req.consent.as_ref().map(|c| c.permissions.clone()).unwrap_or_default(),
            },
        });
        if let Some(amount) = req.amount {
            context["amount"] = amount.into();
        }
        if let Some(aggregate) = &req.aggregate {
            context["aggregate"] =
                serde_json::to_value(aggregate).map_err(|e| PolicyError::Invalid(e.to_string()))?;
        }
        if let Some(risk) = &req.risk {
            context["risk"] =
                serde_json::to_value(risk).map_err(|e| PolicyError::Invalid(e.to_string()))?;
        }
        Ok(context)
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
        let mut all = vec![
            principal,
            Entity::new_no_attrs(self.resource(req)?, HashSet::new()),
        ];
        for parent in parents {
            all.push(Entity::new_no_attrs(parent, HashSet::new()));
        }
        self.shared_entities
            .clone()
            .add_entities(all, Some(&self.schema))
            .map_err(|e| invalid(&e))
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

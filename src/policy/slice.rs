//! Per-action policy slices, built when a policy set loads: each action is decided by only
//! the policies whose action scope can match it.
//!
//! Contract: deciding an action with its slice gives exactly what the whole set gives,
//! determining policy ids included. Cedar reads a policy's scope before its conditions, so
//! a policy whose action scope cannot match the action is false without evaluating
//! anything that could error: leaving it out changes no answer, no reason and no
//! diagnostic. A scope matches action `a` when it has no action constraint, is
//! `action == a`, or is `action in [..]` naming `a` or an action group `a` is in (the
//! schema's action hierarchy, transitively, as Cedar reads it).

use super::PolicyError;
use cedar_policy::{ActionConstraint, EntityUid, Policy, PolicySet, ResourceConstraint, Schema};
use std::collections::{HashMap, HashSet};

/// Every schema action's slice, by action uid.
pub(super) fn by_action(
    schema: &Schema,
    policies: &PolicySet,
) -> Result<HashMap<EntityUid, PolicySet>, PolicyError> {
    let action_entities = schema
        .action_entities()
        .map_err(|e| PolicyError::Invalid(e.to_string()))?;
    let mut slices = HashMap::new();
    for action in schema.actions() {
        // The action and every group it is in: what an `in` scope must name to match it.
        let within: HashSet<&EntityUid> = action_entities
            .ancestors(action)
            .into_iter()
            .flatten()
            .chain(std::iter::once(action))
            .collect();
        let mut slice = PolicySet::new();
        for policy in policies.policies() {
            if scope_may_match(policy, action, &within) {
                slice
                    .add(policy.clone())
                    .map_err(|e| PolicyError::Invalid(e.to_string()))?;
            }
        }
        slices.insert(action.clone(), slice);
    }
    Ok(slices)
}

/// Whether `policy`'s action scope can match `action` (`within`: it and its groups).
fn scope_may_match(policy: &Policy, action: &EntityUid, within: &HashSet<&EntityUid>) -> bool {
    match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => uid == *action,
        ActionConstraint::In(uids) => uids.iter().any(|uid| within.contains(uid)),
    }
}

/// A slice split by whether each policy reads the resource, for asking one action of many
/// resources (each field class's view): the policies that do not are asked once, the ones
/// that do once per resource.
///
/// Contract: combining the two answers ([`super::evaluate`]) gives exactly what asking the
/// whole slice gives. Cedar evaluates each policy on its own, and a policy that never
/// names `resource` (its scope leaves the resource unconstrained and its condition does
/// not mention the variable) evaluates the same whatever the resource is: nothing else in
/// a request or its entities is reached through the resource.
#[derive(Clone)]
pub(super) struct ByResource {
    /// Policies that never read the resource.
    pub(super) any_resource: PolicySet,
    /// Policies whose scope or condition reads it.
    pub(super) per_resource: PolicySet,
}

impl ByResource {
    pub(super) fn split(policies: &PolicySet) -> Result<Self, PolicyError> {
        let mut split = Self {
            any_resource: PolicySet::new(),
            per_resource: PolicySet::new(),
        };
        for policy in policies.policies() {
            let side = if reads_resource(policy) {
                &mut split.per_resource
            } else {
                &mut split.any_resource
            };
            side.add(policy.clone())
                .map_err(|e| PolicyError::Invalid(e.to_string()))?;
        }
        Ok(split)
    }
}

/// Whether `policy` can read the resource: its scope constrains it, or its condition names
/// the `resource` variable (found in the policy's JSON form, Cedar's own rendering of its
/// syntax tree, as `{"Var": "resource"}`). A policy Cedar cannot render counts as reading
/// it, which only costs time.
fn reads_resource(policy: &Policy) -> bool {
    if !matches!(policy.resource_constraint(), ResourceConstraint::Any) {
        return true;
    }
    fn names_resource(json: &serde_json::Value) -> bool {
        match json {
            serde_json::Value::Object(fields) => fields
                .iter()
                .any(|(key, value)| (key == "Var" && value == "resource") || names_resource(value)),
            serde_json::Value::Array(items) => items.iter().any(names_resource),
            _ => false,
        }
    }
    policy.to_json().map_or(true, |json| names_resource(&json))
}

#[cfg(test)]
mod tests;

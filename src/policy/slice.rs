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
use cedar_policy::{ActionConstraint, EntityUid, Policy, PolicySet, Schema};
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

#[cfg(test)]
mod tests;

//! Risk indicators in the decision memo's key, coarsened exactly: when every policy that
//! reads an indicator only compares it with whole-number literals, two values on the same
//! side of (or equal to) every such literal get the same decision, so the key holds a
//! canonical value of the class instead of the value itself. A bulk reader's count changes
//! on every request; its class changes only when it crosses a number a policy names.
//!
//! Proof sketch: an indicator is a `Long` in the context; a policy can observe it only
//! through the expressions it appears in. If each appearance is `ind OP lit` or `lit OP ind`
//! (OP one of `< <= > >= == !=`, lit a `Long` literal), the policy's value depends on the
//! indicator only through the truth of those comparisons, which is the same for every value
//! in one class of the partition the literals make (each literal alone, the open intervals
//! between them, below the least and above the greatest). Any other appearance (arithmetic,
//! a comparison with another expression, the record or context used whole) and the set is
//! keyed on exact values ([`RiskClasses::Exact`]).

use super::{RiskFacts, RiskWindowFacts};
use cedar_policy::PolicySet;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// How one policy set's memo keys the indicators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RiskClasses {
    /// Some policy uses an indicator otherwise than in a comparison with a literal.
    Exact,
    /// The literals each indicator (by attribute name, any window or scope) is compared
    /// with; an indicator no policy compares has one class.
    Literals(BTreeMap<String, BTreeSet<i64>>),
}

const COMPARISONS: &[&str] = &["<", "<=", ">", ">=", "==", "!="];

impl RiskClasses {
    /// The classes of `policies` (read from their JSON form).
    pub(super) fn of(policies: &PolicySet) -> Self {
        let mut literals = BTreeMap::new();
        for policy in policies.policies() {
            let Ok(json) = policy.to_json() else {
                return Self::Exact;
            };
            if !safe(&json, &mut literals) {
                return Self::Exact;
            }
        }
        Self::Literals(literals)
    }

    /// `risk` with each indicator replaced by its class's representative.
    pub(super) fn canonical(&self, risk: &RiskFacts) -> RiskFacts {
        let Self::Literals(literals) = self else {
            return risk.clone();
        };
        // Each indicator's literals looked up once, not once per window and scope (this
        // runs on every decision the memo answers).
        let requests = literals.get("requests");
        let distinct_subjects = literals.get("distinct_subjects");
        let clear_reveals = literals.get("clear_reveals");
        let refusals = literals.get("refusals");
        let off_hours = literals.get("off_hours");
        let dp_epsilon_milli = literals.get("dp_epsilon_milli");
        let fhe_releases = literals.get("fhe_releases");
        let class = |set: Option<&BTreeSet<i64>>, value: i64| {
            set.map_or(0, |set| representative(set, value))
        };
        let window = |w: &RiskWindowFacts| RiskWindowFacts {
            requests: class(requests, w.requests),
            distinct_subjects: class(distinct_subjects, w.distinct_subjects),
            clear_reveals: class(clear_reveals, w.clear_reveals),
            refusals: class(refusals, w.refusals),
            off_hours: class(off_hours, w.off_hours),
            dp_epsilon_milli: class(dp_epsilon_milli, w.dp_epsilon_milli),
            fhe_releases: class(fhe_releases, w.fhe_releases),
        };
        let windows = |map: &BTreeMap<String, RiskWindowFacts>| {
            map.iter().map(|(k, w)| (k.clone(), window(w))).collect()
        };
        RiskFacts {
            principal: windows(&risk.principal),
            organisation: risk.organisation.as_ref().map(windows),
        }
    }
}

/// The value standing for `value`'s class: a literal itself, else the least value above
/// the greatest literal below it (or one below the least literal).
fn representative(literals: &BTreeSet<i64>, value: i64) -> i64 {
    if literals.contains(&value) {
        return value;
    }
    match literals.range(..value).next_back() {
        Some(below) => below.saturating_add(1),
        None => literals.first().map_or(0, |least| least.saturating_sub(1)),
    }
}

/// The indicator name if `expr` is `context.risk.<scope>.<window>.<indicator>`.
fn indicator(expr: &Value) -> Option<&str> {
    let mut attrs = Vec::new();
    let mut at = expr;
    while let Some(access) = at.get(".") {
        attrs.push(access.get("attr")?.as_str()?);
        at = access.get("left")?;
    }
    let root_is_context = at.get("Var").and_then(Value::as_str) == Some("context");
    match attrs.as_slice() {
        [name, _window, _scope, "risk"] if root_is_context => Some(name),
        _ => None,
    }
}

/// Whether `expr` reaches `context.risk` (a prefix of an indicator's path).
fn reaches_risk(expr: &Value) -> bool {
    let mut at = expr;
    let mut last = None;
    while let Some(access) = at.get(".") {
        last = access.get("attr").and_then(Value::as_str);
        at = match access.get("left") {
            Some(left) => left,
            None => return false,
        };
    }
    at.get("Var").and_then(Value::as_str) == Some("context") && last == Some("risk")
}

/// Whether every use of an indicator in `expr` is a comparison with a `Long` literal (those
/// literals added to `literals`). Uses of `context` whole are refused too: they could read
/// the indicators.
fn safe(expr: &Value, literals: &mut BTreeMap<String, BTreeSet<i64>>) -> bool {
    match expr {
        Value::Object(map) => {
            if let (1, Some((op, body))) = (map.len(), map.iter().next()) {
                if COMPARISONS.contains(&op.as_str()) {
                    let (left, right) = (&body["left"], &body["right"]);
                    let literal = |v: &Value| v.get("Value").and_then(Value::as_i64);
                    match (indicator(left), indicator(right)) {
                        (Some(name), None) => return compared(name, literal(right), literals),
                        (None, Some(name)) => return compared(name, literal(left), literals),
                        (Some(_), Some(_)) => return false,
                        (None, None) => {}
                    }
                }
                if op == "." {
                    // A path from `context`: another attribute is fine, one into the
                    // indicators outside a comparison is not.
                    if path_from_context(expr) {
                        return !reaches_risk_or_below(expr);
                    }
                }
                if op == "has" {
                    // Presence tests read no value.
                    let left = &body["left"];
                    if is_context(left) || path_from_context(left) {
                        return true;
                    }
                }
                if op == "Var" {
                    return body.as_str() != Some("context");
                }
            }
            map.values().all(|v| safe(v, literals))
        }
        Value::Array(items) => items.iter().all(|v| safe(v, literals)),
        _ => true,
    }
}

fn compared(
    name: &str,
    literal: Option<i64>,
    literals: &mut BTreeMap<String, BTreeSet<i64>>,
) -> bool {
    match literal {
        Some(n) => {
            literals.entry(name.to_owned()).or_default().insert(n);
            true
        }
        None => false,
    }
}

fn is_context(expr: &Value) -> bool {
    expr.get("Var").and_then(Value::as_str) == Some("context")
}

/// Whether `expr` is a chain of attribute accesses rooted at `context`.
fn path_from_context(expr: &Value) -> bool {
    let mut at = expr;
    while let Some(access) = at.get(".") {
        at = match access.get("left") {
            Some(left) => left,
            None => return false,
        };
    }
    is_context(at) && expr.get(".").is_some()
}

/// Whether a `context` path goes through `context.risk`.
fn reaches_risk_or_below(expr: &Value) -> bool {
    let mut at = expr;
    while at.get(".").is_some() {
        if reaches_risk(at) {
            return true;
        }
        at = &at["."]["left"];
    }
    false
}

#[cfg(test)]
mod tests;

//! Reviewing a change to a policy set: which requests an edit decides differently
//! ([`diff`]), and which policies no test case exercises ([`uncovered`]).
//!
//! A diff asks both sets the same questions: every test case of either set, and a grid over
//! what the sets name: each kind of principal (User, Service) alone and in each role the
//! policies name, each route action either schema declares, each purpose the cases use,
//! three authentication states (password only; password and a fresh second factor; a stale
//! one), without and with consent to every permission, for a subject, asking the view of
//! every field class both sets know. Roles, purposes and amounts come from the policies and
//! cases because the schema does not enumerate them.

use super::{Caller, CallerKind, ConsentGrant, Credential};
use super::{DecisionRequest, PolicyCase, PolicyEngine};
use std::collections::BTreeSet;

/// One request both sets were asked, and what each answered, when they differ.
#[derive(Debug, Clone)]
pub struct Change {
    /// `case` (a test case's request) or `grid`.
    pub origin: &'static str,
    /// The case's name, or the grid request in words.
    pub name: String,
    /// The old set's answer, in words.
    pub old: String,
    /// The new set's answer.
    pub new: String,
}

/// What comparing two sets found.
#[derive(Debug, Clone, Default)]
pub struct Diff {
    /// Requests asked from the cases, and from the grid.
    pub from_cases: usize,
    /// Requests asked from the grid.
    pub from_grid: usize,
    /// Field classes only one set knows (their views cannot be compared).
    pub classes_in_one_set: Vec<String>,
    /// Every request answered differently.
    pub changes: Vec<Change>,
}

/// An answer in words: `allow; pan=masked, name=clear`, `deny (consent_required)`, or why
/// the set cannot decide the request.
fn answer(engine: &PolicyEngine, request: &DecisionRequest) -> String {
    match engine.decide(request) {
        Err(e) => format!("cannot decide: {e}"),
        Ok(decision) => match decision.refusal {
            Some(refusal) => format!("deny ({})", refusal.reason),
            None if decision.views.is_empty() => "allow".to_owned(),
            None => {
                let views: Vec<String> = decision
                    .views
                    .iter()
                    .map(|(class, view)| format!("{class}={}", format!("{view:?}").to_lowercase()))
                    .collect();
                format!("allow; {}", views.join(", "))
            }
        },
    }
}

/// A grid request in words.
fn describe(r: &DecisionRequest) -> String {
    let consent = match &r.consent {
        Some(_) => "consent to all",
        None => "no consent",
    };
    let amount = r.amount.map(|a| format!(" amount={a}")).unwrap_or_default();
    format!(
        "{:?} roles=[{}] {} purpose={} amr={} age={}s {consent}{amount}",
        r.caller.kind,
        r.caller.roles.join(","),
        r.action,
        r.purpose,
        r.amr.join("+"),
        r.auth_age_seconds
    )
}

/// Asks `old` and `new` every case of either and the grid; lists what they answer
/// differently.
pub fn diff(old: &PolicyEngine, new: &PolicyEngine, cases: &[PolicyCase]) -> Diff {
    let mut result = Diff::default();
    let mut compare = |origin: &'static str, name: String, request: &DecisionRequest| {
        let (a, b) = (answer(old, request), answer(new, request));
        if a != b {
            result.changes.push(Change {
                origin,
                name,
                old: a,
                new: b,
            });
        }
    };
    for case in cases {
        compare("case", case.name.clone(), &case.request);
    }
    let grid = grid(old, new, cases);
    for request in &grid {
        compare("grid", describe(request), request);
    }
    result.from_cases = cases.len();
    result.from_grid = grid.len();
    let classes = |e: &PolicyEngine| {
        e.field_classes()
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
    };
    result.classes_in_one_set = classes(old)
        .symmetric_difference(&classes(new))
        .cloned()
        .collect();
    result
}

/// The grid of requests (see the module's contract).
fn grid(old: &PolicyEngine, new: &PolicyEngine, cases: &[PolicyCase]) -> Vec<DecisionRequest> {
    let both = [old, new];
    let mut roles: BTreeSet<String> = both.iter().flat_map(|e| e.named_roles()).collect();
    let mut purposes = BTreeSet::new();
    for case in cases {
        roles.extend(case.request.caller.roles.iter().cloned());
        purposes.insert(case.request.purpose.clone());
        purposes.extend(case.request.caller.purposes.iter().cloned());
    }
    if purposes.is_empty() {
        purposes.insert("unspecified".to_owned());
    }
    let actions: BTreeSet<&String> = both.iter().flat_map(|e| e.route_actions()).collect();
    let classes: crate::decision::FieldClasses = old
        .field_classes()
        .filter(|c| new.field_classes().any(|n| n == *c))
        .map(str::to_owned)
        .collect();
    let permissions: BTreeSet<String> = both.iter().flat_map(|e| e.permissions()).collect();
    let consent = ConsentGrant {
        id: "grid-consent".into(),
        permissions: permissions.into_iter().collect(),
    };
    let authentication: [(&[&str], i64); 3] = [
        (&["pwd"], 600),
        (&["pwd", "otp"], 60),
        (&["pwd", "otp"], 3600),
    ];
    let role_choices: Vec<Vec<String>> = std::iter::once(Vec::new())
        .chain(roles.iter().map(|r| vec![r.clone()]))
        .collect();
    let mut grid = Vec::new();
    for kind in [CallerKind::User, CallerKind::Service] {
        for roles in &role_choices {
            for action in &actions {
                // Amounts only where a case of the action gives one: the schema says a
                // payment has an amount, not which amounts the policies care about.
                let amounts: BTreeSet<Option<i64>> = std::iter::once(None)
                    .chain(
                        cases
                            .iter()
                            .filter(|c| c.request.action == **action)
                            .map(|c| c.request.amount),
                    )
                    .collect();
                let aggregate = cases
                    .iter()
                    .find(|c| c.request.action == **action)
                    .and_then(|c| c.request.aggregate.clone());
                let per_subject = both
                    .iter()
                    .all(|e| e.resource_type(action) == Some("Customer"));
                for purpose in &purposes {
                    for (amr, age) in authentication {
                        for consent in [None, Some(consent.clone())] {
                            for amount in &amounts {
                                grid.push(DecisionRequest {
                                    caller: Caller {
                                        kind,
                                        credential: match kind {
                                            CallerKind::User => Credential::Token,
                                            CallerKind::Service => Credential::ClientCertificate,
                                        },
                                        id: "grid-caller".into(),
                                        roles: roles.clone(),
                                        organisation: None,
                                        purposes: purposes.iter().cloned().collect(),
                                    }
                                    .into(),
                                    action: (*action).clone(),
                                    customer: "grid-subject".into(),
                                    purpose: purpose.clone(),
                                    amr: amr.iter().map(|m| (*m).to_owned()).collect(),
                                    auth_age_seconds: age,
                                    certificate_bound: false,
                                    amount: *amount,
                                    consent: consent.clone(),
                                    field_classes: match per_subject {
                                        true => classes.clone(),
                                        false => Default::default(),
                                    },
                                    aggregate: aggregate.clone(),
                                    risk: None,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    grid
}

/// The `@id` of every policy of `engine` that decided none of the cases' requests (neither
/// the route nor a view): what no case exercises. A policy counts as exercised when Cedar
/// names it among the policies that determined a decision, so a permit every case sees
/// overridden by a forbid is listed too.
pub fn uncovered(engine: &PolicyEngine, cases: &[PolicyCase]) -> Vec<String> {
    let mut exercised = BTreeSet::new();
    for case in cases {
        if let Ok(decision) = engine.decide(&case.request) {
            exercised.extend(decision.policy_ids);
            exercised.extend(decision.view_policy_ids.values().flatten().cloned());
        }
    }
    engine
        .policy_ids()
        .into_iter()
        .filter(|id| !exercised.contains(id))
        .collect()
}

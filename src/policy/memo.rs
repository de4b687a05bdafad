//! Memoized decisions: a bounded cache, owned by one [`PolicyEngine`](super::PolicyEngine),
//! of the decisions it made, keyed by everything in a [`DecisionRequest`] the policies can
//! read.
//!
//! Contract: a hit returns exactly the decision Cedar gave for an equal key under the same
//! policy set. That holds because
//! - the key is the whole request but the consent id ([`Facts::of`] destructures the request
//!   exhaustively, so a field added to it does not compile until it is placed in the key or
//!   explicitly left out with a reason). The consent id is left out because the policies
//!   cannot read it (the context carries only the consent's presence and permissions) and
//!   the decision does not carry it (the audit record takes it from the request);
//! - the cache lives in the engine: a policy-set swap builds a new engine, so a reload
//!   drops every memoized decision with the policies that made it;
//! - consent and token state reach a decision only through the request (the consent's
//!   presence and permissions are in the key; a revoked token never gets to ask);
//! - errors are never stored;
//! - the data subject is left out of the key only for the actions [`subject_blind`] proves
//!   cannot tell one subject from another under this policy set.

use super::risk_classes::RiskClasses;
use super::{AggregateFacts, CallerKind, Credential, DecisionRequest, RiskFacts};
use crate::decision::Decision;
use cedar_policy::PolicySet;
use quick_cache::{sync::Cache, Equivalent};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Entity types every request's entities hold besides the resource: the principal, its
/// parents and the field classes. A resource of one of these types could equal one of them.
const REQUEST_ENTITY_TYPES: &[&str] = &["User", "Service", "Role", "Organisation", "FieldClass"];

/// The route actions whose decisions cannot depend on which data subject they concern, so
/// that one memoized decision serves every subject.
///
/// Proof: the resource entity has no attributes and no parents, and no attribute or
/// context value is an entity, so a policy can tell two resource ids apart only by
/// comparing the resource (`==`, `in`) with another entity: an entity literal, or an entity
/// of the request of the same type. An action qualifies when its resource type
/// (`resource_types`) is none of [`REQUEST_ENTITY_TYPES`] and no policy holds a literal of
/// that type. The decision itself does not name the subject.
pub(super) fn subject_blind(
    resource_types: &HashMap<String, String>,
    policies: &PolicySet,
) -> HashSet<String> {
    let named: HashSet<String> = policies
        .policies()
        .flat_map(|policy| policy.entity_literals())
        .map(|uid| uid.type_name().basename().to_owned())
        .collect();
    resource_types
        .iter()
        .filter(|(_, kind)| {
            !REQUEST_ENTITY_TYPES.contains(&kind.as_str()) && !named.contains(*kind)
        })
        .map(|(action, _)| action.clone())
        .collect()
}

/// Decisions kept per policy set. A decision with nine field-class views holds about 2 KB,
/// so a full cache stays near 8 MB; 4096 covers every combination of role, purpose,
/// consent permissions and route a deployment's callers present within a few seconds
/// (the authentication age is in the key, so an entry serves one caller for one second).
pub(super) const CAPACITY: usize = 4096;

/// Everything the policies can read from a request, borrowed from it: what two requests
/// must share to share a decision.
#[derive(Hash, PartialEq, Eq)]
struct Facts<'a> {
    kind: CallerKind,
    credential: Credential,
    caller_id: &'a str,
    roles: &'a [String],
    organisation: Option<&'a str>,
    caller_purposes: &'a [String],
    action: &'a str,
    /// Empty for a [`subject_blind`] action.
    customer: &'a str,
    purpose: &'a str,
    amr: &'a [String],
    auth_age_seconds: i64,
    certificate_bound: bool,
    amount: Option<i64>,
    /// The consent's permissions; `None` when there is no consent.
    consent: Option<&'a [String]>,
    field_classes: &'a [String],
    aggregate: Option<&'a AggregateFacts>,
    /// The indicators, each replaced by its class under this policy set
    /// ([`super::risk_classes`]): exact values where a policy could tell more apart.
    risk: Option<&'a RiskFacts>,
}

impl<'a> Facts<'a> {
    /// The facts of `request`, its subject left out when `blind` (a [`subject_blind`]
    /// action), its indicators as `risk` (their classes).
    fn of(request: &'a DecisionRequest, blind: bool, risk: Option<&'a RiskFacts>) -> Self {
        // Exhaustive on purpose: a new request field must be placed here (or left out with
        // a reason) before this compiles.
        let DecisionRequest {
            caller,
            action,
            customer,
            purpose,
            amr,
            auth_age_seconds,
            certificate_bound,
            amount,
            consent,
            field_classes,
            aggregate,
            // Keyed by class: the caller passes the canonical form.
            risk: _,
        } = request;
        let super::Caller {
            kind,
            credential,
            id,
            roles,
            organisation,
            purposes,
        } = &**caller;
        Facts {
            kind: *kind,
            credential: *credential,
            caller_id: id,
            roles,
            organisation: organisation.as_deref(),
            caller_purposes: purposes,
            action,
            customer: if blind { "" } else { customer.as_str() },
            purpose,
            amr,
            auth_age_seconds: *auth_age_seconds,
            certificate_bound: *certificate_bound,
            amount: *amount,
            consent: consent.as_ref().map(|grant| {
                // The id is audited, never read by a policy: not part of the key.
                let super::ConsentGrant { id: _, permissions } = grant;
                permissions.as_slice()
            }),
            field_classes,
            aggregate: aggregate.as_ref(),
            risk,
        }
    }
}

/// A stored key: the request it was decided for, its consent id blanked (the cache holds
/// no consent ids), its subject too where left out and its indicators replaced by their
/// classes, compared and hashed through its [`Facts`].
struct Key(DecisionRequest);

impl Key {
    fn facts(&self) -> Facts<'_> {
        Facts::of(&self.0, false, self.0.risk.as_ref())
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.facts().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.facts() == other.facts()
    }
}

impl Eq for Key {}

impl Equivalent<Key> for Facts<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self == key.facts()
    }
}

/// Hits and misses of an engine's decision cache since it loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoStats {
    /// Decisions answered from the cache.
    pub hits: u64,
    /// Decisions Cedar had to make.
    pub misses: u64,
}

/// The decisions one policy set made.
pub(super) struct DecisionMemo {
    decisions: Cache<Key, Arc<Decision>>,
    /// [`subject_blind`] actions.
    subject_blind: HashSet<String>,
    /// How indicators are keyed.
    risk_classes: RiskClasses,
}

impl DecisionMemo {
    pub(super) fn new(
        capacity: usize,
        subject_blind: HashSet<String>,
        risk_classes: RiskClasses,
    ) -> Self {
        Self {
            decisions: Cache::new(capacity),
            subject_blind,
            risk_classes,
        }
    }

    fn blind(&self, request: &DecisionRequest) -> bool {
        self.subject_blind.contains(&request.action)
    }

    /// The decision made earlier for a request with the same [`Facts`], if still held.
    pub(super) fn get(&self, request: &DecisionRequest) -> Option<Decision> {
        let risk = request
            .risk
            .as_ref()
            .map(|r| self.risk_classes.canonical(r));
        self.decisions
            .get(&Facts::of(request, self.blind(request), risk.as_ref()))
            .map(|decision| Decision::clone(&decision))
    }

    /// Keeps `decision`, which Cedar made for `request`.
    pub(super) fn insert(&self, request: &DecisionRequest, decision: &Decision) {
        let mut key = request.clone();
        if let Some(consent) = &mut key.consent {
            consent.id.clear();
        }
        if self.blind(request) {
            key.customer.clear();
        }
        if let Some(risk) = &mut key.risk {
            *risk = self.risk_classes.canonical(risk);
        }
        self.decisions.insert(Key(key), Arc::new(decision.clone()));
    }

    pub(super) fn stats(&self) -> MemoStats {
        MemoStats {
            hits: self.decisions.hits(),
            misses: self.decisions.misses(),
        }
    }
}

#[cfg(test)]
mod tests;

//! The policy phase: Cedar policies from `policies/`, validated in strict mode, decide
//! whether a caller may take a route's action on a data subject and which view of each
//! field class they get, producing a [`Decision`](crate::decision::Decision).
//!
//! Views are actions asked from most to least revealing (`view_clear`, `view_masked`,
//! `view_token`); the first permitted wins, none permitted removes the field. A refusal's
//! reason is the `@reason` of the deciding forbid policy; every policy has an `@id`.

//!
//! An engine memoizes its decisions (`memo`) and asks each action only the policies
//! whose scope can match it (`slice`); both are exact, and both go with the engine when a
//! reload swaps the policy set.

mod cases;
mod evaluate;
mod explain;
mod load;
mod memo;
mod request;
mod review;
mod risk_classes;
mod signature;
mod slice;
mod snapshot;
mod validated;

pub use cases::{read_cases, run_case, CaseOutcome, Expectation, PolicyCase};
pub use explain::{ClassView, Explanation, PolicySource};
pub use memo::MemoStats;
pub use request::{
    AggregateFacts, Caller, CallerKind, ConsentGrant, Credential, DecisionRequest, RiskFacts,
    RiskWindowFacts,
};
pub use review::{diff, uncovered, Change, Diff};
pub use signature::{generate_key, sign, TrustedKey};
pub use snapshot::{PolicySnapshot, SIGNATURE_FILE};

use crate::config::ConfigError;
use cedar_policy::{Entities, EntityUid, PolicySet, Schema};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// A validated policy set, ready to decide.
pub struct PolicyEngine {
    schema: Schema,
    policies: PolicySet,
    /// `@reason` of each forbid policy, by `@id`.
    reasons: HashMap<String, String>,
    /// Field class → consent permission that covers it.
    field_classes: BTreeMap<String, String>,
    /// Actions routes can name (every schema action but the views).
    route_actions: Vec<String>,
    /// The resource entity type of each action (its first in the schema): `Customer` for
    /// per-subject actions, e.g. `Gateway` for gateway-wide admin actions.
    resource_types: HashMap<String, String>,
    /// Every action by name, with the policies that can decide it: built once, asked up to
    /// four times per field class.
    actions: HashMap<String, Action>,
    /// The entities every request shares (field classes, the schema's actions), validated
    /// once; each request adds its principal and resource to a copy.
    shared_entities: Entities,
    /// The decisions this policy set made.
    memo: memo::DecisionMemo,
    /// The question shapes its schema accepted.
    validated: validated::Validated,
    /// Whether any policy can read `context.risk`.
    reads_risk: bool,
    hash: String,
    /// The `*.cedar` file of each policy, by `@id` (for explanations).
    files: BTreeMap<String, String>,
    /// The set's own test cases (`tests/*.json`), as activated, or why they do not parse.
    cases: Result<Vec<(std::path::PathBuf, PolicyCase)>, String>,
}

/// A schema action as the engine asks it.
struct Action {
    uid: EntityUid,
    /// The policies whose action scope can match it ([`slice`]).
    policies: PolicySet,
    /// The same policies split by whether they read the resource, for asking the action of
    /// many resources at once (a view action of every field class): [`slice::ByResource`].
    by_resource: slice::ByResource,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Why a request could not be decided (a bad request, not a refusal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The action is not in the schema.
    #[error("unknown action `{0}`")]
    UnknownAction(String),
    /// The field class is not in fields.toml.
    #[error("unknown field class `{0}`")]
    UnknownFieldClass(String),
    /// Cedar refused the request or its entities.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl PolicyEngine {
    /// Loads and validates `dir`; every problem names its file (and line where Cedar says).
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        load::load(&PolicySnapshot::read(dir)?)
    }

    /// Validates a set already read (the bytes a signature was checked over).
    pub fn from_snapshot(set: &PolicySnapshot) -> Result<Self, ConfigError> {
        load::load(set)
    }

    fn new(
        schema: Schema,
        policies: PolicySet,
        reasons: HashMap<String, String>,
        field_classes: BTreeMap<String, String>,
        hash: String,
    ) -> Result<Self, PolicyError> {
        let mut route_actions: Vec<String> = schema
            .actions()
            .map(|a| a.id().unescaped().to_string())
            .filter(|a| !a.starts_with("view_"))
            .collect();
        route_actions.sort();
        let resource_types = schema
            .actions()
            .filter_map(|a| {
                let first = schema.resources_for_action(a)?.next()?;
                Some((a.id().unescaped().to_string(), first.basename().to_owned()))
            })
            .collect();
        let actions: HashMap<String, Action> = slice::by_action(&schema, &policies)?
            .into_iter()
            .map(|(uid, policies)| {
                let by_resource = slice::ByResource::split(&policies)?;
                let name = uid.id().unescaped().to_string();
                Ok((
                    name,
                    Action {
                        uid,
                        policies,
                        by_resource,
                    },
                ))
            })
            .collect::<Result<_, PolicyError>>()?;
        let shared_entities = evaluate::shared_entities(&schema, &field_classes)?;
        let subject_blind = memo::subject_blind(&resource_types, &policies);
        let risk_classes = risk_classes::RiskClasses::of(&policies);
        // Conservative: any policy whose text names `risk` counts as reading it (a false
        // positive costs memo hits, never a wrong decision).
        let reads_risk = policies
            .policies()
            .any(|policy| policy.to_string().contains("risk"));
        Ok(Self {
            schema,
            policies,
            reasons,
            field_classes,
            route_actions,
            resource_types,
            actions,
            shared_entities,
            memo: memo::DecisionMemo::new(memo::CAPACITY, subject_blind, risk_classes),
            validated: Default::default(),
            reads_risk,
            hash,
            files: BTreeMap::new(),
            cases: Ok(Vec::new()),
        })
    }

    /// Content hash of the policy set (recorded in every audit record).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Whether some policy reads `context.risk`: the gateway computes the indicators into
    /// a request only then, so a policy set that ignores them keeps its memo hits.
    pub fn reads_risk(&self) -> bool {
        self.reads_risk
    }

    /// Hits and misses of the decision cache since this policy set loaded.
    pub fn memo_stats(&self) -> MemoStats {
        self.memo.stats()
    }

    /// Number of policies in the set.
    pub fn policy_count(&self) -> usize {
        self.policies.policies().count()
    }

    /// Route actions the schema declares (everything but the view actions), sorted.
    pub fn route_actions(&self) -> &[String] {
        &self.route_actions
    }

    /// The entity type an action's resource is (`Customer` for the route actions): what a
    /// route's data subject id names.
    pub fn resource_type(&self, action: &str) -> Option<&str> {
        self.resource_types.get(action).map(String::as_str)
    }

    /// Every (policy `@id`, route action) a policy's scope names, for telling which
    /// policies a route action's absence leaves deciding nothing. Policies on any action
    /// name none.
    pub fn scoped_actions(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for policy in self.policies.policies() {
            let uids = match policy.action_constraint() {
                cedar_policy::ActionConstraint::Any => Vec::new(),
                cedar_policy::ActionConstraint::Eq(uid) => vec![uid],
                cedar_policy::ActionConstraint::In(uids) => uids,
            };
            for uid in uids {
                let action = uid.id().unescaped().to_string();
                if self.route_actions.contains(&action) {
                    found.push((policy.id().to_string(), action));
                }
            }
        }
        found.sort();
        found
    }

    /// Field classes known to the policy set.
    pub fn field_classes(&self) -> impl Iterator<Item = &str> {
        self.field_classes.keys().map(String::as_str)
    }

    /// The consent permissions covering the field classes.
    pub fn permissions(&self) -> BTreeSet<String> {
        self.field_classes.values().cloned().collect()
    }

    /// The `@id` of every policy, sorted.
    pub fn policy_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .policies
            .policies()
            .map(|p| p.id().to_string())
            .collect();
        ids.sort();
        ids
    }

    /// The roles the policies name (`Role::"teller"`): what a principal can be in that
    /// makes a difference to them.
    pub fn named_roles(&self) -> BTreeSet<String> {
        let mut roles = BTreeSet::new();
        for policy in self.policies.policies() {
            let text = policy.to_string();
            for (at, _) in text.match_indices("Role::\"") {
                let rest = &text[at + "Role::\"".len()..];
                if let Some(end) = rest.find('"') {
                    roles.insert(rest[..end].to_owned());
                }
            }
        }
        roles
    }
}

/// Reads the configured policy set once and, when `[policy] trusted_keys` lists keys,
/// checks its signature over exactly what was read: the one gate to activation (start,
/// reload and `privgate check`). A set that fails is never activated.
pub fn read_activatable(
    config: &crate::config::PolicyConfig,
) -> Result<PolicySnapshot, ConfigError> {
    let set = PolicySnapshot::read(&config.dir)?;
    if config.trusted_keys.is_empty() {
        return Ok(set);
    }
    let mut problems = Vec::new();
    let mut keys = Vec::new();
    for file in &config.trusted_keys {
        match TrustedKey::read(file) {
            Ok(key) => keys.push(key),
            Err(message) => problems.push(crate::config::Problem {
                file: file.clone(),
                at: None,
                message,
            }),
        }
    }
    if problems.is_empty() {
        if let Err(message) = signature::verify(&set, &keys) {
            problems.push(crate::config::Problem {
                file: config.dir.join(SIGNATURE_FILE),
                at: None,
                message: format!("policy set not activated: {message}"),
            });
        }
    }
    match problems.is_empty() {
        true => Ok(set),
        false => Err(ConfigError { problems }),
    }
}

#[cfg(test)]
mod tests;

//! Why the policy set answers a request as it does: the route's outcome and every field
//! class's view, each with the policies that decided it, and the text of any policy by its
//! `@id`. `privgate policy explain` prints it; the web console's Policies and Decisions
//! pages show it. One explanation, so the CLI and the console can never disagree.

use super::{DecisionRequest, PolicyEngine, PolicyError};
use crate::decision::FieldView;

/// The explanation of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// Whether the route is allowed.
    pub allowed: bool,
    /// The refusal reason (`@reason` of the deciding forbid, or the gateway's own).
    pub reason: Option<String>,
    /// The policies that decided the route (empty: none permits, default deny).
    pub route_policies: Vec<String>,
    /// Each field class the request names: its view and the policies that decided it.
    pub views: Vec<ClassView>,
    /// The policy set that decided.
    pub policy_set_hash: String,
}

/// One field class's view and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassView {
    /// The field class.
    pub class: String,
    /// The view granted.
    pub view: FieldView,
    /// The policies that granted it (empty: no view permitted, the field is removed).
    pub policies: Vec<String>,
}

impl Explanation {
    /// Decides `request` and explains the answer.
    pub fn of(engine: &PolicyEngine, request: &DecisionRequest) -> Result<Self, PolicyError> {
        let decision = engine.decide(request)?;
        let views = decision
            .views
            .iter()
            .map(|(class, view)| ClassView {
                class: class.clone(),
                view: *view,
                policies: decision
                    .view_policy_ids
                    .get(class)
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Self {
            allowed: decision.allowed(),
            reason: decision.refusal.map(|r| r.reason),
            route_policies: decision.policy_ids,
            views,
            policy_set_hash: decision.policy_set_hash,
        })
    }

    /// The route's outcome in words: `ALLOW, by p1, p2` or `DENY (reason), by ...`.
    pub fn route_line(&self) -> String {
        let by = by(&self.route_policies, "no policy permits (default deny)");
        match &self.reason {
            None => format!("ALLOW, by {by}"),
            Some(reason) => format!("DENY ({reason}), by {by}"),
        }
    }
}

impl ClassView {
    /// Why the class got its view, in words.
    pub fn why(&self) -> String {
        if self.policies.is_empty() {
            "no view permitted".to_owned()
        } else {
            format!("by {}", self.policies.join(", "))
        }
    }
}

fn by(ids: &[String], none: &str) -> String {
    if ids.is_empty() {
        none.to_owned()
    } else {
        ids.join(", ")
    }
}

/// One policy of the active set as a reader sees it: its id, file and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    /// `@id`.
    pub id: String,
    /// The `*.cedar` file it is in.
    pub file: String,
    /// Its text, annotations included.
    pub text: String,
}

impl PolicyEngine {
    /// The policy with this `@id`, if the set has it.
    pub fn policy_source(&self, id: &str) -> Option<PolicySource> {
        let policy = self.policies.policy(&cedar_policy::PolicyId::new(id))?;
        Some(PolicySource {
            id: id.to_owned(),
            file: self.files.get(id).cloned().unwrap_or_default(),
            text: policy.to_string(),
        })
    }

    /// Every policy's `@id` with its file, sorted by id.
    pub fn policy_files(&self) -> &std::collections::BTreeMap<String, String> {
        &self.files
    }

    /// The test cases shipped in the set's `tests/` (read from the bytes activated), or
    /// why they could not be read.
    pub fn cases(&self) -> Result<&[(std::path::PathBuf, super::PolicyCase)], &str> {
        match &self.cases {
            Ok(cases) => Ok(cases),
            Err(e) => Err(e),
        }
    }
}

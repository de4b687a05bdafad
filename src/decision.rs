//! The Decision: what a caller may do on one request, produced by the policy phase and
//! executed by the gateway (allow or refuse) and, later, by field protection (which view of
//! each field class the caller gets).
//!
//! It lives apart from `policy/` so that the phases executing it never depend on how it
//! was reached: they only read this.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The field classes a route's rules bind, sorted, once each: built when the rules load and
/// shared by every decision request of the route (an `Arc`, so a request does not copy the
/// class names one by one).
pub type FieldClasses = Arc<[String]>;

/// How a caller sees one class of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldView {
    /// The value in clear.
    Clear,
    /// A masked rendering (e.g. last four digits).
    Masked,
    /// The deterministic token.
    Token,
    /// The field is removed.
    Removed,
}

impl FieldView {
    /// Views a policy can grant, most revealing first, with the action that grants each.
    pub const ASKED: [(FieldView, &'static str); 3] = [
        (FieldView::Clear, "view_clear"),
        (FieldView::Masked, "view_masked"),
        (FieldView::Token, "view_token"),
    ];
}

/// Why a request was refused: the `@reason` of the deciding forbid policy, or `forbidden`
/// when no policy permitted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Stable reason code (`consent_required`, `purpose_not_allowed`, `step_up_required`,
    /// `forbidden`, ...).
    pub reason: String,
}

/// What the caller may do on this request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `None` when the route is allowed.
    pub refusal: Option<Refusal>,
    /// Ids of the policies that decided the route.
    pub policy_ids: Vec<String>,
    /// The view of each field class the route's rules bind (shared with the policy
    /// engine's memo: a repeated decision is not copied class by class).
    pub views: Arc<BTreeMap<String, FieldView>>,
    /// Views decided per data subject, for responses holding several subjects (element-scoped
    /// rules): filled at reveal time, one decision per distinct subject in the response.
    pub subject_views: BTreeMap<String, Arc<BTreeMap<String, FieldView>>>,
    /// Ids of the policies that decided each view (shared like `views`).
    pub view_policy_ids: Arc<BTreeMap<String, Vec<String>>>,
    /// Content hash of the policy set that decided.
    pub policy_set_hash: String,
}

impl Decision {
    /// Whether the route is allowed.
    pub fn allowed(&self) -> bool {
        self.refusal.is_none()
    }

    /// The view of `class` for `subject`: the subject's own decision when one was made,
    /// else the route's. A class no decision covers is removed (fail closed).
    pub fn view(&self, subject: Option<&str>, class: &str) -> FieldView {
        let views = subject
            .and_then(|s| self.subject_views.get(s))
            .unwrap_or(&self.views);
        views.get(class).copied().unwrap_or(FieldView::Removed)
    }

    /// Field classes shown in clear (what the audit record lists).
    pub fn revealed_clear(&self) -> Vec<String> {
        let mut clear: Vec<String> = std::iter::once(&self.views)
            .chain(self.subject_views.values())
            .flat_map(|views| views.iter())
            .filter(|(_, v)| **v == FieldView::Clear)
            .map(|(c, _)| c.clone())
            .collect();
        clear.sort();
        clear.dedup();
        clear
    }
}

//! Budget tiers: larger per-analyst budgets that policy grants to some analysts.
//!
//! A dataset's `analyst_epsilon` is every analyst's budget unless a tier applies. Tiers are
//! declared on the dataset (`[[dataset.budget_tier]]`, most generous first) and granted by
//! Cedar: the gateway asks `use_budget_tier` on `PrivGate::BudgetTier::"<dataset>/<tier>"`
//! for each tier in order and the first permitted one sets the caller's budget. Who gets
//! more is thus a policy decision the security team edits, next to who may query at all;
//! the amounts stay in the dataset's config, next to the bounds they depend on. The
//! dataset's `global_epsilon` (and `global_delta`) still cap all analysts together.

use super::config::{is_identifier, DatasetConfig};
use crate::config::Problems;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashSet;

/// The Cedar action that grants a tier.
pub const USE_BUDGET_TIER_ACTION: &str = "use_budget_tier";

/// One `[[dataset.budget_tier]]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BudgetTier {
    /// Name policies grant it by (`BudgetTier::"<dataset>/<name>"`).
    pub name: String,
    /// Privacy loss one analyst in this tier may spend on the dataset per period.
    pub analyst_epsilon: f64,
    /// Delta one analyst in this tier may spend per period (keyed GROUP BY); absent: the
    /// dataset's `analyst_delta`.
    #[serde(default)]
    pub analyst_delta: Option<f64>,
}

impl BudgetTier {
    /// The Cedar resource id of this tier of `dataset`.
    pub fn resource_id(&self, dataset: &str) -> String {
        format!("{dataset}/{}", self.name)
    }
}

impl DatasetConfig {
    /// The dataset as an analyst in `tier` sees it: the tier's budget in place of the
    /// default. `None` (no tier granted) or an unknown name: the default budget.
    pub fn for_tier(&self, tier: Option<&str>) -> Cow<'_, DatasetConfig> {
        match tier.and_then(|name| self.budget_tiers.iter().find(|t| t.name == name)) {
            None => Cow::Borrowed(self),
            Some(t) => {
                let mut config = self.clone();
                config.analyst_epsilon = t.analyst_epsilon;
                if t.analyst_delta.is_some() {
                    config.analyst_delta = t.analyst_delta;
                }
                Cow::Owned(config)
            }
        }
    }
}

/// Adds a problem for each tier the gateway could not apply safely.
pub(crate) fn validate(d: &DatasetConfig, problems: &mut Problems) {
    let mut names = HashSet::new();
    for tier in &d.budget_tiers {
        let mut add = |what: &str| {
            problems.add(format!(
                "dataset `{}`: budget_tier `{}`: {what}",
                d.name, tier.name
            ))
        };
        if !is_identifier(&tier.name) {
            add("name must be letters, digits and _");
        }
        if !names.insert(tier.name.as_str()) {
            add("is defined twice");
        }
        if !(tier.analyst_epsilon.is_finite() && tier.analyst_epsilon > 0.0) {
            add("analyst_epsilon must be a positive number");
        }
        if tier.analyst_epsilon > d.global_epsilon {
            add("analyst_epsilon must not exceed the dataset's global_epsilon");
        }
        match (tier.analyst_delta, d.global_delta) {
            (None, _) => {}
            (Some(_), None) => {
                add("analyst_delta needs the dataset's analyst_delta and global_delta")
            }
            (Some(delta), Some(global)) => {
                if !(delta.is_finite() && delta > 0.0 && delta <= global) {
                    add("analyst_delta must be positive and at most the dataset's global_delta");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_granted_tier_replaces_only_the_analyst_budget() {
        let mut d = crate::analytics::dp::tests::dataset();
        d.analyst_delta = Some(1e-8);
        d.global_delta = Some(1e-6);
        d.budget_tiers = vec![
            BudgetTier {
                name: "senior".into(),
                analyst_epsilon: 3.0,
                analyst_delta: Some(1e-7),
            },
            BudgetTier {
                name: "wider".into(),
                analyst_epsilon: 2.0,
                analyst_delta: None,
            },
        ];
        let senior = d.for_tier(Some("senior"));
        assert_eq!(senior.analyst_epsilon, 3.0);
        assert_eq!(senior.analyst_delta, Some(1e-7));
        assert_eq!(d.for_tier(Some("wider")).analyst_delta, Some(1e-8));
        assert_eq!(senior.global_epsilon, d.global_epsilon);
        assert_eq!(d.for_tier(None).analyst_epsilon, d.analyst_epsilon);
        assert_eq!(d.for_tier(Some("other")).analyst_epsilon, d.analyst_epsilon);
        assert_eq!(
            d.budget_tiers[0].resource_id("transactions"),
            "transactions/senior"
        );
    }
}

//! Budget tiers: larger per-analyst budgets that policy grants to some analysts.
//!
//! A dataset's `analyst_epsilon` is every analyst's budget unless a tier applies. Tiers are
//! declared on the dataset (`[[dataset.budget_tier]]`, most generous first) and granted by
//! Cedar: the gateway asks `use_budget_tier` on `PrivGate::BudgetTier::"<dataset>/<tier>"`
//! for each tier in order and the first permitted one sets the caller's budget. Who gets
//! more is thus a policy decision the security team edits, next to who may query at all;
//! the amounts stay in the dataset's config, next to the bounds they depend on (declared
//! and validated in `config::dataset`). The dataset's `global_epsilon` (and
//! `global_delta`) still cap all analysts together.

use crate::config::dataset::DatasetConfig;
use std::borrow::Cow;

/// The Cedar action that grants a tier.
pub(crate) const USE_BUDGET_TIER_ACTION: &str = "use_budget_tier";

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

#[cfg(test)]
mod tests {
    use crate::config::dataset::BudgetTier;

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

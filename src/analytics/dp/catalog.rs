//! What an analyst may learn about the datasets without spending anything: their public
//! description (`GET /analytics/v1/datasets`) and the budget left (`GET /analytics/v1/budget`).
//!
//! A description holds only what the data owner declared public in the dataset's config:
//! the queryable columns with their types, clamp bounds and category lists, the privacy
//! unit's column, the contribution bounds, the budgets, periods and tiers. It never names
//! the source (database URL, table, CSV path) or the truncation order, and nothing here
//! reads the dataset's rows: the budget comes from the ledger alone. Which datasets a
//! caller sees is the gateway's policy decision, made before these are called.

use super::answer::{budget_now, period};
use super::{AnalyticsError, Datasets};
use crate::config::dataset::{ColumnConfig, DatasetConfig};
use crate::store::{now_ms, Store};
use serde_json::{json, Value};

impl Datasets {
    /// Every dataset's name, sorted (the order discovery lists them in).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The public description of dataset `name`.
    pub fn describe(&self, name: &str) -> Result<Value, AnalyticsError> {
        Ok(description(&self.get(name)?.config))
    }

    /// What `analyst` has left on dataset `name` in the current period, with the budget of
    /// the `tier` policy granted (`None`: the default), and the dataset's global budget.
    pub async fn budget_left(
        &self,
        store: &Store,
        analyst: &str,
        tier: Option<&str>,
        name: &str,
    ) -> Result<Value, AnalyticsError> {
        let config = self.get(name)?.config.for_tier(tier);
        let period = period(&config, now_ms());
        let mut body = budget_now(store, &config, analyst, &period).await?;
        body["dataset"] = json!(config.name);
        body["budget_tier"] = json!(tier);
        body["analyst_epsilon"] = json!(config.analyst_epsilon);
        body["global_epsilon"] = json!(config.global_epsilon);
        if let (Some(mine), Some(all)) = (config.analyst_delta, config.global_delta) {
            body["analyst_delta"] = json!(mine);
            body["global_delta"] = json!(all);
        }
        Ok(body)
    }
}

fn description(config: &DatasetConfig) -> Value {
    let columns: Vec<Value> = config
        .columns
        .iter()
        .map(|(name, column)| match column {
            ColumnConfig::Integer { lower, upper } => {
                json!({"name": name, "type": "integer", "lower": lower, "upper": upper})
            }
            ColumnConfig::Categorical { categories } => {
                json!({"name": name, "type": "categorical", "categories": categories})
            }
            ColumnConfig::Key {} => json!({"name": name, "type": "key"}),
        })
        .collect();
    let tiers: Vec<Value> = config
        .budget_tiers
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "analyst_epsilon": t.analyst_epsilon,
                "analyst_delta": t.analyst_delta.or(config.analyst_delta),
            })
        })
        .collect();
    json!({
        "name": config.name,
        "privacy_unit": config.privacy_unit,
        "columns": columns,
        "max_rows_per_unit": config.max_rows_per_unit,
        "max_groups_per_unit": config.max_groups_per_unit,
        "max_rows_per_group": config.max_rows_per_group,
        "consent_purpose": config.require_consent_purpose,
        "budget": {
            "analyst_epsilon": config.analyst_epsilon,
            "global_epsilon": config.global_epsilon,
            "analyst_delta": config.analyst_delta,
            "global_delta": config.global_delta,
            "default_query_delta": config.default_query_delta,
            "period_seconds": config.budget_period.as_secs(),
            "cache_window_seconds": config.cache_window.as_secs(),
            "tiers": tiers,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::description;
    use crate::config::dataset::BudgetTier;

    #[test]
    fn a_description_holds_the_declared_public_facts_and_never_the_source() {
        let mut d = crate::analytics::dp::tests::dataset();
        d.source.url = Some("postgres://ro:hunter2@db.internal/bank".into());
        d.source.table = "tx_private_view".into();
        d.analyst_delta = Some(1e-7);
        d.global_delta = Some(1e-6);
        d.budget_tiers = vec![BudgetTier {
            name: "senior".into(),
            analyst_epsilon: 3.0,
            analyst_delta: None,
        }];
        let body = description(&d);
        let text = body.to_string();
        for secret in ["hunter2", "db.internal", "tx_private_view", "\"id\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(body["privacy_unit"], "customer_id");
        assert_eq!(body["max_rows_per_unit"], 3);
        let amount = body["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "amount")
            .unwrap();
        assert_eq!(
            (&amount["lower"], &amount["upper"]),
            (&(-50).into(), &1000.into())
        );
        let region = body["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "region")
            .unwrap();
        assert_eq!(
            region["categories"],
            serde_json::json!(["north", "south", "east"])
        );
        assert_eq!(body["budget"]["period_seconds"], 3600);
        // A tier without its own delta inherits the dataset's.
        assert_eq!(body["budget"]["tiers"][0]["analyst_delta"], 1e-7);
    }
}

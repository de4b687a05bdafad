use super::super::tests::{arbitrary_request, shipped, variant};
use super::super::PolicyEngine;
use proptest::prelude::*;
use std::sync::OnceLock;

/// Policies of our own covering each action-scope form, over an action group added to the
/// shipped schema (the shipped set has none).
const SCOPES: &str = r#"
@id("auditors-any-action")
permit (principal in PrivGate::Role::"auditor", action, resource)
when { context.purpose == "audit" && context.authentication.amr.contains("otp") };

@id("auditors-no-clear-pan")
@reason("pan_withheld")
forbid (principal in PrivGate::Role::"auditor", action == PrivGate::Action::"view_clear", resource == PrivGate::FieldClass::"pan");

@id("auditors-listed")
permit (principal in PrivGate::Role::"auditor", action in [PrivGate::Action::"customers:read", PrivGate::Action::"view_token"], resource);

@id("views-withheld-from-marketing-without-consent")
@reason("views_withheld")
forbid (principal, action in PrivGate::Action::"view_any", resource)
when { context.purpose == "marketing" && !context.consent.present };

@id("bound-auditors-view-and-query")
permit (principal in PrivGate::Role::"auditor", action in [PrivGate::Action::"view_any", PrivGate::Action::"query"], resource)
when { context.certificate_bound };
"#;

const VIEWS: &str = r#"action "view_clear", "view_masked", "view_token" appliesTo"#;
const GROUPED_VIEWS: &str = r#"action "view_any"; action "view_clear", "view_masked", "view_token" in ["view_any"] appliesTo"#;

/// The same policy set twice: sliced as loaded, and with every action asking the whole set.
fn engines() -> &'static (PolicyEngine, PolicyEngine) {
    static ENGINES: OnceLock<(PolicyEngine, PolicyEngine)> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let schema = std::fs::read_to_string(shipped().join("schema.cedarschema")).unwrap();
        assert!(schema.contains(VIEWS));
        let (_keep, dir) = variant("schema.cedarschema", &schema.replace(VIEWS, GROUPED_VIEWS));
        std::fs::write(dir.join("scopes.cedar"), SCOPES).unwrap();
        let sliced = PolicyEngine::load(&dir).unwrap();
        let mut whole = PolicyEngine::load(&dir).unwrap();
        for action in whole.actions.values_mut() {
            action.policies = whole.policies.clone();
        }
        (sliced, whole)
    })
}

fn slice_ids(engine: &PolicyEngine, action: &str) -> Vec<String> {
    let mut ids: Vec<String> = engine.actions[action]
        .policies
        .policies()
        .map(|p| p.id().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn each_scope_form_puts_a_policy_in_the_slices_it_can_match() {
    let (sliced, _) = engines();
    // (action, policies its slice must hold, policies it must not)
    let cases: [(&str, &[&str], &[&str]); 4] = [
        (
            "view_clear",
            &[
                "auditors-any-action",
                "auditors-no-clear-pan",
                "views-withheld-from-marketing-without-consent",
                "bound-auditors-view-and-query",
                "purpose-must-be-registered",
            ],
            &["auditors-listed", "tellers-see-masked"],
        ),
        (
            "view_token",
            &["auditors-listed", "bound-auditors-view-and-query"],
            &["auditors-no-clear-pan", "fraud-masked"],
        ),
        (
            "customers:read",
            &["auditors-listed", "auditors-any-action"],
            &[
                "bound-auditors-view-and-query",
                "views-withheld-from-marketing-without-consent",
            ],
        ),
        (
            "query",
            &["bound-auditors-view-and-query"],
            &[
                "auditors-listed",
                "views-withheld-from-marketing-without-consent",
            ],
        ),
    ];
    for (action, held, left_out) in cases {
        let ids = slice_ids(sliced, action);
        for id in held {
            assert!(ids.iter().any(|i| i == id), "{action} lacks {id}: {ids:?}");
        }
        for id in left_out {
            assert!(!ids.iter().any(|i| i == id), "{action} holds {id}: {ids:?}");
        }
    }
    assert!(slice_ids(sliced, "view_masked").len() < sliced.policy_count());
}

#[test]
fn the_shipped_slices_are_smaller_than_the_set() {
    let engine = PolicyEngine::load(&shipped()).unwrap();
    for (name, action) in &engine.actions {
        let n = action.policies.policies().count();
        assert!(n < engine.policy_count(), "{name}: {n}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Sliced evaluation answers exactly what the whole set answers: decision, reason,
    /// determining policy ids and errors.
    #[test]
    fn sliced_evaluation_equals_the_whole_set(request in arbitrary_request()) {
        let (sliced, whole) = engines();
        prop_assert_eq!(sliced.evaluate(&request), whole.evaluate(&request));
    }
}

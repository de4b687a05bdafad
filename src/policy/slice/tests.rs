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

@id("auditors-party-data-masked-only-when-bound")
@reason("party_data_needs_binding")
forbid (
  principal in PrivGate::Role::"auditor",
  action in [PrivGate::Action::"view_clear", PrivGate::Action::"view_masked"],
  resource
)
when { resource.permission == "ReadParty" && !context.certificate_bound };

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
        // The whole set, every policy asked again for each resource.
        for action in whole.actions.values_mut() {
            action.policies = whole.policies.clone();
            action.by_resource = super::ByResource {
                any_resource: cedar_policy::PolicySet::new(),
                per_resource: whole.policies.clone(),
            };
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
fn policies_are_split_by_whether_they_read_the_resource() {
    let (sliced, _) = engines();
    let ids = |set: &cedar_policy::PolicySet| {
        let mut ids: Vec<String> = set.policies().map(|p| p.id().to_string()).collect();
        ids.sort();
        ids
    };
    let clear = &sliced.actions["view_clear"].by_resource;
    // A resource scope, and a condition reading the resource's attribute.
    assert!(ids(&clear.per_resource).contains(&"auditors-no-clear-pan".to_owned()));
    assert!(
        ids(&clear.per_resource).contains(&"partners-see-consented-fields".to_owned()),
        "{:?}",
        ids(&clear.per_resource)
    );
    let masked = &sliced.actions["view_masked"].by_resource;
    assert!(ids(&masked.per_resource)
        .contains(&"auditors-party-data-masked-only-when-bound".to_owned()));
    // Conditions on the principal and context only.
    for id in [
        "purpose-must-be-registered",
        "auditors-any-action",
        "tellers-see-masked",
    ] {
        let any = ids(&masked.any_resource);
        assert!(any.contains(&id.to_owned()), "{id} not in {any:?}");
    }
    // Each policy of a slice is in exactly one part.
    for action in sliced.actions.values() {
        let mut parts = ids(&action.by_resource.any_resource);
        parts.extend(ids(&action.by_resource.per_resource));
        parts.sort();
        assert_eq!(parts, ids(&action.policies));
    }
}

#[test]
fn the_shipped_slices_are_smaller_than_the_set() {
    let engine = PolicyEngine::load(&shipped()).unwrap();
    for (name, action) in &engine.actions {
        let n = action.policies.policies().count();
        assert!(n < engine.policy_count(), "{name}: {n}");
    }
}

/// Per-class forbids and permits, and class-blind ones, meeting in one request: each
/// class's view is what the whole set gives, and what the policies say.
#[test]
fn class_blind_and_per_class_policies_combine_as_one_set() {
    use crate::decision::FieldView;
    use crate::policy::{Caller, CallerKind, Credential, DecisionRequest};
    let (sliced, whole) = engines();
    let request = DecisionRequest {
        caller: Caller {
            kind: CallerKind::User,
            credential: Credential::Token,
            id: "alice".into(),
            roles: vec!["auditor".into()],
            organisation: None,
            purposes: vec!["audit".into()],
        }
        .into(),
        action: "customers:read".into(),
        customer: "c-1".into(),
        purpose: "audit".into(),
        amr: ["otp".into()].into(),
        auth_age_seconds: 0,
        certificate_bound: false,
        amount: None,
        consent: None,
        field_classes: ["name".into(), "pan".into(), "iban".into()].into(),
        aggregate: None,
        risk: None,
    };
    let decision = sliced.evaluate(&request).unwrap();
    assert_eq!(Ok(&decision), whole.evaluate(&request).as_ref());
    let view = |class: &str| {
        (
            decision.views[class],
            decision.view_policy_ids[class].join(","),
        )
    };
    // A class-blind permit overridden by a per-class forbid on two view actions.
    assert_eq!(
        view("name"),
        (
            FieldView::Token,
            "auditors-any-action,auditors-listed".into()
        )
    );
    // ... by a per-class forbid on the clear view only.
    assert_eq!(
        view("pan"),
        (FieldView::Masked, "auditors-any-action".into())
    );
    // No forbid for this class: the class-blind permit alone.
    assert_eq!(
        view("iban"),
        (FieldView::Clear, "auditors-any-action".into())
    );
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

use super::super::tests::{arbitrary_request, shipped};
use super::super::{
    AggregateFacts, Caller, CallerKind, ConsentGrant, Credential, DecisionRequest, MemoStats,
    PolicyEngine,
};
use crate::decision::{FieldClasses, FieldView};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

fn classes() -> FieldClasses {
    ["name", "email", "iban", "pan"].map(String::from).into()
}

/// A fraud analyst with fresh multi-factor authentication reading a customer.
fn analyst() -> DecisionRequest {
    DecisionRequest {
        caller: Caller {
            kind: CallerKind::User,
            credential: Credential::Token,
            id: "alice".into(),
            roles: vec!["fraud_analyst".into()],
            organisation: Some("bank".into()),
            purposes: vec!["fraud_investigation".into()],
        }
        .into(),
        action: "customers:read".into(),
        customer: "c-1".into(),
        purpose: "fraud_investigation".into(),
        amr: ["pwd".into(), "otp".into()].into(),
        auth_age_seconds: 60,
        certificate_bound: false,
        amount: None,
        consent: None,
        field_classes: classes(),
        aggregate: None,
        risk: None,
    }
}

/// A partner acting on the subject's consent with `permissions`.
fn partner(permissions: &[&str]) -> DecisionRequest {
    DecisionRequest {
        caller: Caller {
            kind: CallerKind::Service,
            credential: Credential::ClientCertificate,
            id: "fintech-app".into(),
            roles: vec!["partner".into()],
            organisation: Some("fintech".into()),
            purposes: vec!["account_information".into()],
        }
        .into(),
        purpose: "account_information".into(),
        consent: Some(ConsentGrant {
            id: "consent-1".into(),
            permissions: permissions.iter().map(|s| (*s).to_owned()).collect(),
        }),
        ..analyst()
    }
}

/// The request's caller, to change one of its facts (the request shares it).
fn caller(request: &mut DecisionRequest) -> &mut Caller {
    Arc::make_mut(&mut request.caller)
}

#[test]
fn requests_differing_in_one_fact_never_share_an_entry() {
    type Change = fn(&mut DecisionRequest);
    // Each changes one thing a policy can read (the subject: see the next test).
    let changes: &[(&str, Change)] = &[
        ("kind", |r| caller(r).kind = CallerKind::Service),
        ("credential", |r| caller(r).credential = Credential::ApiKey),
        ("caller id", |r| caller(r).id = "bob".into()),
        ("role", |r| caller(r).roles = vec!["teller".into()]),
        ("no role", |r| caller(r).roles.clear()),
        ("organisation", |r| {
            caller(r).organisation = Some("fintech".into())
        }),
        ("no organisation", |r| caller(r).organisation = None),
        ("registered purposes", |r| {
            caller(r).purposes.push("marketing".into())
        }),
        ("action", |r| r.action = "accounts:read".into()),
        ("purpose", |r| r.purpose = "marketing".into()),
        ("amr", |r| r.amr = ["pwd".into()].into()),
        ("authentication age", |r| r.auth_age_seconds = 301),
        ("certificate binding", |r| r.certificate_bound = true),
        ("amount", |r| r.amount = Some(100_001)),
        ("consent present", |r| {
            r.consent = Some(ConsentGrant {
                id: "c".into(),
                permissions: Vec::new(),
            })
        }),
        ("field classes", |r| {
            r.field_classes = r.field_classes[..1].into()
        }),
        ("risk indicators", |r| {
            let mut facts = crate::policy::RiskFacts::default();
            facts.principal.insert(
                "last_1h".into(),
                crate::policy::RiskWindowFacts {
                    distinct_subjects: 201,
                    ..Default::default()
                },
            );
            r.risk = Some(facts);
        }),
        ("aggregate", |r| {
            r.aggregate = Some(AggregateFacts {
                min_organisations: 3,
                organisations: 3,
                contributors: 3,
                release_mode: "exact".into(),
            })
        }),
    ];
    for (fact, change) in changes {
        let engine = PolicyEngine::load(&shipped()).unwrap();
        let base = analyst();
        let mut changed = analyst();
        change(&mut changed);
        assert_ne!(base, changed, "{fact}");
        assert!(engine.decide(&base).is_ok());
        let second = engine.decide(&changed);
        assert_eq!(second, engine.evaluate(&changed), "{fact}");
        assert_eq!(
            engine.memo_stats(),
            MemoStats { hits: 0, misses: 2 },
            "{fact} shared an entry"
        );
    }
}

#[test]
fn the_subject_is_left_out_only_where_no_policy_can_tell_subjects_apart() {
    let engine = PolicyEngine::load(&shipped()).unwrap();
    // No shipped policy names a Customer; two name a Gateway (`Gateway::"tokens"`).
    for action in ["customers:read", "accounts:read", "payments:create"] {
        assert!(engine.memo.subject_blind.contains(action), "{action}");
    }
    for action in ["token:revoke", "keys:retire", "view_clear", "query"] {
        let blind = engine.memo.subject_blind.contains(action);
        assert_eq!(blind, action == "query", "{action}");
    }
    let other = DecisionRequest {
        customer: "c-2".into(),
        ..analyst()
    };
    assert_eq!(engine.decide(&analyst()), engine.decide(&other));
    assert_eq!(engine.memo_stats(), MemoStats { hits: 1, misses: 1 });

    // A policy naming one subject: every subject is its own entry again.
    let (_keep, dir) = super::super::tests::variant(
        "vip.cedar",
        "@id(\"vip-withheld\")\n@reason(\"vip\")\nforbid (principal, action, resource == PrivGate::Customer::\"c-vip\");\n",
    );
    let engine = PolicyEngine::load(&dir).unwrap();
    assert!(!engine.memo.subject_blind.contains("customers:read"));
    let vip = DecisionRequest {
        customer: "c-vip".into(),
        ..analyst()
    };
    assert!(engine.decide(&analyst()).unwrap().allowed());
    assert_eq!(engine.decide(&vip).unwrap().refusal.unwrap().reason, "vip");
    assert_eq!(engine.memo_stats(), MemoStats { hits: 0, misses: 2 });
}

#[test]
fn consent_permissions_and_presence_are_in_the_key_and_its_id_is_not() {
    let engine = PolicyEngine::load(&shipped()).unwrap();
    let party = engine.decide(&partner(&["ReadParty"])).unwrap();
    assert_eq!(party.views["name"], FieldView::Clear);
    assert_eq!(party.views["pan"], FieldView::Removed);

    let with_pan = engine.decide(&partner(&["ReadParty", "ReadPAN"])).unwrap();
    assert_eq!(with_pan.views["pan"], FieldView::Clear);

    let withdrawn = DecisionRequest {
        consent: None,
        ..partner(&[])
    };
    let withdrawn = engine.decide(&withdrawn).unwrap();
    assert_eq!(withdrawn.refusal.unwrap().reason, "consent_required");
    assert_eq!(engine.memo_stats(), MemoStats { hits: 0, misses: 3 });

    // Another consent with the same permissions: the policies cannot tell them apart.
    let mut renewed = partner(&["ReadParty"]);
    renewed.consent.as_mut().unwrap().id = "consent-2".into();
    assert_eq!(engine.decide(&renewed).unwrap(), party);
    assert_eq!(engine.memo_stats(), MemoStats { hits: 1, misses: 3 });
}

#[test]
fn errors_are_not_kept() {
    let engine = PolicyEngine::load(&shipped()).unwrap();
    let mut unknown = analyst();
    unknown.field_classes = [&unknown.field_classes[..], &["shoe_size".into()]]
        .concat()
        .into();
    for _ in 0..2 {
        assert!(engine.decide(&unknown).is_err());
    }
    assert_eq!(engine.memo_stats(), MemoStats { hits: 0, misses: 2 });
}

#[test]
fn a_reloaded_policy_set_starts_with_no_decisions() {
    let engine = PolicyEngine::load(&shipped()).unwrap();
    assert!(engine.decide(&analyst()).unwrap().allowed());
    assert!(engine.decide(&analyst()).unwrap().allowed());
    assert_eq!(engine.memo_stats(), MemoStats { hits: 1, misses: 1 });
    let (_keep, dir) = super::super::tests::variant(
        "suspend.cedar",
        "@id(\"suspend-analysts\")\n@reason(\"suspended\")\nforbid (principal in PrivGate::Role::\"fraud_analyst\", action, resource);\n",
    );
    let reloaded = PolicyEngine::load(&dir).unwrap();
    let refused = reloaded.decide(&analyst()).unwrap();
    assert_eq!(refused.refusal.unwrap().reason, "suspended");
    assert_eq!(reloaded.memo_stats(), MemoStats { hits: 0, misses: 1 });
}

fn engine() -> &'static PolicyEngine {
    static ENGINE: OnceLock<PolicyEngine> = OnceLock::new();
    ENGINE.get_or_init(|| PolicyEngine::load(&shipped()).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the cache holds (it is shared across cases), a memoized decision is the one
    /// Cedar makes now; asked twice, the second comes from the cache.
    #[test]
    fn memoized_decisions_equal_fresh_ones(requests in proptest::collection::vec(arbitrary_request(), 1..8)) {
        let engine = engine();
        for request in &requests {
            let fresh = engine.evaluate(request);
            prop_assert_eq!(&engine.decide(request), &fresh);
            prop_assert_eq!(&engine.decide(request), &fresh);
        }
    }
}

/// Indicators on the same side of every number the policies compare them with share an
/// entry; crossing one does not.
#[test]
fn risk_indicators_are_keyed_by_the_class_the_policies_can_tell_apart() {
    let engine = PolicyEngine::load(&shipped()).unwrap();
    assert!(engine.reads_risk());
    assert!(matches!(
        engine.memo.risk_classes,
        super::super::risk_classes::RiskClasses::Literals(_)
    ));
    let reading = |distinct_subjects: i64, requests: i64| {
        let mut facts = crate::policy::RiskFacts::default();
        facts.principal.insert(
            "last_1h".into(),
            crate::policy::RiskWindowFacts {
                distinct_subjects,
                requests,
                ..Default::default()
            },
        );
        DecisionRequest {
            amr: ["pwd".into()].into(),
            risk: Some(facts),
            ..analyst()
        }
    };
    // (distinct subjects, requests): a count no policy reads (requests) and counts below
    // 200 share; 200 and 201 are decided apart.
    let cases = [
        (5, 5),
        (6, 9),
        (199, 300),
        (200, 301),
        (201, 302),
        (5000, 9000),
    ];
    for (subjects, requests) in cases {
        let request = reading(subjects, requests);
        assert_eq!(engine.decide(&request), engine.evaluate(&request));
    }
    assert_eq!(engine.memo_stats(), MemoStats { hits: 3, misses: 3 });
    assert_eq!(
        engine
            .decide(&reading(5000, 1))
            .unwrap()
            .refusal
            .unwrap()
            .reason,
        "step_up_required"
    );
    assert!(engine.decide(&reading(200, 1)).unwrap().allowed());
}

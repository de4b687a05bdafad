use super::*;
use std::path::PathBuf;

pub(super) fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

#[test]
fn the_shipped_policy_set_passes_its_cases() {
    let engine = PolicyEngine::load(&shipped()).unwrap();
    let cases = read_cases(&shipped().join("tests")).unwrap();
    assert!(cases.len() >= 10);
    for (file, case) in &cases {
        let outcome = run_case(&engine, file, case);
        assert!(
            outcome.failures.is_empty(),
            "{}: {:?}",
            outcome.name,
            outcome.failures
        );
    }
    assert_eq!(engine.hash().len(), 64);
    assert_eq!(
        engine.route_actions(),
        [
            "accounts:read",
            "aggregate:contribute",
            "aggregate:create",
            "aggregate:read",
            "aggregate:release",
            "budget:read",
            "cards:authorize",
            "consent:grant",
            "consent:read",
            "consent:revoke",
            "console:approve",
            "console:view",
            "console:who_saw",
            "customers:create",
            "customers:read",
            "dataset:describe",
            "keys:restore",
            "keys:retire",
            "keys:shred",
            "payments:create",
            "query",
            "risk:clear",
            "token:revoke",
            "use_budget_tier"
        ]
    );
}

/// A copy of the shipped set with `file` replaced by `text`.
pub(super) fn variant(file: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(shipped()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.path().join(file), text).unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

#[test]
fn invalid_policy_sets_are_refused_with_file_and_line() {
    let ok = "@id(\"ok\")\npermit (principal, action, resource);\n";
    // (file, content, expected fragment of `file: message`)
    let cases = [
        ("extra.cedar", "permit (principal, action, resource);\n", "extra.cedar: line 1: every policy needs an @id"),
        (
            "extra.cedar",
            "// comment\n@id(\"x\")\nforbid (principal, action, resource);\n",
            "extra.cedar: line 2: forbid policy `x` needs a @reason",
        ),
        ("extra.cedar", "@id(\"x\")\npermit (principal, action, resource)\n", "extra.cedar: line"),
        (
            "extra.cedar",
            "@id(\"x\")\npermit (principal, action, resource)\nwhen { context.no_such_attribute };\n",
            "extra.cedar: line 3: policy `x`",
        ),
        ("extra.cedar", "@id(\"tellers-see-masked\")\npermit (principal, action, resource);\n", "is also used in"),
        ("schema.cedarschema", "namespace PrivGate { entity }", "schema.cedarschema: "),
        ("fields.toml", "[class.pan]\npermision = \"ReadPAN\"\n", "fields.toml: invalid TOML"),
    ];
    for (file, text, expected) in cases {
        let (_keep, dir) = variant(file, text);
        let err = PolicyEngine::load(&dir).expect_err(expected);
        let all = err.to_string();
        assert!(all.contains(expected), "expected `{expected}` in:\n{all}");
    }
    let (_keep, dir) = variant("extra.cedar", ok);
    assert!(PolicyEngine::load(&dir).is_ok());
}

#[test]
fn the_hash_follows_every_file() {
    let base = PolicyEngine::load(&shipped()).unwrap().hash().to_owned();
    let (_keep, dir) = variant(
        "extra.cedar",
        "@id(\"ok\")\npermit (principal, action, resource);\n",
    );
    assert_ne!(PolicyEngine::load(&dir).unwrap().hash(), base);
    let fields = std::fs::read_to_string(shipped().join("fields.toml")).unwrap()
        + "\n[class.tax_id]\npermission = \"ReadParty\"\n";
    let (_keep, dir) = variant("fields.toml", &fields);
    assert_ne!(PolicyEngine::load(&dir).unwrap().hash(), base);
}

#[test]
fn unknown_actions_and_field_classes_are_errors_not_refusals() {
    let engine = PolicyEngine::load(&shipped()).unwrap();
    let mut req = read_cases(&shipped().join("tests"))
        .unwrap()
        .remove(0)
        .1
        .request;
    req.action = "customers:delete".into();
    assert_eq!(
        engine.decide(&req),
        Err(PolicyError::UnknownAction("customers:delete".into()))
    );
    req.action = "customers:read".into();
    req.field_classes = ["shoe_size".into()].into();
    assert_eq!(
        engine.decide(&req),
        Err(PolicyError::UnknownFieldClass("shoe_size".into()))
    );
}

#[test]
fn each_credential_is_its_own_principal_namespace_in_cedar() {
    // A policy naming one registered mTLS client by its uid.
    let (_keep, dir) = variant(
        "extra.cedar",
        "@id(\"the-pinned-client-reads\")\npermit (principal == PrivGate::Service::\"client:fintech-app\", action == PrivGate::Action::\"customers:read\", resource);\n",
    );
    let engine = PolicyEngine::load(&dir).unwrap();
    let mut req = read_cases(&shipped().join("tests"))
        .unwrap()
        .remove(0)
        .1
        .request;
    req.action = "customers:read".into();
    req.field_classes = Default::default();
    std::sync::Arc::make_mut(&mut req.caller).roles = Vec::new();
    std::sync::Arc::make_mut(&mut req.caller).organisation = None;
    std::sync::Arc::make_mut(&mut req.caller).id = "fintech-app".into();
    req.purpose = req.caller.purposes.first().cloned().unwrap_or_default();
    let cases = [
        (CallerKind::Service, Credential::ClientCertificate, true),
        (CallerKind::Service, Credential::ApiKey, false),
        // A client-credentials token whose sub (= client_id) is the client's id.
        (CallerKind::Service, Credential::Token, false),
        (CallerKind::User, Credential::Token, false),
    ];
    for (kind, credential, allowed) in cases {
        std::sync::Arc::make_mut(&mut req.caller).kind = kind;
        std::sync::Arc::make_mut(&mut req.caller).credential = credential;
        let decision = engine.decide(&req).unwrap();
        assert_eq!(
            decision.refusal.is_none(),
            allowed,
            "{kind:?} {credential:?}: {:?}",
            decision.policy_ids
        );
    }
    // An id that spells another namespace's prefix is still in its own.
    std::sync::Arc::make_mut(&mut req.caller).kind = CallerKind::Service;
    std::sync::Arc::make_mut(&mut req.caller).credential = Credential::ApiKey;
    std::sync::Arc::make_mut(&mut req.caller).id = "client:fintech-app".into();
    assert!(engine.decide(&req).unwrap().refusal.is_some());
}

#[test]
fn principals_and_grantees_name_the_credential() {
    let caller = |kind, credential, org: Option<&str>| Caller {
        kind,
        credential,
        id: "fintech".into(),
        roles: vec![],
        organisation: org.map(Into::into),
        purposes: vec![],
    };
    let cases = [
        (CallerKind::User, Credential::Token, "User:fintech"),
        (
            CallerKind::Service,
            Credential::Token,
            "Service:oauth:fintech",
        ),
        (
            CallerKind::Service,
            Credential::ClientCertificate,
            "Service:client:fintech",
        ),
        (
            CallerKind::Service,
            Credential::ApiKey,
            "Service:apikey:fintech",
        ),
    ];
    for (kind, credential, principal) in cases {
        let without = caller(kind, credential, None);
        assert_eq!(without.principal(), principal);
        // Without an organisation the grantee is the principal, never the bare id, which
        // would match the organisation of that name.
        assert_eq!(without.grantee(), principal);
        assert_eq!(
            caller(kind, credential, Some("fintech")).grantee(),
            "fintech"
        );
    }
}

/// Requests over the shipped policies' vocabulary, plus names no policy knows (a role, a
/// purpose, a field class), for property tests of exact evaluation.
pub(super) fn arbitrary_request() -> impl proptest::strategy::Strategy<Value = DecisionRequest> {
    use proptest::prelude::*;
    use proptest::sample::{select, subsequence};
    let words = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let roles = words(&[
        "teller",
        "fraud_analyst",
        "marketing",
        "partner",
        "payments",
        "key_custodian",
        "consent_admin",
        "security_officer",
        "analyst",
        "release_officer",
        "auditor",
    ]);
    let purposes = words(&[
        "customer_service",
        "marketing",
        "account_information",
        "payments",
        "key_management",
        "analytics",
        "aggregate_reporting",
        "audit",
    ]);
    let actions = words(&[
        "customers:read",
        "accounts:read",
        "customers:create",
        "payments:create",
        "cards:authorize",
        "keys:shred",
        "keys:retire",
        "token:revoke",
        "consent:read",
        "query",
        "aggregate:create",
        "aggregate:release",
        "use_budget_tier",
        "dataset:describe",
        "budget:read",
    ]);
    let classes = words(&[
        "name",
        "email",
        "dob",
        "national_id",
        "iban",
        "pan",
        "amount",
    ]);
    let permissions = words(&[
        "ReadParty",
        "ReadAccountsDetail",
        "ReadPAN",
        "ReadTransactionsDetail",
    ]);
    let caller = (
        select(vec![CallerKind::User, CallerKind::Service]),
        select(vec![
            Credential::Token,
            Credential::ClientCertificate,
            Credential::ApiKey,
        ]),
        select(words(&["alice", "fintech-app"])),
        subsequence(roles, 1..=2),
        proptest::option::of(select(words(&["fintech", "bank"]))),
        subsequence(purposes.clone(), 0..=2),
    )
        .prop_map(
            |(kind, credential, id, roles, organisation, purposes)| Caller {
                kind,
                credential,
                id,
                roles,
                organisation,
                purposes,
            },
        );
    let authentication = (
        subsequence(words(&["pwd", "otp"]), 0..=2),
        select(vec![0_i64, 299, 300, 301, 899, 900, 901, 5000]),
        any::<bool>(),
    );
    let consent = proptest::option::of(subsequence(permissions, 0..=3).prop_map(|permissions| {
        ConsentGrant {
            id: "consent-1".into(),
            permissions,
        }
    }));
    let aggregate = proptest::option::of(
        (0_i64..5, 0_i64..5, select(words(&["exact", "dp"]))).prop_map(
            |(min_organisations, organisations, release_mode)| AggregateFacts {
                min_organisations,
                organisations,
                contributors: organisations * 2,
                release_mode,
            },
        ),
    );
    (
        caller,
        select(actions),
        select(words(&["c-1", "c-2", "tokens", "keyring"])),
        select(purposes),
        authentication,
        select(vec![None, Some(100_i64), Some(100_000), Some(100_001)]),
        consent,
        // Now and then a class fields.toml lacks (an error, never kept).
        (subsequence(classes, 0..=7), prop::bool::weighted(0.1)).prop_map(
            |(mut classes, unknown)| {
                if unknown {
                    classes.push("shoe_size".into());
                }
                classes
            },
        ),
        // Mostly none: aggregate facts only type-check for the aggregate actions.
        prop_oneof![4 => Just(None), 1 => aggregate],
        // Mostly a purpose the caller is registered for, so that policies past the
        // purpose check decide.
        prop::bool::weighted(0.8),
        // Risk indicators around the shipped risk policies' thresholds.
        prop_oneof![2 => Just(None), 1 => arbitrary_risk().prop_map(Some)],
    )
        .prop_map(
            |(
                caller,
                action,
                customer,
                purpose,
                (amr, auth_age_seconds, certificate_bound),
                amount,
                consent,
                field_classes,
                aggregate,
                registered,
                risk,
            )| DecisionRequest {
                purpose: match caller.purposes.first() {
                    Some(first) if registered => first.clone(),
                    _ => purpose,
                },
                caller: caller.into(),
                action,
                customer,
                amr: amr.into(),
                auth_age_seconds,
                certificate_bound,
                amount,
                consent,
                field_classes: field_classes.into(),
                aggregate,
                risk,
            },
        )
}

/// Indicators on both sides of the shipped risk policies' thresholds, for some windows.
fn arbitrary_risk() -> impl proptest::strategy::Strategy<Value = RiskFacts> {
    use proptest::prelude::*;
    use proptest::sample::select;
    let window = (
        select(vec![0_i64, 20, 21, 200, 201, 5000]),
        select(vec![0_i64, 20, 21, 50]),
    )
        .prop_map(|(distinct_subjects, refusals)| RiskWindowFacts {
            requests: distinct_subjects + refusals,
            distinct_subjects,
            refusals,
            clear_reveals: distinct_subjects / 2,
            ..RiskWindowFacts::default()
        });
    let windows = proptest::collection::btree_map(
        select(vec![
            "last_5m".to_owned(),
            "last_1h".to_owned(),
            "last_24h".to_owned(),
        ]),
        window,
        0..=3,
    );
    (windows.clone(), proptest::option::of(windows)).prop_map(|(principal, organisation)| {
        RiskFacts {
            principal,
            organisation,
        }
    })
}

//! The approval state machine on SQLite with a real keyring; the store's conditional
//! statements are also run against both engines in `tests/it/store.rs`.

use super::operation::OperationStatus;
use super::*;
use crate::config::subject::SubjectIds;
use crate::config::{Argon2Config, RouteConfig};
use crate::keys::kek::KekMaterial;
use crate::keys::{aead, maintenance, KeyError, KeyKind, Keyring, KeyringSettings};
use zeroize::Zeroizing;

async fn setup() -> (tempfile::TempDir, Store, Keyring) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/a.db", dir.path().display()))
        .await
        .unwrap();
    let material = KekMaterial::Raw(Zeroizing::new([9u8; aead::KEY_LEN]));
    maintenance::init(&store, &material, Argon2Config::default())
        .await
        .unwrap();
    let ring = Keyring::open(store.clone(), &material, KeyringSettings::default())
        .await
        .unwrap();
    (dir, store, ring)
}

/// An executor with the keyring open, no `[keys]` and any subject spelling.
fn executor<'a>(store: &'a Store, ring: &'a Keyring) -> Executor<'a> {
    Executor {
        store,
        keyring: Some(ring),
        keys: None,
        subject_ids: SubjectIds::default(),
    }
}

fn rules(approvals_required: u32, ttl: Duration) -> ApprovalRules {
    ApprovalRules {
        approvals_required,
        consent_revocation_approvals: 1,
        ttl,
    }
}

fn shred() -> Operation {
    Operation::KeysShred {
        subject: "cust-42".into(),
    }
}

#[tokio::test]
async fn two_distinct_approvers_execute_a_shred_once() {
    let (_dir, store, ring) = setup().await;
    ring.subject_key("cust-42", KeyKind::Aead).await.unwrap();
    let exec = executor(&store, &ring);
    let two = rules(2, Duration::from_secs(60));
    let view = request(&exec, two, shred(), "User:kim").await.unwrap();
    assert_eq!(view.status, OperationStatus::Pending);
    assert_eq!(view.approvers, ["User:kim"]);
    // The requester approving again does not count, and nothing runs.
    assert!(matches!(
        approve(&exec, &view.id, "User:kim").await,
        Err(AdminError::AlreadyApproved)
    ));
    assert!(ring.subject_key("cust-42", KeyKind::Aead).await.is_ok());
    let done = approve(&exec, &view.id, "User:lee").await.unwrap();
    assert_eq!(done.status, OperationStatus::Executed, "{done:?}");
    assert_eq!(done.executed_by.as_deref(), Some("User:lee"));
    assert!(matches!(
        ring.subject_key("cust-42", KeyKind::Aead).await,
        Err(KeyError::Shredded)
    ));
    // A third approval finds it executed.
    assert!(matches!(
        approve(&exec, &view.id, "User:max").await,
        Err(AdminError::NotPending)
    ));
    assert!(matches!(
        approve(&exec, "no-such-id", "User:max").await,
        Err(AdminError::NotFound)
    ));
}

#[tokio::test]
async fn one_approver_executes_on_request_and_failures_are_recorded() {
    let (_dir, store, _ring) = setup().await;
    // No keyring and no [keys]: the shred is claimed, fails, and is not retried.
    let exec = Executor {
        store: &store,
        keyring: None,
        keys: None,
        subject_ids: SubjectIds::default(),
    };
    let view = request(
        &exec,
        rules(1, Duration::from_secs(60)),
        shred(),
        "User:kim",
    )
    .await
    .unwrap();
    assert_eq!(view.status, OperationStatus::Failed, "{view:?}");
    assert!(view.outcome.unwrap().starts_with("failed: "));
    // Token revocation needs one approval whatever the rules say.
    let revoke = Operation::TokenRevoke {
        jti: Some("t-1".into()),
        sub: None,
    };
    let view = request(&exec, rules(3, Duration::from_secs(60)), revoke, "User:sam")
        .await
        .unwrap();
    assert_eq!(view.status, OperationStatus::Executed);
    assert!(store.token_revoked(Some("t-1"), "x", None).await.unwrap());
}

#[tokio::test]
async fn a_shred_names_its_subject_as_the_routes_spell_subject_ids() {
    let (_dir, store, ring) = setup().await;
    let route = |name: &str, subject: &str| -> RouteConfig {
        toml::from_str(&format!(
            r#"name = "{name}"
               path_prefix = "/{name}"
               upstream = "core"
               body = "buffered"
               action = "{name}:read"
               subject = {subject}"#
        ))
        .unwrap()
    };
    let routes = [
        route("customers", r#"{ from = "path", id = "integer" }"#),
        route("people", r#"{ from = "path", id = "uuid" }"#),
    ];
    let exec = Executor {
        store: &store,
        keyring: Some(&ring),
        keys: None,
        subject_ids: SubjectIds::of(&routes),
    };
    let uuid = "0b6f3c8e-3a1d-4c2b-9f4e-2d1c0a9b8e7f";
    // (subject, spelled as a route spells it)
    let cases = [
        ("42", true),
        (uuid, true),
        ("042", false),
        ("+42", false),
        (" 42", false),
        ("42 ", false),
        ("42.0", false),
        ("0x2a", false),
        ("\u{ff14}\u{ff12}", false),
        ("%34%32", false),
        ("0B6F3C8E-3A1D-4C2B-9F4E-2D1C0A9B8E7F", false),
        ("{0b6f3c8e-3a1d-4c2b-9f4e-2d1c0a9b8e7f}", false),
        ("c-100", false),
    ];
    for (subject, accepted) in cases {
        let op = Operation::KeysShred {
            subject: subject.into(),
        };
        let got = request(&exec, rules(1, Duration::from_secs(60)), op, "User:kim").await;
        match accepted {
            true => assert_eq!(got.unwrap().status, OperationStatus::Executed, "{subject}"),
            // Refused before anything is recorded or shredded.
            false => assert!(matches!(got, Err(AdminError::Invalid(_))), "{subject}"),
        }
        assert_eq!(
            ring.is_shredded(subject).await.unwrap(),
            accepted,
            "{subject}"
        );
    }
    assert_eq!(store.operations().await.unwrap().len(), 2);
}

#[tokio::test]
async fn expired_requests_are_neither_approved_nor_executed() {
    let (_dir, store, ring) = setup().await;
    let exec = executor(&store, &ring);
    let view = request(
        &exec,
        rules(2, Duration::from_millis(1)),
        shred(),
        "User:kim",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(matches!(
        approve(&exec, &view.id, "User:lee").await,
        Err(AdminError::Expired)
    ));
    assert_eq!(
        load(&store, &view.id).await.unwrap().status,
        OperationStatus::Expired
    );
}

#[test]
fn operations_are_validated_and_direct_commands_refused_above_one() {
    // (operation JSON, valid)
    let cases = [
        (r#"{"kind":"keys:shred","subject":"cust-42"}"#, true),
        (r#"{"kind":"keys:shred","subject":""}"#, false),
        (
            r#"{"kind":"keys:retire","name":"pan","min_version":3}"#,
            true,
        ),
        (r#"{"kind":"keys:restore","backup":"/b.json"}"#, true),
        (r#"{"kind":"token:revoke","jti":"a"}"#, true),
        (r#"{"kind":"token:revoke","jti":"a","sub":"b"}"#, false),
        (r#"{"kind":"token:revoke"}"#, false),
        (r#"{"kind":"risk:clear","principal":"User:alice"}"#, true),
        (r#"{"kind":"risk:clear","principal":""}"#, false),
        (
            r#"{"kind":"consent:revoke","consent":"c-1","subject":"cust-42"}"#,
            true,
        ),
        (
            r#"{"kind":"consent:revoke","consent":"","subject":"cust-42"}"#,
            false,
        ),
        (
            r#"{"kind":"consent:revoke","consent":"c-1","subject":""}"#,
            false,
        ),
    ];
    for (json, valid) in cases {
        let op: Operation = serde_json::from_str(json).unwrap();
        assert_eq!(op.validate().is_ok(), valid, "{json}");
    }
    for json in [
        r#"{"kind":"keys:format","subject":"x"}"#,
        r#"{"kind":"keys:shred","subject":"x","extra":1}"#,
    ] {
        assert!(serde_json::from_str::<Operation>(json).is_err(), "{json}");
    }
    let second = Duration::from_secs(1);
    assert!(refuse_direct(&shred(), rules(1, second)).is_ok());
    assert!(matches!(
        refuse_direct(&shred(), rules(2, second)),
        Err(AdminError::ApprovalsRequired(2))
    ));
    // Each kind by its own setting: a consent revocation by consent_revocation_approvals,
    // a token revocation always by one.
    let revoke = Operation::ConsentRevoke {
        consent: "c-1".into(),
        subject: "cust-42".into(),
    };
    assert!(refuse_direct(&revoke, rules(2, second)).is_ok());
    let four_eyes = ApprovalRules {
        consent_revocation_approvals: 2,
        ..rules(1, second)
    };
    assert!(matches!(
        refuse_direct(&revoke, four_eyes),
        Err(AdminError::ApprovalsRequired(2))
    ));
    assert!(refuse_direct(&shred(), four_eyes).is_ok());
    let token = Operation::TokenRevoke {
        jti: Some("j".into()),
        sub: None,
    };
    assert!(refuse_direct(&token, rules(5, second)).is_ok());
}

#[tokio::test]
async fn a_denied_operation_is_never_approved_or_executed() {
    let (_dir, store, ring) = setup().await;
    ring.subject_key("cust-42", KeyKind::Aead).await.unwrap();
    let exec = executor(&store, &ring);
    let two = rules(2, Duration::from_secs(60));
    let view = request(&exec, two, shred(), "User:kim").await.unwrap();
    let denied = deny(&store, &view.id, "User:lee").await.unwrap();
    assert_eq!(denied.status, OperationStatus::Denied);
    assert_eq!(denied.executed_by.as_deref(), Some("User:lee"));
    assert!(matches!(
        approve(&exec, &view.id, "User:max").await,
        Err(AdminError::NotPending)
    ));
    assert!(matches!(
        deny(&store, &view.id, "User:max").await,
        Err(AdminError::NotPending)
    ));
    assert!(
        ring.subject_key("cust-42", KeyKind::Aead).await.is_ok(),
        "not shredded"
    );
}

async fn consent_of(store: &Store, subject: &str) -> String {
    let new = crate::consent::NewConsent {
        subject: subject.into(),
        grantee: "partner".into(),
        purposes: vec!["fraud_detection".into()],
        permissions: vec!["read".into()],
        expires_at: None,
    };
    store.grant_consent(&new, now_ms()).await.unwrap().id
}

fn consent_status(record: Option<crate::consent::ConsentRecord>) -> crate::consent::ConsentStatus {
    record.unwrap().status(now_ms())
}

#[tokio::test]
async fn a_consent_revocation_waits_for_its_approvers_and_then_holds() {
    use crate::consent::ConsentStatus::{Authorised, Revoked};
    let (_dir, store, ring) = setup().await;
    let exec = executor(&store, &ring);
    let id = consent_of(&store, "cust-42").await;
    let four_eyes = ApprovalRules {
        consent_revocation_approvals: 2,
        ..rules(1, Duration::from_secs(60))
    };
    let op = consents::revocation(&store, &id).await.unwrap();
    assert_eq!(op.subject(), Some("cust-42"), "the record's own subject");
    assert_eq!(op.purpose(), CONSENT_PURPOSE);
    let view = request(&exec, four_eyes, op, "User:cora").await.unwrap();
    assert_eq!(view.status, OperationStatus::Pending);
    assert_eq!(
        consent_status(store.consent(&id).await.unwrap()),
        Authorised
    );
    let done = approve(&exec, &view.id, "User:carl").await.unwrap();
    assert_eq!(done.status, OperationStatus::Executed, "{done:?}");
    assert_eq!(done.outcome.as_deref(), Some("done: consent revoked"));
    assert_eq!(consent_status(store.consent(&id).await.unwrap()), Revoked);
    // With one approver it runs at once; a second revocation changes nothing.
    let op = consents::revocation(&store, &id).await.unwrap();
    let again = request(&exec, rules(1, Duration::from_secs(60)), op, "User:cora")
        .await
        .unwrap();
    assert_eq!(
        again.outcome.as_deref(),
        Some("done: consent was already revoked")
    );
}

#[tokio::test]
async fn a_consent_revocation_naming_another_subject_is_refused() {
    let (_dir, store, ring) = setup().await;
    let exec = executor(&store, &ring);
    let theirs = consent_of(&store, "cust-7").await;
    let one = rules(1, Duration::from_secs(60));
    // Policy decides on the subject named: naming one's own subject with another
    // subject's consent id is refused before anything is recorded, and reads as "not
    // found" (nothing learnt of the other record).
    for (consent, subject) in [(theirs.as_str(), "cust-42"), ("no-such-id", "cust-7")] {
        let op = Operation::ConsentRevoke {
            consent: consent.into(),
            subject: subject.into(),
        };
        assert!(
            matches!(
                request(&exec, one, op, "User:cora").await,
                Err(AdminError::NotFound)
            ),
            "{consent} {subject}"
        );
    }
    assert!(matches!(
        consents::revocation(&store, "no-such-id").await,
        Err(AdminError::NotFound)
    ));
    assert!(store.operations().await.unwrap().is_empty());
    assert_eq!(
        consent_status(store.consent(&theirs).await.unwrap()),
        crate::consent::ConsentStatus::Authorised
    );
}

//! The store test suite, run against both engines: SQLite in a temporary directory, and
//! PostgreSQL in a fresh database per test when `PRIVGATE_TEST_POSTGRES_URL` is set. With
//! `PRIVGATE_REQUIRE_POSTGRES=1` (as in CI) a missing PostgreSQL fails the tests; without
//! it they say plainly that they did not run.

use privgate::consent::{ConsentStatus, NewConsent};
use privgate::store::{
    now_ms, ApiKeyRow, ApprovalInsert, NewOperationRow, PendingSession, Revocation, Store,
    TokenRevocation, TotpRow,
};
use sqlx::Connection;

/// Keeps a test's database alive; the PostgreSQL one is dropped afterwards.
pub enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, database: String },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Postgres {
            admin_url,
            database,
        } = self
        {
            let (admin_url, database) = (admin_url.clone(), database.clone());
            // A runtime of its own: Drop cannot await, and the test's runtime is ending.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = sqlx::Executor::execute(
                            &mut conn,
                            format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)").as_str(),
                        )
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

pub async fn sqlite_store() -> (Store, String, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/privgate.db", dir.path().display());
    (Store::open(&url).await.unwrap(), url, Guard::Sqlite(dir))
}

/// A store on a fresh PostgreSQL database, or `None` (with a message) when none is
/// configured and CI does not require one.
pub async fn postgres_store() -> Option<(Store, String, Guard)> {
    let (url, guard) = postgres_database().await?;
    let store = Store::open(&url).await.unwrap();
    Some((store, url, guard))
}

/// A fresh, empty PostgreSQL database (its URL, with the password), dropped with the guard;
/// or `None` (with a message) when none is configured and CI does not require one.
pub async fn postgres_database() -> Option<(String, Guard)> {
    let Ok(admin_url) = std::env::var("PRIVGATE_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("PRIVGATE_REQUIRE_POSTGRES").is_none(),
            "PRIVGATE_REQUIRE_POSTGRES is set but PRIVGATE_TEST_POSTGRES_URL is not"
        );
        eprintln!("PostgreSQL test did NOT run: set PRIVGATE_TEST_POSTGRES_URL to run it");
        return None;
    };
    let database = format!("privgate_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL from PRIVGATE_TEST_POSTGRES_URL is unreachable");
    sqlx::Executor::execute(
        &mut admin,
        format!("CREATE DATABASE \"{database}\"").as_str(),
    )
    .await
    .unwrap();
    let (base, _) = admin_url.rsplit_once('/').expect("URL ends in /DATABASE");
    let url = format!("{base}/{database}");
    Some((
        url,
        Guard::Postgres {
            admin_url,
            database,
        },
    ))
}

/// Instantiates each case of the calling module's `suite` once per engine (the module
/// imports `sqlite_store` and `postgres_store`).
macro_rules! engine_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               async fn $case() {
                   let (store, url, _guard) = super::sqlite_store().await;
                   super::suite::$case(store, url).await;
               } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               async fn $case() {
                   let Some((store, url, _guard)) = super::postgres_store().await else { return };
                   super::suite::$case(store, url).await;
               } )*
        }
    };
}
pub(crate) use engine_suite;

engine_suite!(
    granted_consents_read_back_and_filter,
    revocation_is_immediate_and_reported,
    concurrent_revocations_revoke_exactly_once,
    expiry_needs_no_job,
    migrations_are_idempotent_and_safe_to_race,
    token_deny_list_by_jti_and_subject_cutoff,
    totp_steps_are_accepted_once_across_concurrent_replicas,
    totp_failures_lock_and_pending_enrollments_are_replaceable,
    a_pending_totp_enrollment_belongs_to_its_session_until_it_expires,
    api_keys_read_back_and_revoke_once,
    approvals_count_once_per_principal_and_execute_exactly_once,
    expired_operations_take_no_approval_and_never_execute,
    a_denial_is_once_and_ends_the_operation,
);

fn consent(subject: &str, grantee: &str) -> NewConsent {
    NewConsent {
        subject: subject.into(),
        grantee: grantee.into(),
        purposes: vec!["account_information".into()],
        permissions: vec!["ReadAccountsBasic".into(), "ReadPAN".into()],
        expires_at: None,
    }
}

mod suite {
    use super::*;

    pub async fn token_deny_list_by_jti_and_subject_cutoff(store: Store, _url: String) {
        assert!(!store
            .token_revoked(Some("t-1"), "alice", Some(1_000))
            .await
            .unwrap());
        store
            .revoke_token(TokenRevocation::Jti, "t-1", 5_000)
            .await
            .unwrap();
        store
            .revoke_token(TokenRevocation::Jti, "t-1", 6_000)
            .await
            .unwrap();
        store
            .revoke_token(TokenRevocation::Subject, "bob", 5_000)
            .await
            .unwrap();
        // (jti, sub, iat ms, revoked)
        let cases = [
            (Some("t-1"), "alice", Some(1_000), true),
            (Some("t-2"), "alice", Some(1_000), false),
            (None, "alice", None, false),
            (Some("t-3"), "bob", Some(4_000), true),
            (Some("t-3"), "bob", Some(5_000), true),
            (Some("t-3"), "bob", Some(5_001), false),
            (None, "bob", None, true),
        ];
        for (jti, sub, iat, revoked) in cases {
            let got = store.token_revoked(jti, sub, iat).await.unwrap();
            assert_eq!(got, revoked, "{jti:?} {sub} {iat:?}");
        }
        // Revoking the subject again moves the cut-off forward.
        store
            .revoke_token(TokenRevocation::Subject, "bob", 9_000)
            .await
            .unwrap();
        assert!(store.token_revoked(None, "bob", Some(8_000)).await.unwrap());
    }

    pub async fn granted_consents_read_back_and_filter(store: Store, _url: String) {
        let v0 = store.consent_version().await.unwrap();
        let a = store
            .grant_consent(&consent("cust-1", "partner-a"), now_ms())
            .await
            .unwrap();
        let b = store
            .grant_consent(&consent("cust-1", "partner-b"), now_ms())
            .await
            .unwrap();
        let c = store
            .grant_consent(&consent("cust-2", "partner-a"), now_ms())
            .await
            .unwrap();
        assert_eq!(store.consent_version().await.unwrap(), v0 + 3);
        assert_eq!(store.consent(&a.id).await.unwrap(), Some(a.clone()));
        assert_eq!(store.consent("no-such-id").await.unwrap(), None);
        let ids = |list: Vec<privgate::consent::ConsentRecord>| {
            let mut ids: Vec<String> = list.into_iter().map(|r| r.id).collect();
            ids.sort();
            ids
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        assert_eq!(
            ids(store.consents(Some("cust-1"), None).await.unwrap()),
            sorted(vec![a.id.clone(), b.id.clone()])
        );
        assert_eq!(
            ids(store.consents(None, Some("partner-a")).await.unwrap()),
            sorted(vec![a.id.clone(), c.id.clone()])
        );
        assert_eq!(
            ids(store
                .consents(Some("cust-2"), Some("partner-a"))
                .await
                .unwrap()),
            vec![c.id.clone()]
        );
        assert_eq!(store.consents(None, None).await.unwrap().len(), 3);
        assert_eq!(a.permissions, ["ReadAccountsBasic", "ReadPAN"]);
    }

    pub async fn revocation_is_immediate_and_reported(store: Store, _url: String) {
        let granted = store
            .grant_consent(&consent("cust-1", "partner-a"), now_ms())
            .await
            .unwrap();
        let v = store.consent_version().await.unwrap();
        let at = now_ms();
        assert_eq!(
            store.revoke_consent(&granted.id, at).await.unwrap(),
            Revocation::Revoked
        );
        assert_eq!(store.consent_version().await.unwrap(), v + 1);
        let read = store.consent(&granted.id).await.unwrap().unwrap();
        assert_eq!(read.revoked_at, Some(at));
        assert_eq!(read.status(at), ConsentStatus::Revoked);
        assert!(!read.covers("account_information", at));
        assert_eq!(
            store.revoke_consent(&granted.id, at + 1).await.unwrap(),
            Revocation::AlreadyRevoked
        );
        assert_eq!(
            store.revoke_consent("no-such-id", at).await.unwrap(),
            Revocation::NotFound
        );
        assert_eq!(
            store.consent_version().await.unwrap(),
            v + 1,
            "no-op revocations change nothing"
        );
        assert_eq!(
            store
                .consent(&granted.id)
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(at),
            "first revocation time kept"
        );
    }

    pub async fn concurrent_revocations_revoke_exactly_once(store: Store, _url: String) {
        let granted = store
            .grant_consent(&consent("cust-1", "partner-a"), now_ms())
            .await
            .unwrap();
        let v = store.consent_version().await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (store, id) = (store.clone(), granted.id.clone());
                tokio::spawn(async move { store.revoke_consent(&id, now_ms() + i).await.unwrap() })
            })
            .collect();
        let mut revoked = 0;
        for task in tasks {
            match task.await.unwrap() {
                Revocation::Revoked => revoked += 1,
                Revocation::AlreadyRevoked => {}
                Revocation::NotFound => panic!("consent vanished"),
            }
        }
        assert_eq!(revoked, 1);
        assert_eq!(store.consent_version().await.unwrap(), v + 1);
    }

    pub async fn expiry_needs_no_job(store: Store, _url: String) {
        let now = now_ms();
        let granted = store
            .grant_consent(
                &NewConsent {
                    expires_at: Some(now + 60_000),
                    ..consent("cust-1", "partner-a")
                },
                now,
            )
            .await
            .unwrap();
        let read = store.consent(&granted.id).await.unwrap().unwrap();
        assert_eq!(read.status(now + 59_999), ConsentStatus::Authorised);
        assert_eq!(read.status(now + 60_000), ConsentStatus::Expired);
    }

    pub async fn migrations_are_idempotent_and_safe_to_race(store: Store, url: String) {
        let granted = store
            .grant_consent(&consent("cust-1", "partner-a"), now_ms())
            .await
            .unwrap();
        // Several replicas starting at once against an already migrated store.
        let opens: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn({
                    let url = url.clone();
                    async move { Store::open(&url).await }
                })
            })
            .collect();
        for open in opens {
            let again = open.await.unwrap().unwrap();
            assert_eq!(
                again.consent(&granted.id).await.unwrap(),
                Some(granted.clone())
            );
            again.close().await;
        }
    }

    fn totp_row(user: &str) -> TotpRow {
        TotpRow {
            user_id: user.into(),
            sealed: "c2VhbGVk".into(),
            key_version: 1,
            algorithm: "SHA1".into(),
            digits: 6,
            active: false,
            last_step: 0,
            failures: 0,
            locked_until: 0,
            created_at: 1,
            session: "s-1".into(),
        }
    }

    fn confirm(session: &str) -> Option<PendingSession<'_>> {
        Some(PendingSession {
            session,
            expired_before_ms: 0,
        })
    }

    pub async fn totp_steps_are_accepted_once_across_concurrent_replicas(
        store: Store,
        url: String,
    ) {
        assert!(store
            .put_totp_enrollment(&totp_row("alice"), 0)
            .await
            .unwrap());
        // Confirming needs a pending enrollment; using needs a confirmed one.
        assert!(!store.accept_totp_step("alice", 10, None, 0).await.unwrap());
        assert!(store
            .accept_totp_step("alice", 10, confirm("s-1"), 0)
            .await
            .unwrap());
        assert!(!store
            .accept_totp_step("alice", 11, confirm("s-1"), 0)
            .await
            .unwrap());
        // Eight attempts with one step, through two pools (two replicas): exactly one wins.
        let replica = Store::open(&url).await.unwrap();
        let attempts: Vec<_> = (0..8)
            .map(|i| {
                let store = if i % 2 == 0 {
                    store.clone()
                } else {
                    replica.clone()
                };
                tokio::spawn(async move { store.accept_totp_step("alice", 12, None, 0).await })
            })
            .collect();
        let mut won = 0;
        for attempt in attempts {
            won += usize::from(attempt.await.unwrap().unwrap());
        }
        assert_eq!(won, 1);
        // Never back, never the same step again.
        assert!(!store.accept_totp_step("alice", 11, None, 0).await.unwrap());
        assert!(!store.accept_totp_step("alice", 12, None, 0).await.unwrap());
        assert!(store.accept_totp_step("alice", 13, None, 0).await.unwrap());
        replica.close().await;
    }

    pub async fn totp_failures_lock_and_pending_enrollments_are_replaceable(
        store: Store,
        _url: String,
    ) {
        assert!(store
            .put_totp_enrollment(&totp_row("bob"), 0)
            .await
            .unwrap());
        assert!(store
            .put_totp_enrollment(&totp_row("bob"), 0)
            .await
            .unwrap());
        assert!(store
            .accept_totp_step("bob", 5, confirm("s-1"), 0)
            .await
            .unwrap());
        // A confirmed enrollment is not replaced, by any session, however old.
        assert!(!store
            .put_totp_enrollment(&totp_row("bob"), 0)
            .await
            .unwrap());
        assert!(!store
            .put_totp_enrollment(&totp_row("bob"), i64::MAX)
            .await
            .unwrap());
        let now = 1_000_000;
        let mut locked_until = Vec::new();
        for _ in 0..3 {
            locked_until.push(
                store
                    .record_totp_failure("bob", 3, now, 60_000)
                    .await
                    .unwrap(),
            );
        }
        // The third failure of three locks; the first two leave the lock in the past.
        assert_eq!(locked_until, [0, 0, now + 60_000]);
        // Locked: no step is accepted until the lockout ends.
        assert!(!store
            .accept_totp_step("bob", 6, None, now + 59_999)
            .await
            .unwrap());
        assert!(store
            .accept_totp_step("bob", 6, None, now + 60_000)
            .await
            .unwrap());
        let rows = store.totp_enrollments().await.unwrap();
        assert_eq!((rows.len(), rows[0].active, rows[0].failures), (1, true, 0));
        assert!(store.remove_totp_enrollment("bob").await.unwrap());
        assert!(!store.remove_totp_enrollment("bob").await.unwrap());
    }

    pub async fn a_pending_totp_enrollment_belongs_to_its_session_until_it_expires(
        store: Store,
        _url: String,
    ) {
        let created = 1_000;
        let ours = TotpRow {
            created_at: created,
            ..totp_row("carol")
        };
        assert!(store.put_totp_enrollment(&ours, 0).await.unwrap());
        // Other sessions (another id, no id, a prefix of it) neither replace nor confirm it
        // while it is current; the starting session may replace its own.
        for other in ["s-2", "", "s-", "S-1"] {
            let theirs = TotpRow {
                session: other.into(),
                sealed: "dGhlaXJz".into(),
                ..ours.clone()
            };
            assert!(
                !store
                    .put_totp_enrollment(&theirs, created - 1)
                    .await
                    .unwrap(),
                "{other:?}"
            );
            let current = Some(PendingSession {
                session: other,
                expired_before_ms: created - 1,
            });
            assert!(
                !store
                    .accept_totp_step("carol", 7, current, 0)
                    .await
                    .unwrap(),
                "{other:?}"
            );
        }
        let row = store.totp_enrollment("carol").await.unwrap().unwrap();
        assert_eq!(
            (row.sealed.as_str(), row.session.as_str()),
            ("c2VhbGVk", "s-1")
        );
        assert!(store.put_totp_enrollment(&ours, created - 1).await.unwrap());
        // Past its time-to-live its own session cannot confirm it, and another may replace it.
        let expired = Some(PendingSession {
            session: "s-1",
            expired_before_ms: created,
        });
        assert!(!store
            .accept_totp_step("carol", 7, expired, 0)
            .await
            .unwrap());
        let theirs = TotpRow {
            session: "s-2".into(),
            created_at: created + 1,
            ..ours.clone()
        };
        assert!(store.put_totp_enrollment(&theirs, created).await.unwrap());
        let current = Some(PendingSession {
            session: "s-2",
            expired_before_ms: created,
        });
        assert!(store
            .accept_totp_step("carol", 7, current, 0)
            .await
            .unwrap());
    }

    pub async fn api_keys_read_back_and_revoke_once(store: Store, _url: String) {
        let row = ApiKeyRow {
            id: "0123456789abcdef".into(),
            service: "batch".into(),
            roles: vec!["reporting".into()],
            purposes: vec!["analytics".into()],
            hash: "$argon2id$...".into(),
            created_at: 7,
            revoked_at: None,
        };
        store.insert_api_key(&row).await.unwrap();
        let read = store.api_key(&row.id).await.unwrap().unwrap();
        assert_eq!(
            (read.service.as_str(), read.roles.clone(), read.revoked_at),
            ("batch", row.roles.clone(), None)
        );
        assert!(store.revoke_api_key(&row.id, 9).await.unwrap());
        assert!(!store.revoke_api_key(&row.id, 10).await.unwrap());
        assert_eq!(
            store.api_key(&row.id).await.unwrap().unwrap().revoked_at,
            Some(9)
        );
        assert_eq!(store.api_keys().await.unwrap().len(), 1);
        assert!(store.api_key("ffffffffffffffff").await.unwrap().is_none());
    }

    fn operation(id: &str, expires_at: i64, approvals_required: i64) -> NewOperationRow {
        NewOperationRow {
            id: id.into(),
            kind: "keys:shred".into(),
            parameters: r#"{"kind":"keys:shred","subject":"cust-1"}"#.into(),
            requested_by: "User:kim".into(),
            requested_at: now_ms(),
            expires_at,
            approvals_required,
        }
    }

    pub async fn approvals_count_once_per_principal_and_execute_exactly_once(
        store: Store,
        _url: String,
    ) {
        let now = now_ms();
        store
            .insert_operation(&operation("op-1", now + 60_000, 3))
            .await
            .unwrap();
        // The requester is the first approval; approving again does not count.
        assert_eq!(
            store.add_approval("op-1", "User:kim", now).await.unwrap(),
            ApprovalInsert::Duplicate
        );
        assert_eq!(
            store.add_approval("op-1", "User:lee", now).await.unwrap(),
            ApprovalInsert::Added
        );
        // Two distinct approvals of three: nothing executes.
        assert!(!store
            .claim_operation("op-1", "User:lee", now)
            .await
            .unwrap());
        // Concurrent approvers (as on several replicas): every distinct one counts once,
        // and exactly one of them executes.
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let me = format!("User:racer-{i}");
                    let added = store.add_approval("op-1", &me, now).await.unwrap();
                    let claimed = store.claim_operation("op-1", &me, now).await.unwrap();
                    (added, claimed)
                })
            })
            .collect();
        let mut claims = 0;
        for racer in racers {
            let (added, claimed) = racer.await.unwrap();
            assert!(
                matches!(added, ApprovalInsert::Added | ApprovalInsert::NotPending),
                "{added:?}"
            );
            claims += usize::from(claimed);
        }
        assert_eq!(claims, 1);
        let row = store.operation("op-1").await.unwrap().unwrap();
        assert_eq!(row.state, "executed");
        assert!(row.executed_by.unwrap().starts_with("User:racer-"));
        assert_eq!(row.approvers[0], "User:kim");
        assert!(!store
            .claim_operation("op-1", "User:lee", now)
            .await
            .unwrap());
        assert_eq!(
            store.add_approval("op-1", "User:new", now).await.unwrap(),
            ApprovalInsert::NotPending
        );
        store.set_operation_outcome("op-1", "done").await.unwrap();
        assert_eq!(
            store
                .operation("op-1")
                .await
                .unwrap()
                .unwrap()
                .outcome
                .as_deref(),
            Some("done")
        );
        assert_eq!(
            store.add_approval("op-x", "User:lee", now).await.unwrap(),
            ApprovalInsert::NotFound
        );
    }

    pub async fn expired_operations_take_no_approval_and_never_execute(store: Store, _url: String) {
        let now = now_ms();
        store
            .insert_operation(&operation("op-2", now + 1_000, 1))
            .await
            .unwrap();
        // At its expiry it is over, even with its approvals in.
        assert_eq!(
            store
                .add_approval("op-2", "User:lee", now + 1_000)
                .await
                .unwrap(),
            ApprovalInsert::Expired
        );
        assert!(!store
            .claim_operation("op-2", "User:kim", now + 1_000)
            .await
            .unwrap());
        assert!(store
            .claim_operation("op-2", "User:kim", now + 999)
            .await
            .unwrap());
        assert_eq!(store.operations().await.unwrap().len(), 1);
    }

    /// Denying is one conditional update, like claiming: concurrent deniers and approvers
    /// (on several replicas) see exactly one denial, and a denied operation takes no
    /// approval and never executes. The shred tombstones count as shredded subjects.
    pub async fn a_denial_is_once_and_ends_the_operation(store: Store, _url: String) {
        let now = now_ms();
        store
            .insert_operation(&operation("op-3", now + 60_000, 2))
            .await
            .unwrap();
        let racers: Vec<_> = (0..6)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .deny_operation("op-3", &format!("User:denier-{i}"), now)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut denials = 0;
        for racer in racers {
            denials += usize::from(racer.await.unwrap());
        }
        assert_eq!(denials, 1);
        let row = store.operation("op-3").await.unwrap().unwrap();
        assert_eq!(
            (row.state.as_str(), row.outcome.as_deref()),
            ("denied", Some("denied"))
        );
        assert_eq!(
            store.add_approval("op-3", "User:lee", now).await.unwrap(),
            ApprovalInsert::NotPending
        );
        assert!(!store
            .claim_operation("op-3", "User:lee", now)
            .await
            .unwrap());
        // An expired one cannot be denied either (it is over already).
        store
            .insert_operation(&operation("op-4", now + 1_000, 2))
            .await
            .unwrap();
        assert!(!store
            .deny_operation("op-4", "User:lee", now + 1_000)
            .await
            .unwrap());
        assert!(!store.deny_operation("op-x", "User:lee", now).await.unwrap());

        assert_eq!(store.shredded_subjects().await.unwrap(), 0);
        assert!(store.shred_subject("tag-1", now).await.unwrap());
        assert!(!store.shred_subject("tag-1", now).await.unwrap());
        assert!(store.shred_subject("tag-2", now).await.unwrap());
        assert_eq!(store.shredded_subjects().await.unwrap(), 2);
    }
}

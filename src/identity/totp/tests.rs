//! RFC 6238 known answers, and the enrollment and replay rules against a real SQLite store.

use super::*;
use crate::config::Argon2Config;
use crate::keys::kek::KekMaterial;
use crate::keys::{maintenance, KeyringSettings};
use std::time::Duration;

/// RFC 6238 Appendix B, shared with CI at `../shared/vectors/rfc6238.tsv`; copied here
/// (time, algorithm, ASCII key, 8-digit code) so the unit tests run anywhere.
const RFC6238_APPENDIX_B: &[(u64, &str, &str, &str)] = &[
    (59, "SHA1", "12345678901234567890", "94287082"),
    (59, "SHA256", "12345678901234567890123456789012", "46119246"),
    (
        59,
        "SHA512",
        "1234567890123456789012345678901234567890123456789012345678901234",
        "90693936",
    ),
    (1111111109, "SHA1", "12345678901234567890", "07081804"),
    (
        1111111109,
        "SHA256",
        "12345678901234567890123456789012",
        "68084774",
    ),
    (
        1111111109,
        "SHA512",
        "1234567890123456789012345678901234567890123456789012345678901234",
        "25091201",
    ),
    (1111111111, "SHA1", "12345678901234567890", "14050471"),
    (
        1111111111,
        "SHA256",
        "12345678901234567890123456789012",
        "67062674",
    ),
    (
        1111111111,
        "SHA512",
        "1234567890123456789012345678901234567890123456789012345678901234",
        "99943326",
    ),
    (1234567890, "SHA1", "12345678901234567890", "89005924"),
    (
        1234567890,
        "SHA256",
        "12345678901234567890123456789012",
        "91819424",
    ),
    (
        1234567890,
        "SHA512",
        "1234567890123456789012345678901234567890123456789012345678901234",
        "93441116",
    ),
    (2000000000, "SHA1", "12345678901234567890", "69279037"),
    (
        2000000000,
        "SHA256",
        "12345678901234567890123456789012",
        "90698825",
    ),
    (
        2000000000,
        "SHA512",
        "1234567890123456789012345678901234567890123456789012345678901234",
        "38618901",
    ),
    (20000000000, "SHA1", "12345678901234567890", "65353130"),
    (
        20000000000,
        "SHA256",
        "12345678901234567890123456789012",
        "77737706",
    ),
    (
        20000000000,
        "SHA512",
        "1234567890123456789012345678901234567890123456789012345678901234",
        "47863826",
    ),
];

#[test]
fn rfc_6238_appendix_b_vectors() {
    for &(time, algo, key, code) in RFC6238_APPENDIX_B {
        let totp = generator(
            TotpAlgorithm::parse(algo).unwrap(),
            8,
            key.as_bytes().to_vec(),
        );
        assert_eq!(totp.generate(time), code, "{algo} at {time}");
        let step = i64::try_from(time / 30).unwrap();
        assert_eq!(
            matching_step(&totp, code, time),
            Some(step),
            "{algo} at {time}"
        );
    }
}

#[test]
fn shared_vector_file_agrees_when_present() {
    let Ok(text) = std::fs::read_to_string("../shared/vectors/rfc6238.tsv") else {
        return;
    };
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("unix_time"))
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), RFC6238_APPENDIX_B.len());
    for row in rows {
        let totp = generator(
            TotpAlgorithm::parse(row[1]).unwrap(),
            8,
            row[2].as_bytes().to_vec(),
        );
        assert_eq!(totp.generate(row[0].parse().unwrap()), row[4], "{row:?}");
    }
}

#[test]
fn previous_step_accepted_next_step_refused() {
    let totp = generator(TotpAlgorithm::Sha1, 6, b"12345678901234567890".to_vec());
    let now: u64 = 1_700_000_015; // mid-step
    let cases = [
        (0i64, true),
        (-30, true),
        (-60, false),
        (30, false),
        (60, false),
    ];
    for (offset, accepted) in cases {
        let code = totp.generate(now.checked_add_signed(offset).unwrap());
        assert_eq!(
            matching_step(&totp, &code, now).is_some(),
            accepted,
            "offset {offset}"
        );
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    keyring: Keyring,
    settings: TotpConfig,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        let material = KekMaterial::Raw(Zeroizing::new([9u8; aead::KEY_LEN]));
        maintenance::init(&store, &material, Argon2Config::default())
            .await
            .unwrap();
        let keyring = Keyring::open(store.clone(), &material, KeyringSettings::default())
            .await
            .unwrap();
        let settings: TotpConfig = toml::from_str("max_failures = 3\nlockout = \"15m\"").unwrap();
        Self {
            _dir: dir,
            store,
            keyring,
            settings,
        }
    }

    fn ctx(&self) -> TotpContext<'_> {
        TotpContext {
            settings: &self.settings,
            keyring: &self.keyring,
            store: &self.store,
        }
    }

    /// Enrolls and confirms `user`; returns its generator (from the URI, as an app would).
    async fn enrolled(&self, user: &str, now_ms: i64) -> TOTP {
        let enrollment = enroll(self.ctx(), user, "s-1", TotpAlgorithm::Sha256, 8, now_ms)
            .await
            .unwrap();
        assert!(enrollment.qr_svg.starts_with("<?xml"));
        let totp = TOTP::from_url_unchecked(enrollment.uri.as_str()).unwrap();
        assert_eq!(totp.digits, 8);
        let code = totp.generate(secs(now_ms) - 30);
        check_code(self.ctx(), user, &code, CONFIRM_S1, now_ms)
            .await
            .unwrap();
        totp
    }
}

fn secs(ms: i64) -> u64 {
    u64::try_from(ms / 1000).unwrap()
}

const T0: i64 = 1_700_000_010_000;

const CONFIRM_S1: CodeUse<'static> = CodeUse::Confirm { session: "s-1" };

#[tokio::test]
async fn a_code_is_good_once_and_only_for_its_user() {
    let f = Fixture::new().await;
    let alice = f.enrolled("alice", T0).await;
    f.enrolled("bob", T0).await;
    let code = alice.generate(secs(T0));
    assert_eq!(
        check_code(f.ctx(), "bob", &code, CodeUse::Request, T0).await,
        Err(IdentityError::OtpInvalid("wrong code"))
    );
    check_code(f.ctx(), "alice", &code, CodeUse::Request, T0)
        .await
        .unwrap();
    assert_eq!(
        check_code(f.ctx(), "alice", &code, CodeUse::Request, T0 + 1000).await,
        Err(IdentityError::OtpInvalid("code already used"))
    );
    // The previous step's code is older than the accepted one: refused too.
    let older = alice.generate(secs(T0) - 30);
    assert!(check_code(f.ctx(), "alice", &older, CodeUse::Request, T0)
        .await
        .is_err());
    // Confirming again, or using an unknown user, is not enrolled.
    assert_eq!(
        check_code(f.ctx(), "carol", &code, CodeUse::Request, T0).await,
        Err(IdentityError::OtpInvalid("not enrolled"))
    );
    assert_eq!(
        enroll(f.ctx(), "alice", "s-1", TotpAlgorithm::Sha1, 6, T0)
            .await
            .unwrap_err(),
        IdentityError::OtpAlreadyEnrolled
    );
}

#[tokio::test]
async fn failures_lock_the_user_for_the_cool_down() {
    let f = Fixture::new().await;
    let alice = f.enrolled("alice", T0).await;
    let now = T0 + 60_000;
    for _ in 0..2 {
        assert_eq!(
            check_code(f.ctx(), "alice", "00000000", CodeUse::Request, now).await,
            Err(IdentityError::OtpInvalid("wrong code"))
        );
    }
    assert_eq!(
        check_code(f.ctx(), "alice", "12", CodeUse::Request, now).await,
        Err(IdentityError::OtpLocked {
            retry_after_s: 900,
            started: true
        })
    );
    // While locked even the right code is not checked.
    let good = alice.generate(secs(now));
    assert_eq!(
        check_code(f.ctx(), "alice", &good, CodeUse::Request, now + 1000).await,
        Err(IdentityError::OtpLocked {
            retry_after_s: 899,
            started: false
        })
    );
    let later = now + Duration::from_secs(15 * 60).as_millis() as i64;
    let good = alice.generate(secs(later));
    check_code(f.ctx(), "alice", &good, CodeUse::Request, later)
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_uses_of_one_code_exactly_one_wins() {
    let f = Fixture::new().await;
    let alice = f.enrolled("alice", T0).await;
    let now = T0 + 60_000;
    let code = alice.generate(secs(now));
    let attempts = (0..8).map(|_| check_code(f.ctx(), "alice", &code, CodeUse::Request, now));
    let results = futures_util::future::join_all(attempts).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| *e == IdentityError::OtpInvalid("code already used")));
}

#[tokio::test]
async fn the_secret_is_stored_sealed_and_bound_to_its_user() {
    let f = Fixture::new().await;
    let alice = f.enrolled("alice", T0).await;
    let row = f.store.totp_enrollment("alice").await.unwrap().unwrap();
    let secret_b32 = alice.get_secret_base32();
    assert!(!row.sealed.contains(&secret_b32) && !format!("{row:?}").contains(&row.sealed));
    // The sealed secret moved to another user's row does not open.
    let mut moved = row.clone();
    moved.user_id = "mallory".into();
    moved.active = false;
    moved.created_at = T0 + 60_000;
    assert!(f.store.put_totp_enrollment(&moved, 0).await.unwrap());
    let code = alice.generate(secs(T0 + 60_000));
    assert!(matches!(
        check_code(f.ctx(), "mallory", &code, CONFIRM_S1, T0 + 60_000).await,
        Err(IdentityError::OtpUnavailable(_))
    ));
}

#[tokio::test]
async fn a_pending_enrollment_is_only_replaced_or_confirmed_by_its_session() {
    let f = Fixture::new().await;
    let started = enroll(f.ctx(), "dana", "s-1", TotpAlgorithm::Sha1, 6, T0)
        .await
        .unwrap();
    let totp = TOTP::from_url_unchecked(started.uri.as_str()).unwrap();
    let now = T0 + 1000;
    let good = totp.generate(secs(now));
    for other in ["s-2", "", OPERATOR_SESSION, "s-1 "] {
        assert_eq!(
            enroll(f.ctx(), "dana", other, TotpAlgorithm::Sha1, 6, now)
                .await
                .unwrap_err(),
            IdentityError::OtpEnrollmentPending,
            "{other:?}"
        );
        // Refused before the code is checked: right or wrong, and no failure is counted
        // (another session cannot lock the user out).
        for code in [good.as_str(), "000000", "000001", "000002"] {
            let confirm = CodeUse::Confirm { session: other };
            assert_eq!(
                check_code(f.ctx(), "dana", code, confirm, now).await,
                Err(IdentityError::OtpInvalid("enrollment of another session")),
                "{other:?}"
            );
        }
    }
    let row = f.store.totp_enrollment("dana").await.unwrap().unwrap();
    assert_eq!((row.failures, row.locked_until, row.active), (0, 0, false));
    // A request's code does not confirm it either; its own session does.
    assert_eq!(
        check_code(f.ctx(), "dana", &good, CodeUse::Request, now).await,
        Err(IdentityError::OtpInvalid("not enrolled"))
    );
    check_code(f.ctx(), "dana", &good, CONFIRM_S1, now)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_expired_pending_enrollment_is_not_confirmed_and_another_session_may_replace_it() {
    let f = Fixture::new().await;
    let ttl = i64::try_from(f.settings.enrollment.pending_ttl.as_millis()).unwrap();
    let started = enroll(f.ctx(), "erin", "s-1", TotpAlgorithm::Sha1, 6, T0)
        .await
        .unwrap();
    let old = TOTP::from_url_unchecked(started.uri.as_str()).unwrap();
    // The same session may start again while it is pending (a lost QR code).
    enroll(f.ctx(), "erin", "s-1", TotpAlgorithm::Sha1, 6, T0 + 1)
        .await
        .unwrap();
    let later = T0 + 1 + ttl;
    assert_eq!(
        check_code(
            f.ctx(),
            "erin",
            &old.generate(secs(later)),
            CONFIRM_S1,
            later
        )
        .await,
        Err(IdentityError::OtpInvalid("enrollment expired"))
    );
    let replaced = enroll(f.ctx(), "erin", "s-2", TotpAlgorithm::Sha1, 6, later)
        .await
        .unwrap();
    let new = TOTP::from_url_unchecked(replaced.uri.as_str()).unwrap();
    let confirm = CodeUse::Confirm { session: "s-2" };
    check_code(f.ctx(), "erin", &new.generate(secs(later)), confirm, later)
        .await
        .unwrap();
}

#[test]
fn an_enrollment_session_is_the_tokens_sign_in_not_the_token() {
    use crate::identity::{Identity, TokenFacts};
    use crate::policy::{Caller, CallerKind, Credential};
    let identity =
        |issuer: &str, sid: Option<&str>, auth_time: Option<i64>, jti: Option<&str>| Identity {
            caller: Caller {
                kind: CallerKind::User,
                credential: Credential::Token,
                id: "alice".into(),
                roles: vec![],
                organisation: None,
                purposes: vec![],
            }
            .into(),
            acr: None,
            amr: Default::default(),
            auth_time,
            certificate_bound: false,
            token: Some(std::sync::Arc::new(TokenFacts {
                issuer: issuer.into(),
                subject: "alice".into(),
                client_id: None,
                jti: jti.map(Into::into),
                session_id: sid.map(Into::into),
                issued_at: None,
                scopes: vec![],
                bound_thumbprint: None,
                forward: vec![],
            })),
            api_key: false,
        };
    let a = "https://a.example";
    let base = session_of(&identity(a, Some("s-1"), Some(100), Some("t-1"))).unwrap();
    assert_eq!(base.len(), 64);
    // Refreshed tokens of one sign-in: the same session.
    let same = [
        identity(a, Some("s-1"), Some(100), Some("t-2")),
        identity(a, Some("s-1"), Some(200), None),
    ];
    for id in &same {
        assert_eq!(session_of(id).as_deref(), Some(base.as_str()));
    }
    // Another sign-in, another issuer, or a fallback claim with the same text: another one.
    let others = [
        identity(a, Some("s-2"), Some(100), Some("t-1")),
        identity("https://b.example", Some("s-1"), Some(100), Some("t-1")),
        identity(a, None, Some(100), Some("t-1")),
        identity(a, None, None, Some("s-1")),
    ];
    for id in &others {
        assert_ne!(session_of(id).as_deref(), Some(base.as_str()), "{id:?}");
    }
    assert_ne!(
        session_of(&others[2]),
        session_of(&identity(a, None, Some(101), Some("t-1")))
    );
    assert!(session_of(&identity(a, None, None, None)).is_none());
    let mut no_token = identity(a, Some("s-1"), Some(100), None);
    no_token.token = None;
    assert!(session_of(&no_token).is_none());
}

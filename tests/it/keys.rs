//! The keyring against both store engines (SQLite always, PostgreSQL when configured, as
//! in `store.rs`): rotation, retirement, usage-bound rotation across racing replicas,
//! per-subject keys and shredding, rewrap, backup and restore. Most cases use a raw KEK
//! (fast); the Argon2id path runs with the production parameters.

use crate::store::{postgres_store, sqlite_store, Guard};
use privgate::config::Argon2Config;
use privgate::keys::kek::KekMaterial;
use privgate::keys::{aead, maintenance, KeyError, KeyKind, Keyring, KeyringSettings};
use privgate::store::Store;
use sqlx::Connection;
use std::collections::HashMap;
use std::time::Duration;
use zeroize::Zeroizing;

crate::store::engine_suite!(
    a_shred_racing_first_uses_leaves_no_key_behind,
    versions_rotate_retire_and_fail_distinctly,
    wrong_kek_and_corruption_are_refused,
    passphrase_keks_use_argon2id_and_refuse_wrong_passphrases,
    aead_keys_rotate_at_the_usage_bound_across_replicas,
    concurrent_racing_replicas_never_exceed_the_bound,
    concurrent_first_uses_of_a_subject_key_make_one_key,
    shredded_subjects_stay_shredded_on_every_replica,
    rewrap_keeps_keys_and_retires_the_old_kek,
    backup_restores_on_a_fresh_store_and_decrypts_old_data,
    keys_another_process_creates_are_usable_at_once,
);

struct Fixture {
    store: Store,
    url: String,
    kek: KekMaterial,
}

fn raw_kek(byte: u8) -> KekMaterial {
    KekMaterial::Raw(Zeroizing::new([byte; aead::KEY_LEN]))
}

fn passphrase(text: &str) -> KekMaterial {
    KekMaterial::Passphrase(Zeroizing::new(text.to_owned()))
}

/// An empty store on the same engine as `url`.
async fn another_store(url: &str) -> (Store, String, Guard) {
    if url.starts_with("sqlite:") {
        sqlite_store().await
    } else {
        postgres_store().await.expect("PostgreSQL is configured")
    }
}

async fn fixture(store: Store, url: String) -> Fixture {
    let kek = raw_kek(7);
    maintenance::init(&store, &kek, Argon2Config::default())
        .await
        .unwrap();
    Fixture { store, url, kek }
}

fn settings(aead_max_uses: u64, refresh_ms: u64) -> KeyringSettings {
    KeyringSettings {
        aead_max_uses,
        refresh_interval: Duration::from_millis(refresh_ms),
    }
}

impl Fixture {
    async fn open(&self, settings: KeyringSettings) -> Keyring {
        Keyring::open(self.store.clone(), &self.kek, settings)
            .await
            .unwrap()
    }

    /// Runs one SQL statement on the store behind the keyring's back.
    async fn tamper(&self, sql: &str) {
        let mut conn = sqlx::AnyConnection::connect(&self.url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
}

mod suite {
    use super::*;

    pub async fn versions_rotate_retire_and_fail_distinctly(store: Store, url: String) {
        let f = fixture(store, url).await;
        let ring = f.open(KeyringSettings::default()).await;
        let v1 = ring.ensure("pan", KeyKind::Aead).await.unwrap();
        assert_eq!(
            (v1.name(), v1.version(), v1.kind()),
            ("pan", 1, KeyKind::Aead)
        );
        assert_eq!(
            ring.ensure("pan", KeyKind::Aead).await.unwrap().secret(),
            v1.secret()
        );
        assert_eq!(ring.rotate("pan").await.unwrap(), 2);
        let v2 = ring.current("pan").await.unwrap();
        assert_eq!(v2.version(), 2);
        assert_ne!(v2.secret(), v1.secret());
        let sealed = aead::seal(v1.secret(), b"pan", b"4111111111111111").unwrap();

        assert_eq!(ring.retire("pan", 2).await.unwrap(), 1);
        let err = ring.version("pan", 1).await.unwrap_err();
        assert!(matches!(err, KeyError::Retired { version: 1, .. }), "{err}");
        assert!(err.to_string().contains("retired"), "{err}");
        assert_eq!(ring.version("pan", 2).await.unwrap().secret(), v2.secret());
        drop(sealed);

        let cases: Vec<(KeyError, &str)> = vec![
            (
                ring.version("pan", 9).await.unwrap_err(),
                "unknown key pan v9",
            ),
            (ring.current("nope").await.unwrap_err(), "unknown key nope"),
            (
                ring.retire("pan", 3).await.unwrap_err(),
                "would retire every version",
            ),
            (
                ring.ensure("pan", KeyKind::Siv).await.unwrap_err(),
                "is a Aead key",
            ),
            (
                ring.current("Bad|name").await.unwrap_err(),
                "must be 1 to 64",
            ),
            (
                ring.current("_subject_index").await.unwrap_err(),
                "must be 1 to 64",
            ),
        ];
        for (err, expected) in cases {
            assert!(err.to_string().contains(expected), "{err} / {expected}");
        }
        // Another replica loading now sees the same state.
        let other = f.open(KeyringSettings::default()).await;
        assert!(matches!(
            other.version("pan", 1).await,
            Err(KeyError::Retired { .. })
        ));
        assert_eq!(other.current("pan").await.unwrap().secret(), v2.secret());
    }

    pub async fn keys_another_process_creates_are_usable_at_once(store: Store, url: String) {
        let f = fixture(store, url).await;
        // A long refresh interval: only the unknown-key recheck can explain a hit.
        let ring = f.open(settings(1 << 20, 3_600_000)).await;
        let other = f.open(KeyringSettings::default()).await;
        assert!(matches!(
            ring.version("totp", 1).await,
            Err(KeyError::Unknown { .. })
        ));
        // Names and versions created by another process (the CLI, a replica): a new name,
        // a rotated version, an AEAD and a SIV key.
        tokio::time::sleep(privgate::keys::UNKNOWN_KEY_RECHECK).await;
        let totp = other.ensure("totp", KeyKind::Aead).await.unwrap();
        assert_eq!(
            ring.version("totp", 1).await.unwrap().secret(),
            totp.secret()
        );
        other.ensure("email", KeyKind::Siv).await.unwrap();
        tokio::time::sleep(privgate::keys::UNKNOWN_KEY_RECHECK).await;
        assert_eq!(other.rotate("email").await.unwrap(), 2);
        let v2 = other.version("email", 2).await.unwrap();
        tokio::time::sleep(privgate::keys::UNKNOWN_KEY_RECHECK).await;
        assert_eq!(
            ring.version("email", 2).await.unwrap().secret(),
            v2.secret()
        );
        tokio::time::sleep(privgate::keys::UNKNOWN_KEY_RECHECK).await;
        other.ensure("iban", KeyKind::Siv).await.unwrap();
        tokio::time::sleep(privgate::keys::UNKNOWN_KEY_RECHECK).await;
        assert_eq!(ring.current("iban").await.unwrap().version(), 1);
        // Versions that exist nowhere still fail closed, however often they are asked for,
        // and concurrent askers share one check.
        let asks = (0..16).map(|i| ring.version("email", 10 + i));
        for result in futures_util::future::join_all(asks).await {
            assert!(matches!(result, Err(KeyError::Unknown { .. })));
        }
        // A key created within the recheck interval of the last check waits for the next
        // one (bounded), never for the refresh interval.
        other.ensure("phone", KeyKind::Siv).await.unwrap();
        tokio::time::sleep(privgate::keys::UNKNOWN_KEY_RECHECK).await;
        assert_eq!(ring.current("phone").await.unwrap().version(), 1);
    }

    pub async fn wrong_kek_and_corruption_are_refused(store: Store, url: String) {
        let f = fixture(store, url).await;
        let ring = f.open(KeyringSettings::default()).await;
        ring.ensure("pan", KeyKind::Aead).await.unwrap();
        ring.rotate("pan").await.unwrap();
        let err = Keyring::open(f.store.clone(), &raw_kek(8), KeyringSettings::default())
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::WrongKek), "{err}");
        assert!(err
            .to_string()
            .contains("wrong passphrase or different keyring"));
        let err = Keyring::open(
            f.store.clone(),
            &passphrase("a long passphrase"),
            KeyringSettings::default(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("names a passphrase"), "{err}");

        // Swapping wrapped keys between versions is caught by the associated data.
        f.tamper(
            "UPDATE data_keys SET wrapped = (SELECT wrapped FROM data_keys WHERE name = 'pan' AND version = 2) \
             WHERE name = 'pan' AND version = 1",
        )
        .await;
        let err = Keyring::open(f.store.clone(), &f.kek, KeyringSettings::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KeyError::Corrupted(m) if m.contains("pan v1 does not unwrap")),
            "{err}"
        );
        f.tamper("UPDATE keyring SET check_value = ''").await;
        let err = Keyring::open(f.store.clone(), &f.kek, KeyringSettings::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no check value"), "{err}");
    }

    pub async fn passphrase_keks_use_argon2id_and_refuse_wrong_passphrases(
        store: Store,
        _url: String,
    ) {
        let err = maintenance::init(&store, &passphrase("short"), Argon2Config::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("at least 12"), "{err}");
        let right = passphrase("correct horse battery staple");
        maintenance::init(&store, &right, Argon2Config::default())
            .await
            .unwrap();
        let head = store.keyring_row().await.unwrap().unwrap();
        assert!(
            head.kdf.contains("\"memory_kib\":65536") && head.kdf.contains("argon2id"),
            "{}",
            head.kdf
        );
        assert!(matches!(
            maintenance::init(&store, &right, Argon2Config::default()).await,
            Err(KeyError::KeyringExists)
        ));
        let ring = Keyring::open(store.clone(), &right, KeyringSettings::default())
            .await
            .unwrap();
        let key = ring.ensure("iban", KeyKind::Ff1).await.unwrap();
        let again = Keyring::open(store.clone(), &right, KeyringSettings::default())
            .await
            .unwrap();
        assert_eq!(again.current("iban").await.unwrap().secret(), key.secret());
        let err = Keyring::open(
            store.clone(),
            &passphrase("correct horse battery stapler"),
            KeyringSettings::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, KeyError::WrongKek), "{err}");
    }

    pub async fn aead_keys_rotate_at_the_usage_bound_across_replicas(store: Store, url: String) {
        let f = fixture(store, url).await;
        let a = f.open(settings(8, 0)).await;
        let b = f.open(settings(8, 0)).await;
        a.ensure("pan", KeyKind::Aead).await.unwrap();
        let mut versions = Vec::new();
        for i in 0..20 {
            let ring = if i % 2 == 0 { &a } else { &b };
            versions.push(ring.encryption_key("pan", 1).await.unwrap().version());
        }
        // The bound is 8 and the block 1: exactly 8 encryptions per version.
        assert_eq!(
            versions.iter().filter(|v| **v == 1).count(),
            8,
            "{versions:?}"
        );
        assert_eq!(
            versions.iter().filter(|v| **v == 2).count(),
            8,
            "{versions:?}"
        );
        assert!(versions.windows(2).all(|w| w[0] <= w[1]), "{versions:?}");
        let rows = f.store.data_key_rows().await.unwrap();
        for row in rows.iter().filter(|r| r.name == "pan") {
            assert!(row.uses <= 8, "{row:?}");
        }
        // Other kinds are not counted.
        a.ensure("email", KeyKind::Siv).await.unwrap();
        for _ in 0..20 {
            assert_eq!(a.encryption_key("email", 1).await.unwrap().version(), 1);
        }
        assert!(a.encryption_key("pan", 9).await.is_err());
    }

    pub async fn concurrent_racing_replicas_never_exceed_the_bound(store: Store, url: String) {
        let f = fixture(store, url).await;
        let replicas: Vec<Keyring> =
            futures_util::future::join_all((0..4).map(|_| f.open(settings(64, 0)))).await;
        replicas[0].ensure("pan", KeyKind::Aead).await.unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let ring = replicas[i % 4].clone();
                tokio::spawn(async move { ring.encryption_key("pan", 1).await.unwrap().version() })
            })
            .collect();
        let mut per_version: HashMap<u32, u64> = HashMap::new();
        for t in tasks {
            *per_version.entry(t.await.unwrap()).or_default() += 1;
        }
        assert!(per_version.values().all(|n| *n <= 64), "{per_version:?}");
        for row in f
            .store
            .data_key_rows()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.name == "pan")
        {
            assert!(row.uses <= 64, "{row:?}");
        }
    }

    pub async fn concurrent_first_uses_of_a_subject_key_make_one_key(store: Store, url: String) {
        let f = fixture(store, url).await;
        let replicas: Vec<Keyring> =
            futures_util::future::join_all((0..8).map(|_| f.open(settings(8, 0)))).await;
        let tasks: Vec<_> = replicas
            .iter()
            .map(|ring| {
                let ring = ring.clone();
                tokio::spawn(
                    async move { ring.subject_key("cust-42", KeyKind::Aead).await.unwrap() },
                )
            })
            .collect();
        let mut secrets = Vec::new();
        for t in tasks {
            secrets.push(t.await.unwrap().secret().to_vec());
        }
        assert!(secrets.windows(2).all(|w| w[0] == w[1]));
        let other = replicas[0]
            .subject_key("cust-7", KeyKind::Aead)
            .await
            .unwrap();
        assert_ne!(other.secret(), secrets[0].as_slice());
        let tables = f.store.keyring_tables().await.unwrap().unwrap();
        assert_eq!(tables.subject_keys.len(), 2);
        assert!(tables
            .subjects
            .iter()
            .all(|s| !s.subject_tag.contains("cust")));
    }

    pub async fn shredded_subjects_stay_shredded_on_every_replica(store: Store, url: String) {
        let f = fixture(store, url).await;
        let a = f.open(settings(8, 0)).await;
        let b = f.open(settings(8, 300)).await;
        let key = a.subject_key("cust-42", KeyKind::Aead).await.unwrap();
        let sealed = aead::seal(key.secret(), b"cust-42", b"secret").unwrap();
        b.subject_key("cust-42", KeyKind::Aead).await.unwrap();
        a.subject_key("cust-42", KeyKind::Hmac).await.unwrap();
        // Field protection asks this before any value of the subject (any class, any key);
        // replica b caches the answer.
        assert!(!b.is_shredded("cust-42").await.unwrap());
        assert!(a.shred("cust-42").await.unwrap());
        assert!(a.is_shredded("cust-42").await.unwrap());
        assert!(
            !a.shred("cust-42").await.unwrap(),
            "second shred is a no-op"
        );
        for kind in [KeyKind::Aead, KeyKind::Hmac, KeyKind::Siv] {
            assert!(matches!(
                a.subject_key("cust-42", kind).await,
                Err(KeyError::Shredded)
            ));
        }
        // A replica that cached the key drops it within its refresh interval.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(b.is_shredded("cust-42").await.unwrap(), "b's cached answer");
        let err = b.subject_key("cust-42", KeyKind::Aead).await.unwrap_err();
        assert!(
            matches!(err, KeyError::Shredded) && !err.to_string().contains("cust-42"),
            "{err}"
        );
        let tables = f.store.keyring_tables().await.unwrap().unwrap();
        assert!(tables.subject_keys.is_empty(), "key material deleted");
        drop(sealed);
        // A subject never seen can be shredded in advance; no key is ever made for it.
        assert!(a.shred("cust-9").await.unwrap());
        assert!(matches!(
            b.subject_key("cust-9", KeyKind::Aead).await,
            Err(KeyError::Shredded)
        ));
        assert!(a.subject_key("cust-8", KeyKind::Aead).await.is_ok());
        // Asking makes nothing: a subject never seen is simply not shredded.
        assert!(b.is_shredded("cust-9").await.unwrap());
        assert!(!b.is_shredded("cust-7").await.unwrap());
        let subjects = f
            .store
            .keyring_tables()
            .await
            .unwrap()
            .unwrap()
            .subjects
            .len();
        assert!(!a.is_shredded("cust-6").await.unwrap());
        let after = f
            .store
            .keyring_tables()
            .await
            .unwrap()
            .unwrap()
            .subjects
            .len();
        assert_eq!(subjects, after, "is_shredded created a subject row");
    }

    pub async fn rewrap_keeps_keys_and_retires_the_old_kek(store: Store, url: String) {
        let f = fixture(store, url).await;
        let ring = f.open(settings(8, 0)).await;
        let pan = ring.ensure("pan", KeyKind::Aead).await.unwrap();
        let subject = ring.subject_key("cust-42", KeyKind::Siv).await.unwrap();
        let done = maintenance::rewrap(&f.store, &f.kek, &raw_kek(9), Argon2Config::default())
            .await
            .unwrap();
        assert_eq!((done.data_keys, done.subject_keys), (2, 1));
        assert!(matches!(
            Keyring::open(f.store.clone(), &f.kek, KeyringSettings::default()).await,
            Err(KeyError::WrongKek)
        ));
        // From the key file to a passphrase (fresh salt, Argon2id).
        let new = passphrase("a brand new passphrase");
        maintenance::rewrap(&f.store, &raw_kek(9), &new, Argon2Config::default())
            .await
            .unwrap();
        assert!(
            Keyring::open(f.store.clone(), &raw_kek(9), KeyringSettings::default())
                .await
                .is_err()
        );
        let after = Keyring::open(f.store.clone(), &new, KeyringSettings::default())
            .await
            .unwrap();
        assert_eq!(after.current("pan").await.unwrap().secret(), pan.secret());
        assert_eq!(
            after
                .subject_key("cust-42", KeyKind::Siv)
                .await
                .unwrap()
                .secret(),
            subject.secret()
        );
        // The replica still holding the old KEK fails closed instead of writing under it.
        assert!(matches!(
            ring.current("pan").await,
            Err(KeyError::KekChanged)
        ));
        assert!(matches!(
            ring.subject_key("cust-1", KeyKind::Aead).await,
            Err(KeyError::KekChanged)
        ));
        assert!(matches!(
            maintenance::rewrap(
                &f.store,
                &passphrase("not the passphrase"),
                &raw_kek(3),
                Argon2Config::default()
            )
            .await,
            Err(KeyError::WrongKek)
        ));
    }

    pub async fn backup_restores_on_a_fresh_store_and_decrypts_old_data(store: Store, url: String) {
        let f = fixture(store, url).await;
        let ring = f.open(KeyringSettings::default()).await;
        let pan = ring.ensure("pan", KeyKind::Aead).await.unwrap();
        let subject = ring.subject_key("cust-42", KeyKind::Aead).await.unwrap();
        let sealed = aead::seal(pan.secret(), b"pan", b"4111111111111111").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyring.backup");
        maintenance::backup(&f.store, &f.kek, &file).await.unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("cust-42"));
        assert!(
            maintenance::backup(&f.store, &f.kek, &file).await.is_err(),
            "never overwrites"
        );

        let (fresh, _url, _guard) = another_store(&f.url).await;
        let err = maintenance::restore(&fresh, &raw_kek(1), &file, false)
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::WrongKek), "{err}");
        assert!(
            fresh.keyring_row().await.unwrap().is_none(),
            "nothing written"
        );
        maintenance::restore(&fresh, &f.kek, &file, false)
            .await
            .unwrap();
        let restored = Keyring::open(fresh.clone(), &f.kek, KeyringSettings::default())
            .await
            .unwrap();
        let key = restored.version("pan", 1).await.unwrap();
        assert_eq!(
            aead::open(key.secret(), b"pan", &sealed)
                .unwrap()
                .as_slice(),
            b"4111111111111111"
        );
        assert_eq!(
            restored
                .subject_key("cust-42", KeyKind::Aead)
                .await
                .unwrap()
                .secret(),
            subject.secret()
        );

        // Restoring over a keyring needs force; force keeps the store's shreds.
        restored.shred("cust-42").await.unwrap();
        assert!(matches!(
            maintenance::restore(&fresh, &f.kek, &file, false).await,
            Err(KeyError::KeyringExists)
        ));
        maintenance::restore(&fresh, &f.kek, &file, true)
            .await
            .unwrap();
        let again = Keyring::open(fresh.clone(), &f.kek, KeyringSettings::default())
            .await
            .unwrap();
        assert!(matches!(
            again.subject_key("cust-42", KeyKind::Aead).await,
            Err(KeyError::Shredded)
        ));
        assert_eq!(again.current("pan").await.unwrap().secret(), pan.secret());
    }

    pub async fn a_shred_racing_first_uses_leaves_no_key_behind(store: Store, url: String) {
        let f = fixture(store, url).await;
        let replicas: Vec<Keyring> =
            futures_util::future::join_all((0..4).map(|_| f.open(settings(8, 0)))).await;
        let creators: Vec<_> = (0..32)
            .map(|i| {
                let ring = replicas[i % 4].clone();
                tokio::spawn(async move { ring.subject_key("cust-42", KeyKind::Aead).await })
            })
            .collect();
        let shredder = replicas[1].clone();
        let shred = tokio::spawn(async move { shredder.shred("cust-42").await.unwrap() });
        for c in creators {
            match c.await.unwrap() {
                Ok(_) | Err(KeyError::Shredded) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert!(shred.await.unwrap());
        let tables = f.store.keyring_tables().await.unwrap().unwrap();
        assert!(tables.subject_keys.is_empty(), "{:?}", tables.subject_keys);
        for ring in &replicas {
            assert!(matches!(
                ring.subject_key("cust-42", KeyKind::Aead).await,
                Err(KeyError::Shredded)
            ));
        }
    }
}

/// Cost of counting AES-GCM uses on the hot path (in-memory, with one store write per block).
/// Run: `cargo test --release --test it keys::measure_encryption_key -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn measure_encryption_key() {
    let (store, url, _guard) = sqlite_store().await;
    let f = fixture(store, url).await;
    let ring = f.open(KeyringSettings::default()).await;
    ring.ensure("pan", KeyKind::Aead).await.unwrap();
    let calls = 200_000u32;
    let started = std::time::Instant::now();
    for _ in 0..calls {
        ring.encryption_key("pan", 1).await.unwrap();
    }
    let per_call = started.elapsed() / calls;
    let rows = f.store.data_key_rows().await.unwrap();
    let uses = rows.iter().find(|r| r.name == "pan").unwrap().uses;
    eprintln!("encryption_key: {per_call:?} per call; {uses} uses reserved in the store");
}

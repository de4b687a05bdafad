//! Keyring unit tests that need no second engine: what `Debug` shows, and KEK file rules.
//! The store-backed behaviour is tested against both engines in `tests/it/keys.rs`.

use super::*;
use crate::config::Argon2Config;
use crate::keys::{aead, kek::Kek, maintenance};
use zeroize::Zeroizing;

#[tokio::test]
async fn debug_prints_no_material() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/k.db", dir.path().display()))
        .await
        .unwrap();
    let material = KekMaterial::Raw(Zeroizing::new([7u8; aead::KEY_LEN]));
    maintenance::init(&store, &material, Argon2Config::default())
        .await
        .unwrap();
    let ring = Keyring::open(store, &material, KeyringSettings::default())
        .await
        .unwrap();
    let key = ring.ensure("email", KeyKind::Siv).await.unwrap();
    let subject = ring.subject_key("cust-42", KeyKind::Aead).await.unwrap();
    let kek = Kek::derive(&material, &crate::keys::kek::Kdf::None).unwrap();
    let shown = format!("{ring:?} {key:?} {subject:?} {kek:?} {:?}", material);
    for secret in [key.secret(), subject.secret(), &[7u8; 32][..]] {
        for window in secret.windows(4) {
            assert!(!shown.contains(&format!("{window:?}")[1..12]), "{shown}");
        }
    }
    assert!(!shown.contains("cust-42"), "{shown}");
    assert!(
        shown.contains("Kek(..)") && shown.contains("Raw(..)"),
        "{shown}"
    );
}

#[test]
fn kek_files_must_be_private_and_well_formed() {
    use crate::config::KekSource;
    use crate::keys::kek::read_material;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let hex_newline = format!("{hex}\n");
    let not_hex = hex.replace('0', "g");
    // (file contents, mode, passphrase?, expected error fragment or "" for success)
    let cases: &[(&[u8], u32, bool, &str)] = &[
        (&[5u8; 32], 0o600, false, ""),
        (hex.as_bytes(), 0o400, false, ""),
        (hex_newline.as_bytes(), 0o600, false, ""),
        (&[5u8; 31], 0o600, false, "32 raw bytes or 64 hex digits"),
        (
            &hex.as_bytes()[..62],
            0o600,
            false,
            "32 raw bytes or 64 hex digits",
        ),
        (
            not_hex.as_bytes(),
            0o600,
            false,
            "32 raw bytes or 64 hex digits",
        ),
        (
            &[5u8; 32],
            0o640,
            false,
            "readable or writable by group or others",
        ),
        (
            &[5u8; 32],
            0o604,
            false,
            "readable or writable by group or others",
        ),
        (b"a good passphrase\n", 0o600, true, ""),
        (b"a good passphrase\n", 0o644, true, "chmod 600"),
        (b"\n", 0o600, true, "empty"),
    ];
    for (i, (contents, mode, is_phrase, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("kek-{i}"));
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        let source = if *is_phrase {
            KekSource::PassphraseFile { path }
        } else {
            KekSource::KeyFile { path }
        };
        match (read_material(&source), expected.is_empty()) {
            (Ok(_), true) => {}
            (Err(e), false) => assert!(e.to_string().contains(expected), "case {i}: {e}"),
            (Ok(_), false) => panic!("case {i}: accepted"),
            (Err(e), true) => panic!("case {i}: {e}"),
        }
    }
    let KekMaterial::Raw(key) = read_material(&KekSource::KeyFile {
        path: dir.path().join("kek-1"),
    })
    .unwrap() else {
        panic!("raw expected")
    };
    assert_eq!(key[1], 0x11);
    assert_eq!(key[31], 0xff);
}

#[test]
fn passphrases_come_from_an_inherited_descriptor_or_the_environment() {
    use crate::config::KekSource;
    use crate::keys::kek::read_material;
    use std::io::{Seek, Write};
    use std::os::fd::AsRawFd;
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(b"passphrase from fd 3\nignored").unwrap();
    file.rewind().unwrap();
    let fd = u32::try_from(file.as_raw_fd()).unwrap();
    let KekMaterial::Passphrase(p) = read_material(&KekSource::PassphraseFd { fd }).unwrap() else {
        panic!("passphrase expected")
    };
    assert_eq!(p.as_str(), "passphrase from fd 3");
    let missing = KekSource::PassphraseEnv {
        var: "PRIVGATE_TEST_UNSET_PASSPHRASE".into(),
    };
    assert!(read_material(&missing)
        .unwrap_err()
        .to_string()
        .contains("is not set"));
}

//! `privgate keys` driven through the real binary against a SQLite store, with a passphrase
//! KEK (real Argon2id parameters).

use crate::harness::privgate;
use sqlx::Connection;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const PASSPHRASE: &str = "correct horse battery staple";

/// Runs `privgate keys ...`: success, and stdout on success or stderr on failure.
fn keys(config: &Path, args: &[&str]) -> (bool, String) {
    let mut all: Vec<&std::ffi::OsStr> =
        vec!["keys".as_ref(), "--config".as_ref(), config.as_os_str()];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    let run = privgate(all);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    (run.ok, if run.ok { run.stdout } else { run.stderr })
}

fn write_secret(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A config in `dir` with its own SQLite store and a passphrase file KEK.
fn setup(dir: &Path) -> PathBuf {
    write_secret(
        &dir.join("kek-passphrase"),
        &format!("{PASSPHRASE}\n"),
        0o600,
    );
    let path = dir.join("privgate.toml");
    std::fs::write(
        &path,
        "[[listener]]\nname = \"public\"\naddress = \"127.0.0.1:0\"\ncert = \"s.pem\"\nkey = \"s.key.pem\"\n\n\
         [keys]\nkek = { source = \"passphrase_file\", path = \"kek-passphrase\" }\n",
    )
    .unwrap();
    path
}

fn expect(config: &Path, args: &[&str], ok: bool, fragment: &str) -> String {
    let (done, out) = keys(config, args);
    assert_eq!(done, ok, "{args:?}: {out}");
    assert!(
        out.contains(fragment),
        "{args:?}: expected `{fragment}` in {out}"
    );
    out
}

#[test]
fn keys_cli_manages_the_keyring_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    expect(&config, &["list"], false, "privgate keys init");
    expect(&config, &["init"], true, "created");
    expect(&config, &["init"], false, "already holds a keyring");
    expect(
        &config,
        &["create", "pan", "--kind", "aead"],
        true,
        "pan (aead) at v1",
    );
    expect(
        &config,
        &["create", "email", "--kind", "siv"],
        true,
        "at v1",
    );
    expect(
        &config,
        &["create", "pan", "--kind", "siv"],
        false,
        "is a Aead key",
    );
    expect(&config, &["rotate", "pan"], true, "new encryptions use v2");
    expect(&config, &["rotate", "nope"], false, "unknown key nope");
    expect(
        &config,
        &["retire", "pan", "--min-version", "3"],
        false,
        "would retire every version",
    );
    expect(
        &config,
        &["retire", "pan", "--min-version", "2"],
        true,
        "1 version(s) below v2 retired",
    );
    let listed = expect(&config, &["list"], true, "Argon2id m=65536 KiB, t=3, p=1");
    let line = |name: &str, version: &str| {
        listed
            .lines()
            .find(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.first() == Some(&name) && w.get(2) == Some(&version)
            })
            .unwrap_or_else(|| panic!("no {name} v{version} in {listed}"))
            .to_owned()
    };
    assert!(line("pan", "1").contains("retired"), "{listed}");
    assert!(line("pan", "2").contains("active"), "{listed}");
    assert!(line("email", "1").contains("siv"), "{listed}");
    assert!(!listed.contains("_subject_index"), "{listed}");
    expect(
        &config,
        &["shred", "--subject", "cust-42"],
        true,
        "keys destroyed",
    );
    expect(
        &config,
        &["shred", "--subject", "cust-42"],
        true,
        "already shredded",
    );
    let listed = expect(&config, &["list"], true, "shredded subjects: 1");
    // Direct runs are recorded like approved requests: by this account, executed, and
    // without the subject's id in the listing.
    let operations = privgate(["admin", "--config", config.to_str().unwrap(), "list"]);
    assert!(operations.ok, "{}", operations.stderr);
    let shreds: Vec<&str> = operations
        .stdout
        .lines()
        .filter(|l| l.contains("keys:shred"))
        .collect();
    assert_eq!(shreds.len(), 2, "{}", operations.stdout);
    assert!(
        shreds
            .iter()
            .all(|l| l.contains("executed") && l.contains("host-uid:")),
        "{}",
        operations.stdout
    );
    assert!(
        operations.stdout.contains("keys:retire"),
        "{}",
        operations.stdout
    );
    assert!(
        !operations.stdout.contains("cust-42"),
        "{}",
        operations.stdout
    );

    // Backup: mode 0600, never overwritten, no plain material or subject ids.
    let backup = dir.path().join("keyring.backup");
    let backup_arg = backup.to_str().unwrap();
    expect(
        &config,
        &["backup", "--out", backup_arg],
        true,
        "written to",
    );
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&backup).unwrap();
    assert!(
        !text.contains(PASSPHRASE) && !text.contains("cust-42") && text.contains("check_value")
    );
    expect(
        &config,
        &["backup", "--out", backup_arg],
        false,
        "cannot write the backup",
    );

    // Restore on a new machine's empty store with the same passphrase.
    let other = tempfile::tempdir().unwrap();
    let restored = setup(other.path());
    write_secret(
        &other.path().join("kek-passphrase"),
        "not the passphrase\n",
        0o600,
    );
    expect(
        &restored,
        &["restore", "--in", backup_arg],
        false,
        "wrong passphrase or different keyring",
    );
    expect(&restored, &["list"], false, "privgate keys init");
    write_secret(&other.path().join("kek-passphrase"), PASSPHRASE, 0o600);
    expect(
        &restored,
        &["restore", "--in", backup_arg],
        true,
        "restored keyring",
    );
    let relisted = expect(&restored, &["list"], true, "shredded subjects: 1");
    assert_eq!(
        relisted.lines().skip(1).collect::<Vec<_>>(),
        listed.lines().skip(1).collect::<Vec<_>>()
    );
    expect(
        &restored,
        &["restore", "--in", backup_arg],
        false,
        "--force",
    );
    expect(
        &restored,
        &["restore", "--in", backup_arg, "--force"],
        true,
        "restored keyring",
    );

    // Rewrap under a new passphrase: the old one stops working, the keys stay.
    let new_pass = dir.path().join("new-passphrase");
    write_secret(&new_pass, "a completely new passphrase\n", 0o600);
    expect(
        &config,
        &[
            "rewrap",
            "--new-passphrase-file",
            new_pass.to_str().unwrap(),
        ],
        true,
        "rewrapped 4 data key version(s)",
    );
    expect(
        &config,
        &["rotate", "pan"],
        false,
        "wrong passphrase or different keyring",
    );
    std::fs::copy(&new_pass, dir.path().join("kek-passphrase")).unwrap();
    expect(&config, &["rotate", "pan"], true, "v3");
    write_secret(&new_pass, "short\n", 0o600);
    expect(
        &config,
        &[
            "rewrap",
            "--new-passphrase-file",
            new_pass.to_str().unwrap(),
        ],
        false,
        "at least 12 characters",
    );
}

#[test]
fn keys_cli_refuses_unsafe_or_broken_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    std::fs::set_permissions(
        dir.path().join("kek-passphrase"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    expect(&config, &["init"], false, "chmod 600");
    std::fs::set_permissions(
        dir.path().join("kek-passphrase"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    expect(&config, &["init"], true, "created");
    expect(&config, &["create", "pan", "--kind", "aead"], true, "v1");

    // A wrapped key modified in the store: refused, clearly, without a panic.
    let url = format!("sqlite://{}/privgate.db", dir.path().display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(
                "UPDATE data_keys SET wrapped = 'AAAA' || substr(wrapped, 5) WHERE name = 'pan'",
            )
            .execute(&mut conn)
            .await
            .unwrap();
        });
    expect(
        &config,
        &["rotate", "pan"],
        false,
        "keyring corrupted: key pan v1 does not unwrap",
    );
    let backup = dir.path().join("b");
    expect(
        &config,
        &["backup", "--out", backup.to_str().unwrap()],
        false,
        "keyring corrupted",
    );
    assert!(!backup.exists());

    // A config without [keys] says what is missing.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .split("[keys]")
            .next()
            .unwrap(),
    )
    .unwrap();
    expect(&config, &["list"], false, "no [keys] section");
}

#[test]
fn passphrase_from_the_environment_works_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "{ source = \"passphrase_file\", path = \"kek-passphrase\" }",
        "{ source = \"passphrase_env\", var = \"PRIVGATE_TEST_KEK\" }",
    );
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_privgate"))
        .args(["keys", "--config"])
        .arg(&config)
        .arg("init")
        .env("PRIVGATE_TEST_KEK", PASSPHRASE)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains("other local processes"), "{all}");
    assert!(!all.contains(PASSPHRASE), "{all}");
}

//! A PKCS#11 KEK on SoftHSM2, through the real binary. Needs the `softhsm2` package; with
//! `PRIVGATE_REQUIRE_SOFTHSM=1` (as in CI) its absence fails the test, otherwise the test
//! says plainly that it did not run.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const MODULES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

fn softhsm() -> Option<&'static str> {
    let found = MODULES.iter().copied().find(|m| Path::new(m).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("PRIVGATE_REQUIRE_SOFTHSM").is_none(),
            "PRIVGATE_REQUIRE_SOFTHSM is set but SoftHSM2 is not installed"
        );
        eprintln!("PKCS#11 test did NOT run: install softhsm2 to run it");
    }
    found
}

struct Token {
    conf: PathBuf,
    config: PathBuf,
}

impl Token {
    /// A fresh SoftHSM2 token directory and a privgate config using it.
    fn new(dir: &Path, module: &str) -> Self {
        std::fs::create_dir(dir.join("tokens")).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .unwrap();
        let init = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                "privgate",
                "--pin",
                "1234",
                "--so-pin",
                "5678",
            ])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let pin = dir.join("pin");
        std::fs::write(&pin, "1234\n").unwrap();
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = dir.join("privgate.toml");
        std::fs::write(
            &config,
            format!(
                "[[listener]]\nname = \"public\"\naddress = \"127.0.0.1:0\"\ncert = \"s.pem\"\nkey = \"s.key.pem\"\n\n\
                 [keys]\nkek = {{ source = \"pkcs11\", module = \"{module}\", token_label = \"privgate\", key_label = \"privgate-kek\", pin_file = \"pin\" }}\n"
            ),
        )
        .unwrap();
        Self { conf, config }
    }

    fn keys(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_privgate"))
            .args(["keys", "--config"])
            .arg(&self.config)
            .args(args)
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        let ok = out.status.success();
        (
            ok,
            if ok {
                String::from_utf8_lossy(&out.stdout).into_owned()
            } else {
                stderr
            },
        )
    }

    fn expect(&self, args: &[&str], ok: bool, fragment: &str) {
        let (done, out) = self.keys(args);
        assert_eq!(done, ok, "{args:?}: {out}");
        assert!(
            out.contains(fragment),
            "{args:?}: expected `{fragment}` in {out}"
        );
    }
}

#[test]
fn pkcs11_kek_wraps_inside_softhsm() {
    let Some(module) = softhsm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let token = Token::new(dir.path(), module);
    token.expect(
        &["init"],
        false,
        "expected one AES key labelled `privgate-kek`",
    );
    token.expect(&["hsm-keygen"], true, "not extractable");
    token.expect(&["hsm-keygen"], false, "exists already");
    token.expect(&["init"], true, "created");
    token.expect(&["create", "pan", "--kind", "aead"], true, "v1");
    token.expect(&["rotate", "pan"], true, "v2");
    token.expect(&["shred", "--subject", "cust-42"], true, "destroyed");
    token.expect(&["list"], true, "KEK: PKCS#11 key `privgate-kek`");
    let backup = dir.path().join("backup");
    token.expect(
        &["backup", "--out", backup.to_str().unwrap()],
        true,
        "written",
    );

    // A second key in the module is not the keyring's KEK.
    let text = std::fs::read_to_string(&token.config).unwrap();
    std::fs::write(&token.config, text.replace("privgate-kek", "other-kek")).unwrap();
    token.expect(&["hsm-keygen"], true, "generated");
    token.expect(
        &["rotate", "pan"],
        false,
        "this keyring's KEK is PKCS#11 key `privgate-kek`",
    );
    std::fs::write(&token.config, &text).unwrap();

    std::fs::write(dir.path().join("pin"), "9999\n").unwrap();
    token.expect(&["rotate", "pan"], false, "login refused");

    // Move a passphrase keyring into the HSM with rewrap --new-config.
    let other = tempfile::tempdir().unwrap();
    let pass = other.path().join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let phrase_config = other.path().join("privgate.toml");
    let store = format!(
        "[store]\nurl = \"sqlite://{}/p.db\"\n",
        other.path().display()
    );
    let listener = text.split("[keys]").next().unwrap();
    std::fs::write(
        &phrase_config,
        format!(
            "{listener}{store}[keys]\nkek = {{ source = \"passphrase_file\", path = \"pass\" }}\n"
        ),
    )
    .unwrap();
    let phrase = Token {
        conf: token.conf.clone(),
        config: phrase_config,
    };
    std::fs::write(dir.path().join("pin"), "1234\n").unwrap();
    phrase.expect(&["init"], true, "created");
    phrase.expect(&["create", "iban", "--kind", "ff1"], true, "v1");
    phrase.expect(
        &["rewrap", "--new-config", token.config.to_str().unwrap()],
        true,
        "rewrapped 2",
    );
    phrase.expect(
        &["rotate", "iban"],
        false,
        "this keyring's KEK is PKCS#11 key `privgate-kek`",
    );
    let moved = Token {
        conf: token.conf.clone(),
        config: other.path().join("hsm.toml"),
    };
    std::fs::write(
        &moved.config,
        text.replace("[keys]", &format!("{store}[keys]")).replace(
            "pin_file = \"pin\"",
            &format!("pin_file = \"{}\"", dir.path().join("pin").display()),
        ),
    )
    .unwrap();
    moved.expect(&["rotate", "iban"], true, "v2");
}

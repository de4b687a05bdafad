//! `privgate consent` against a real store: SQLite by default, PostgreSQL through a
//! password file when available.

use crate::harness::privgate;
use crate::store::postgres_store;
use std::path::Path;

/// Runs `privgate consent ...`: success, and stdout on success or stderr on failure.
fn consent(config: &Path, args: &[&str]) -> (bool, String) {
    let mut all: Vec<&std::ffi::OsStr> =
        vec!["consent".as_ref(), "--config".as_ref(), config.as_os_str()];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    let run = privgate(all);
    (run.ok, if run.ok { run.stdout } else { run.stderr })
}

fn words(line: &str) -> Vec<&str> {
    line.split(' ').collect()
}

fn write_config(dir: &Path, store: &str) -> std::path::PathBuf {
    let path = dir.join("privgate.toml");
    let text = format!(
        "[[listener]]\nname = \"public\"\naddress = \"127.0.0.1:0\"\ncert = \"s.pem\"\nkey = \"s.key.pem\"\n\n{store}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn grant_show_list_revoke(config: &Path) {
    let (ok, id) = consent(config, &words("grant --subject cust-42 --grantee partner-app --purpose account_information --permission ReadPAN --expires-in 90days"));
    assert!(ok, "{id}");
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 36, "{id}");

    let (ok, shown) = consent(config, &["show", &id]);
    assert!(ok, "{shown}");
    let record: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(record["status"], "Authorised");
    assert_eq!(record["permissions"], serde_json::json!(["ReadPAN"]));
    assert!(
        record["expires_at"].as_i64().unwrap()
            > record["granted_at"].as_i64().unwrap() + 89 * 86_400_000
    );

    let (ok, listed) = consent(config, &["list", "--subject", "cust-42"]);
    assert!(
        ok && listed.contains(&id) && listed.contains("Authorised"),
        "{listed}"
    );
    let (_, other) = consent(config, &["list", "--subject", "cust-7"]);
    assert!(!other.contains(&id), "{other}");

    let (ok, out) = consent(config, &["revoke", &id]);
    assert!(ok && out.contains("revoked"), "{out}");
    let (_, shown) = consent(config, &["show", &id]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&shown).unwrap()["status"],
        "Revoked"
    );
    let (ok, out) = consent(config, &["revoke", &id]);
    assert!(ok && out.contains("already revoked"), "{out}");
    let (ok, out) = consent(config, &["revoke", "no-such-id"]);
    assert!(!ok && out.contains("no consent with id"), "{out}");

    let (ok, out) = consent(config, &words("grant --subject cust-42 --grantee partner-app --purpose marketing --permission ReadEverything"));
    assert!(
        !ok && out.contains("entry 1 is not one of") && !out.contains("ReadEverything"),
        "{out}"
    );
}

#[test]
fn consent_cli_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    grant_show_list_revoke(&config);
    assert!(
        dir.path().join("privgate.db").exists(),
        "default store is a SQLite file beside the config"
    );
}

#[tokio::test]
async fn consent_cli_on_postgres_with_a_password_file() {
    let Some((_store, url, guard)) = postgres_store().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut parsed = url::Url::parse(&url).unwrap();
    let password = parsed.password().unwrap_or("").to_owned();
    parsed.set_password(None).unwrap();
    std::fs::write(dir.path().join("pg-password"), format!("{password}\n")).unwrap();
    let config = write_config(
        dir.path(),
        &format!("[store]\nurl = \"{parsed}\"\npassword_file = \"pg-password\""),
    );
    tokio::task::spawn_blocking(move || grant_show_list_revoke(&config))
        .await
        .unwrap();

    // A password in the URL itself is refused, before any connection.
    let config = write_config(dir.path(), &format!("[store]\nurl = \"{url}\""));
    let (ok, out) = consent(&config, &["list"]);
    assert!(
        !ok && out.contains("must not contain a password")
            && !out.contains(&format!(":{password}@")),
        "{out}"
    );
    drop(guard);
}

/// A consent is looked up by the route's one spelling of the subject id, so a grant in
/// another spelling would be stored and never match: it is refused, and nothing is stored.
#[test]
fn consents_are_granted_only_to_ids_as_the_routes_spell_them() {
    let dir = tempfile::tempdir().unwrap();
    let routes = "[upstream.core]\nurl = \"http://127.0.0.1:9\"\n\n[[route]]\nname = \"customers\"\npath_prefix = \"/customers\"\nupstream = \"core\"\naction = \"customers:read\"\nsubject = { from = \"path\", id = \"integer\" }\n\n[policy]\ndir = \"policies\"\n";
    let config = write_config(dir.path(), routes);
    let grant = |subject: &str| {
        consent(
            &config,
            &[
                "grant",
                "--subject",
                subject,
                "--grantee",
                "partner-app",
                "--purpose",
                "account_information",
                "--permission",
                "ReadPAN",
            ],
        )
    };
    for other in ["042", "+42", "42 ", "４２", "cust-42", "1.0"] {
        let (ok, out) = grant(other);
        assert!(!ok, "{other:?} was granted");
        assert!(out.contains("as the routes spell subject ids"), "{out}");
        assert!(
            !out.contains(other.trim()) || other.trim().is_empty(),
            "{out}"
        );
    }
    let (ok, listed) = consent(&config, &["list"]);
    assert!(ok && !listed.contains("partner-app"), "{listed}");
    let (ok, id) = grant("42");
    assert!(ok, "{id}");
    let (ok, listed) = consent(&config, &["list", "--subject", "42"]);
    assert!(ok && listed.contains(id.trim()), "{listed}");
}

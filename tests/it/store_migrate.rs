//! Schema migrations through sqlx's migrator: a store made by the former runner (fixtures
//! dumped from databases main's code made, with a consent in them) is taken over and
//! upgraded; `privgate store migrate` applies the schema; with `[store] migrate = false` the
//! gateway and the CLI only check it, refuse an unmigrated store with a clear error, and
//! run as a PostgreSQL role that may not create anything.

use crate::harness::*;
use crate::store::postgres_database;
use sqlx::Connection;
use std::path::{Path, PathBuf};

/// The consent the fixtures hold (granted by main's binary before the dump).
const LEGACY_SUBJECT: &str = "cust-legacy";

fn write_config(dir: &Path, store: &str) -> PathBuf {
    let path = dir.join("privgate.toml");
    let text = format!(
        "[[listener]]\nname = \"public\"\naddress = \"127.0.0.1:0\"\ncert = \"s.pem\"\nkey = \"s.key.pem\"\n\n[store]\n{store}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn cli(config: &Path, args: &[&str]) -> CliRun {
    let mut all = vec![args[0], "--config", config.to_str().unwrap()];
    all.extend_from_slice(&args[1..]);
    privgate(all)
}

/// `(url without password, [store] lines with a password file)` for a PostgreSQL URL.
fn postgres_section(dir: &Path, url: &str, extra: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let file = dir.join(format!("{}.password", parsed.username()));
    std::fs::write(&file, format!("{}\n", parsed.password().unwrap_or(""))).unwrap();
    parsed.set_password(None).unwrap();
    format!(
        "url = \"{parsed}\"\npassword_file = \"{}\"\n{extra}",
        file.display()
    )
}

#[tokio::test]
async fn a_sqlite_store_made_by_the_former_runner_is_taken_over_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("legacy.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(include_str!("fixtures/legacy_store.sqlite.sql"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let config = write_config(dir.path(), &format!("url = \"sqlite://{}\"", db.display()));

    // With migrate = false the old schema is refused, not guessed at.
    let checked = write_config(
        dir.path(),
        &format!("url = \"sqlite://{}\"\nmigrate = false", db.display()),
    );
    let refused = cli(&checked, &["consent", "list"]);
    assert!(
        !refused.ok && refused.stderr.contains("privgate store migrate"),
        "{}",
        refused.all()
    );

    let migrated = cli(&config, &["store", "migrate"]);
    assert!(migrated.ok, "{}", migrated.all());
    let listed = cli(&checked, &["consent", "list"]);
    assert!(
        listed.ok && listed.stdout.contains(LEGACY_SUBJECT),
        "{}",
        listed.all()
    );

    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let versions: Vec<(i64,)> =
        sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions.len(), 12, "{versions:?}");
    let legacy: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM sqlite_master WHERE name = 'privgate_migrations'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(legacy.0, 0, "the former version table is gone");
}

#[tokio::test]
async fn postgres_legacy_store_upgrades_and_a_role_without_ddl_rights_runs_the_gateway() {
    let Some((url, _guard)) = postgres_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut owner = sqlx::PgConnection::connect(&url).await.unwrap();
    // A role that may connect and use the tables, and create nothing (PostgreSQL 15 gives
    // PUBLIC no CREATE on the public schema).
    // CI's role may create roles (`.ci/run` gives it CREATEROLE for this test).
    let role = format!("privgate_rt_{}", uuid::Uuid::new_v4().simple());
    let database = url.rsplit('/').next().unwrap().to_owned();
    for statement in [
        format!("CREATE ROLE {role} LOGIN PASSWORD 'runtime-pw'"),
        format!("GRANT CONNECT ON DATABASE \"{database}\" TO {role}"),
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned(),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
    ] {
        sqlx::raw_sql(&statement).execute(&mut owner).await.unwrap();
    }
    let mut runtime_url = url::Url::parse(&url).unwrap();
    runtime_url.set_username(&role).unwrap();
    runtime_url.set_password(Some("runtime-pw")).unwrap();
    let runtime = write_config(
        dir.path(),
        &postgres_section(dir.path(), runtime_url.as_str(), "migrate = false"),
    );

    // An empty database: refused with the way out named.
    let refused = cli(&runtime, &["consent", "list"]);
    assert!(
        !refused.ok
            && refused.stderr.contains("not this version's")
            && refused.stderr.contains("privgate store migrate"),
        "{}",
        refused.all()
    );
    // The runtime role cannot migrate it itself.
    let dir2 = tempfile::tempdir().unwrap();
    let runtime_migrating = write_config(
        dir2.path(),
        &postgres_section(dir2.path(), runtime_url.as_str(), ""),
    );
    let denied = cli(&runtime_migrating, &["store", "migrate"]);
    assert!(
        !denied.ok && denied.all().contains("permission denied"),
        "{}",
        denied.all()
    );

    // Main's schema and data, then `store migrate` as the owner.
    sqlx::raw_sql(include_str!("fixtures/legacy_store.postgres.sql"))
        .execute(&mut owner)
        .await
        .unwrap();
    owner.close().await.unwrap();
    let dir3 = tempfile::tempdir().unwrap();
    let admin = write_config(dir3.path(), &postgres_section(dir3.path(), &url, ""));
    let migrated = cli(&admin, &["store", "migrate"]);
    assert!(migrated.ok, "{}", migrated.all());
    let again = cli(&admin, &["store", "migrate"]);
    assert!(again.ok, "{}", again.all());

    // The runtime role, given the tables' rows but no DDL, reads and writes through it.
    let mut owner = sqlx::PgConnection::connect(&url).await.unwrap();
    for statement in [
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"),
    ] {
        sqlx::raw_sql(&statement).execute(&mut owner).await.unwrap();
    }
    let listed = cli(&runtime, &["consent", "list"]);
    assert!(
        listed.ok && listed.stdout.contains(LEGACY_SUBJECT),
        "{}",
        listed.all()
    );
    let granted = cli(
        &runtime,
        &[
            "consent",
            "grant",
            "--subject",
            "cust-new",
            "--grantee",
            "partner-app",
            "--purpose",
            "marketing",
            "--permission",
            "ReadPAN",
        ],
    );
    assert!(granted.ok, "{}", granted.all());
    let legacy: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'privgate_migrations'",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(legacy.0, 0, "the former version table is gone");
    // The role goes with its grants (the database itself is dropped with the guard).
    sqlx::raw_sql(&format!(
        "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}; \
         REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}; \
         REVOKE ALL ON SCHEMA public FROM {role}; \
         REVOKE ALL ON DATABASE \"{database}\" FROM {role}; \
         DROP ROLE {role}"
    ))
    .execute(&mut owner)
    .await
    .unwrap();
}

/// Processes starting at once on a fresh SQLite file (no advisory lock there): every one
/// opens it, whichever applied each migration.
#[test]
fn processes_racing_to_migrate_a_fresh_sqlite_store_all_open() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(
            dir.path(),
            &format!("url = \"sqlite://{}/race.db\"", dir.path().display()),
        );
        let children: Vec<_> = (0..6)
            .map(|_| {
                std::process::Command::new(BIN)
                    .args(["consent", "--config", config.to_str().unwrap(), "list"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// `privgate serve` with `migrate = false` on an unmigrated store exits at once, saying so.
#[tokio::test]
async fn serve_refuses_an_unmigrated_store_when_it_may_not_migrate() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let extra = format!(
        "{}\n[store]\nurl = \"sqlite://{}\"\nmigrate = false\n",
        decided_customers(""),
        ws.path("fresh.db").display()
    );
    let path = ws.write(
        "privgate.toml",
        &without_plain_routes(config(&ws, up.addr, "", &extra)),
    );
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("serve started on an unmigrated store");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("privgate store migrate"), "{stderr}");
}

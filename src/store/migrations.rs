//! Schema migrations, embedded in the binary and applied by sqlx's migrator
//! (`sqlx::migrate::Migrator`, its `_sqlx_migrations` table: version, checksum, time). One
//! SQL file serves both engines while their SQL agrees (SQLite gives `BIGINT` columns integer
//! affinity); a migration whose SQL must differ gets a second file
//! (`NNNN_name.postgres.sql`) named in `postgres_sql`.
//!
//! The migrator runs each migration in one transaction with its row, so a crash never leaves
//! a half-applied schema; on PostgreSQL it serialises concurrent replicas with an advisory
//! lock. SQLite has no such lock: a replica that loses the race to apply a migration fails
//! on a table the winner made, and runs again once the winner's commit is visible.
//!
//! Databases made before the migrator kept their versions in `privgate_migrations`: on the
//! first run those rows become the migrator's own (same versions, the embedded files'
//! checksums; the files never changed), in one transaction that also drops the old table.
//!
//! With `[store] migrate = false` the gateway applies nothing: it only checks that every
//! migration it embeds is applied, and refuses to start otherwise (`privgate store migrate`
//! applies them, as a role with DDL rights), so its own role needs none.

use super::{Engine, Store, StoreError};
use futures_util::future::BoxFuture;
use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationSource, MigrationType, Migrator};
use sqlx::Row;
use std::borrow::Cow;

struct EmbeddedMigration {
    version: i64,
    name: &'static str,
    sql: &'static str,
    /// PostgreSQL's own SQL where it must differ from `sql`.
    postgres_sql: Option<&'static str>,
}

impl EmbeddedMigration {
    fn sql_for(&self, engine: Engine) -> &'static str {
        match (engine, self.postgres_sql) {
            (Engine::Postgres, Some(sql)) => sql,
            _ => self.sql,
        }
    }
}

const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        name: "consent",
        sql: include_str!("migrations/0001_consent.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 2,
        name: "keys",
        sql: include_str!("migrations/0002_keys.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 3,
        name: "token_revocations",
        sql: include_str!("migrations/0003_token_revocations.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 4,
        name: "totp_apikeys",
        sql: include_str!("migrations/0004_totp_apikeys.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 5,
        name: "approvals",
        sql: include_str!("migrations/0005_approvals.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 6,
        name: "dp_budget",
        sql: include_str!("migrations/0006_dp_budget.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 7,
        name: "fhe",
        sql: include_str!("migrations/0007_fhe.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 8,
        name: "dp_delta",
        sql: include_str!("migrations/0008_dp_delta.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 9,
        name: "totp_pending_session",
        sql: include_str!("migrations/0009_totp_pending_session.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 10,
        name: "token_counter",
        sql: include_str!("migrations/0010_token_counter.sql"),
        postgres_sql: Some(include_str!("migrations/0010_token_counter.postgres.sql")),
    },
    EmbeddedMigration {
        version: 11,
        name: "risk",
        sql: include_str!("migrations/0011_risk.sql"),
        postgres_sql: None,
    },
    EmbeddedMigration {
        version: 12,
        name: "console_sessions",
        sql: include_str!("migrations/0012_console_sessions.sql"),
        postgres_sql: None,
    },
];

/// How a store's schema is brought to this binary's version when it opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    /// Apply what is pending (needs a role that may create tables).
    Migrate,
    /// Apply nothing; refuse a store that is not fully migrated.
    Check,
}

/// Arbitrary constant naming privgate's lock among PostgreSQL advisory locks (the old
/// runner's; held while its version table is taken over).
const PG_MIGRATION_LOCK: i64 = 0x7072_6976_6761_7465;

/// Pause before running again after a lost race (times the attempt): the winner's
/// transaction is short (one migration's DDL).
const SQLITE_RACE_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// The embedded migrations in `engine`'s SQL, as sqlx's migrator reads them.
#[derive(Debug)]
struct Embedded(Engine);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async move { Ok(migrations(self.0)) })
    }
}

fn migrations(engine: Engine) -> Vec<Migration> {
    MIGRATIONS
        .iter()
        .map(|m| {
            Migration::new(
                m.version,
                Cow::Borrowed(m.name),
                MigrationType::Simple,
                Cow::Borrowed(m.sql_for(engine)),
                false,
            )
        })
        .collect()
}

/// Brings the store to this binary's schema, or checks that it is there (`schema`).
pub(super) async fn prepare(store: &Store, schema: Schema) -> Result<(), StoreError> {
    match schema {
        Schema::Migrate => apply(store).await,
        Schema::Check => check(store).await,
    }
}

async fn apply(store: &Store) -> Result<(), StoreError> {
    adopt_legacy_versions(store).await?;
    let migrator = Migrator::new(Embedded(store.engine))
        .await
        .map_err(migrate_error)?;
    let mut attempt = 1;
    loop {
        match migrator.run(&store.pool).await {
            Ok(()) => return Ok(()),
            // Lost the race to another process: its migration is committed (or about to be);
            // the next run sees it applied and goes on from there.
            Err(MigrateError::Execute(_) | MigrateError::ExecuteMigration(..))
                // Each lost race means one more migration committed: at most one per migration.
                if store.engine == Engine::Sqlite && attempt <= MIGRATIONS.len() =>
            {
                tokio::time::sleep(SQLITE_RACE_PAUSE * attempt as u32).await;
                attempt += 1;
            }
            Err(e) => return Err(migrate_error(e)),
        }
    }
}

/// Refuses a store that lacks a migration this binary embeds (or has one it does not know).
async fn check(store: &Store) -> Result<(), StoreError> {
    let unmigrated = |what: &str| {
        StoreError::Unavailable(format!(
            "the store's schema is not this version's ({what}); [store] migrate = false \
             applies nothing: run `privgate store migrate --config ...` as a role that may \
             create tables, then start again"
        ))
    };
    let mut conn = store.pool.acquire().await?;
    let applied = match conn.list_applied_migrations().await {
        Ok(applied) => applied,
        Err(_) => return Err(unmigrated("no migration has been applied by this version")),
    };
    let expected = migrations(store.engine);
    for migration in &expected {
        match applied.iter().find(|a| a.version == migration.version) {
            Some(a) if a.checksum == migration.checksum => {}
            Some(_) => {
                return Err(unmigrated(&format!(
                    "migration {} differs from this version's",
                    migration.version
                )))
            }
            None => {
                return Err(unmigrated(&format!(
                    "migration {} ({}) is pending",
                    migration.version, migration.description
                )))
            }
        }
    }
    if let Some(newer) = applied
        .iter()
        .find(|a| !expected.iter().any(|m| m.version == a.version))
    {
        return Err(StoreError::Unavailable(format!(
            "the store has migration {}, which this version does not know: it was migrated by \
             a newer privgate",
            newer.version
        )));
    }
    Ok(())
}

/// Takes over the version table of the runner before sqlx's migrator: each version it
/// recorded becomes a migrator row with the embedded file's checksum, and the old table is
/// dropped, in one transaction (concurrent replicas: the lock, then a second look).
async fn adopt_legacy_versions(store: &Store) -> Result<(), StoreError> {
    let legacy_exists = |sql: &'static str| async move {
        Ok::<_, StoreError>(
            sqlx::query(sql)
                .fetch_one(&store.pool)
                .await?
                .try_get::<i64, _>("n")?
                > 0,
        )
    };
    let exists_sql = match store.engine {
        Engine::Postgres => {
            "SELECT COUNT(*) AS n FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'privgate_migrations'"
        }
        Engine::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master \
             WHERE type = 'table' AND name = 'privgate_migrations'"
        }
    };
    if !legacy_exists(exists_sql).await? {
        return Ok(());
    }
    let mut tx = store.pool.begin().await?;
    match store.engine {
        Engine::Postgres => {
            sqlx::query(&format!(
                "SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})"
            ))
            .execute(&mut *tx)
            .await?;
        }
        Engine::Sqlite => {
            // A write first turns the deferred transaction into the single writer.
            sqlx::query("CREATE TABLE IF NOT EXISTS privgate_adopting (n INTEGER)")
                .execute(&mut *tx)
                .await?;
            sqlx::query("DROP TABLE privgate_adopting")
                .execute(&mut *tx)
                .await?;
        }
    }
    // Another replica may have taken it over while this one waited for the lock.
    let still = sqlx::query(exists_sql)
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>("n")?
        > 0;
    if !still {
        return Ok(());
    }
    (*tx)
        .ensure_migrations_table()
        .await
        .map_err(migrate_error)?;
    let versions: Vec<i64> = sqlx::query("SELECT version FROM privgate_migrations")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>("version"))
        .collect::<Result<_, _>>()?;
    for migration in migrations(store.engine) {
        if !versions.contains(&migration.version) {
            continue;
        }
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, TRUE, $3, 0)",
        )
        .bind(migration.version)
        .bind(migration.description.as_ref())
        .bind(migration.checksum.to_vec())
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DROP TABLE privgate_migrations")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(
        versions = versions.len(),
        "store migrations recorded by the former runner taken over by sqlx's migrator"
    );
    Ok(())
}

fn migrate_error(e: MigrateError) -> StoreError {
    StoreError::Unavailable(format!("store migration failed: {e}"))
}

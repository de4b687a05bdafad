//! Schema migrations, embedded in the binary. One SQL file serves both engines while their
//! SQL agrees (SQLite gives `BIGINT` columns integer affinity); a migration whose SQL must
//! differ gets a second file (`NNNN_name.postgres.sql`) named in `postgres_sql`.
//!
//! Each migration runs in one transaction together with its row in `privgate_migrations`,
//! so a crash never leaves a half-applied schema. Concurrent replicas starting at once are
//! serialised: PostgreSQL by an advisory lock, SQLite by taking the write lock first.

use super::{now_ms, Engine, Store, StoreError};
use sqlx::Row;

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
    /// PostgreSQL's own SQL where it must differ from `sql`.
    postgres_sql: Option<&'static str>,
}

impl Migration {
    fn sql_for(&self, engine: Engine) -> &'static str {
        match (engine, self.postgres_sql) {
            (Engine::Postgres, Some(sql)) => sql,
            _ => self.sql,
        }
    }
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "consent",
        sql: include_str!("migrations/0001_consent.sql"),
        postgres_sql: None,
    },
    Migration {
        version: 2,
        name: "keys",
        sql: include_str!("migrations/0002_keys.sql"),
        postgres_sql: None,
    },
    Migration {
        version: 3,
        name: "token_revocations",
        sql: include_str!("migrations/0003_token_revocations.sql"),
        postgres_sql: None,
    },
    Migration {
        version: 4,
        name: "totp_apikeys",
        sql: include_str!("migrations/0004_totp_apikeys.sql"),
        postgres_sql: None,
    },
    Migration {
        version: 5,
        name: "approvals",
        sql: include_str!("migrations/0005_approvals.sql"),
        postgres_sql: None,
    },
    Migration {
        version: 6,
        name: "dp_budget",
        sql: include_str!("migrations/0006_dp_budget.sql"),
        postgres_sql: None,
    },
    Migration {
        version: 7,
        name: "fhe",
        sql: include_str!("migrations/0007_fhe.sql"),
        postgres_sql: None,
    },
    Migration {
        version: 8,
        name: "dp_delta",
        sql: include_str!("migrations/0008_dp_delta.sql"),
        postgres_sql: None,
    },
    Migration {
        version: 9,
        name: "totp_pending_session",
        sql: include_str!("migrations/0009_totp_pending_session.sql"),
        postgres_sql: None,
    },
    Migration {
        version: 10,
        name: "token_counter",
        sql: include_str!("migrations/0010_token_counter.sql"),
        postgres_sql: Some(include_str!("migrations/0010_token_counter.postgres.sql")),
    },
    Migration {
        version: 11,
        name: "risk",
        sql: include_str!("migrations/0011_risk.sql"),
        postgres_sql: None,
    },
];

/// Arbitrary constant naming privgate's migration lock among PostgreSQL advisory locks.
const PG_MIGRATION_LOCK: i64 = 0x7072_6976_6761_7465;

pub(super) async fn apply(store: &Store) -> Result<(), StoreError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS privgate_migrations \
         (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&store.pool)
    .await?;
    for migration in MIGRATIONS {
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
                sqlx::query("UPDATE privgate_migrations SET name = name WHERE 0")
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let applied =
            sqlx::query("SELECT COUNT(*) AS n FROM privgate_migrations WHERE version = $1")
                .bind(migration.version)
                .fetch_one(&mut *tx)
                .await?
                .try_get::<i64, _>("n")?;
        if applied > 0 {
            continue;
        }
        for statement in statements(migration.sql_for(store.engine)) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO privgate_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "store migration applied"
        );
    }
    Ok(())
}

/// The statements of a migration file. Migration files are ours and keep to one rule:
/// statements end with `;` at the end of a line, and no `;` ends a line inside one.
fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches(';'))
}

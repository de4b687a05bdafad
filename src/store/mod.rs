//! State behind one interface, on two engines: SQLite (default: one file, zero set-up) and
//! PostgreSQL (for several gateway replicas sharing state).
//!
//! One code path serves both through sqlx's `Any` driver; the engines differ only in their
//! migration files. Values are engine-neutral (text, 64-bit integers; times are Unix
//! milliseconds). Writes that guard an invariant are single conditional statements
//! (`UPDATE ... WHERE <guard> RETURNING ...`), atomic on both engines without relying on
//! transaction isolation levels.

mod api_keys;
pub use api_keys::ApiKeyRow;
mod consent;
pub use consent::Revocation;
mod console_sessions;
pub use console_sessions::{ConsoleSessionRow, ConsoleSignInRow, SessionCutoffs, SessionLookup};
mod dp_budget;
mod fresh;
pub use dp_budget::{BudgetDebit, CachedAnswer, DebitOutcome};
mod fhe;
pub use fhe::{AggregateRow, BatchRow, ContributionRow, ContributionWrite};
mod keys;
pub use keys::{
    DataKeyRow, KeyWrite, KeyringRow, KeyringTables, SubjectKeyLookup, SubjectKeyRow, SubjectRow,
};
mod migrations;
pub use migrations::Schema;
mod operations;
pub use operations::{ApprovalInsert, NewOperationRow, OperationRow};
mod risk;
pub use risk::{RiskSliceRow, Suspension};
mod tokens;
pub use tokens::TokenRevocation;
mod totp;
pub use totp::{PendingSession, TotpRow};

use fresh::{Counter, Freshness};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::Executor;
use std::sync::Arc;
use std::time::Duration;

/// Connections per gateway process. SQLite serialises writers anyway; PostgreSQL servers
/// default to 100 connections, so 16 per replica leaves room for several replicas.
const MAX_CONNECTIONS: u32 = 16;

/// How long a request waits for a pooled connection before the store counts as down (and
/// consent-dependent requests fail closed).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// SQLite waits this long for another writer before reporting busy.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// A SQLite connection is closed and opened afresh after this long. A connection that met
/// its files read-only (a file system gone read-only, an immutable file) keeps read-only
/// handles on them and refuses writes after they are writable again: this bounds how long.
/// Such connections still serve reads meanwhile. Opening one costs well under a millisecond.
const SQLITE_MAX_LIFETIME: Duration = Duration::from_secs(10);

/// The database engine behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why a store operation failed. Messages never include credentials from the URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported engine or is malformed.
    #[error("store url: {0}")]
    BadUrl(String),
    /// The database could not be reached or answered with an error.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data does not have the shape the gateway expects.
    #[error("store data invalid: {0}")]
    Invalid(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx errors carry no connection credentials, only server messages and I/O causes.
        StoreError::Unavailable(e.to_string())
    }
}

/// The gateway's persistent state.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    /// Cached deny-list and consent answers; `None`: every read goes to the store.
    fresh: Option<Arc<Freshness>>,
}

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://...`), creating a SQLite file if
    /// needed, and applies pending migrations. Nothing is cached: every read goes to the
    /// store (see [`Store::open_configured`] for the gateway's caches).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_window(url, Duration::ZERO, Schema::Migrate).await
    }

    /// As [`Store::open`], answering token revocation and consent reads from caches that
    /// are at most `revocation_window` stale (see the `fresh` module; zero: no caches).
    /// `schema` says whether pending migrations are applied or refused.
    async fn open_with_window(
        url: &str,
        revocation_window: Duration,
        schema: Schema,
    ) -> Result<Self, StoreError> {
        let engine = engine_of(url)?;
        sqlx::any::install_default_drivers();
        let url = match engine {
            // Create the file on first use; without `mode=rwc` SQLite refuses a missing file.
            Engine::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let max_lifetime = match engine {
            Engine::Sqlite => Some(SQLITE_MAX_LIFETIME),
            // sqlx's default (30 min).
            Engine::Postgres => Some(Duration::from_secs(30 * 60)),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .max_lifetime(max_lifetime)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No ping before each query: a broken connection still fails the query that
            // uses it (and requests that need the store fail closed), and the pool drops it.
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        // WAL: readers do not block the writer. FULL sync: a committed
                        // revocation survives power loss. secure_delete: deleted key material
                        // is overwritten, not left in free pages.
                        conn.execute(
                            format!(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; \
                                 PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};"
                            )
                            .as_str(),
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let fresh = if revocation_window.is_zero() {
            None
        } else {
            let listen = match engine {
                Engine::Postgres => Some(
                    url.parse::<sqlx::postgres::PgConnectOptions>()
                        .map_err(|_| StoreError::BadUrl("not a PostgreSQL URL".into()))?,
                ),
                Engine::Sqlite => None,
            };
            let watcher = fresh::Watcher::new(pool.clone(), listen);
            Some(Freshness::new(revocation_window, watcher))
        };
        let store = Self {
            pool,
            engine,
            fresh,
        };
        migrations::prepare(&store, schema).await?;
        Ok(store)
    }

    /// Opens the store a configuration names, reading the PostgreSQL password from its file;
    /// migrates it unless `[store] migrate = false`, which only checks its schema.
    pub async fn open_configured(config: &crate::config::StoreConfig) -> Result<Self, StoreError> {
        let schema = if config.migrate {
            Schema::Migrate
        } else {
            Schema::Check
        };
        Self::open_configured_as(config, schema).await
    }

    /// [`Store::open_configured`] with the schema handled as `schema` says, whatever the
    /// configuration's `migrate` (`privgate store migrate`).
    pub async fn open_configured_as(
        config: &crate::config::StoreConfig,
        schema: Schema,
    ) -> Result<Self, StoreError> {
        let window = config.revocation_window;
        let Some(file) = &config.password_file else {
            return Self::open_with_window(&config.url, window, schema).await;
        };
        let text = std::fs::read_to_string(file).map_err(|e| {
            StoreError::BadUrl(format!(
                "{}: cannot read password file: {e}",
                file.display()
            ))
        })?;
        let password = zeroize::Zeroizing::new(text.lines().next().unwrap_or("").to_owned());
        let mut url =
            url::Url::parse(&config.url).map_err(|_| StoreError::BadUrl("not a URL".into()))?;
        url.set_password(Some(&password))
            .map_err(|_| StoreError::BadUrl("URL cannot carry a password".into()))?;
        let url = zeroize::Zeroizing::new(url.to_string());
        Self::open_with_window(&url, window, schema).await
    }

    /// Which engine this store runs on.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        if let Some(fresh) = &self.fresh {
            fresh.stop();
        }
        self.pool.close().await;
    }
}

impl Store {
    /// A change to `counter` committed here as `version`: cached answers read before it are
    /// stale from this process's next request on.
    fn committed(&self, counter: Counter, version: i64) {
        if let Some(fresh) = &self.fresh {
            fresh.committed(counter, version);
        }
    }
}

/// Bumps a change counter in the transaction of the change it counts; returns its new
/// version. (On PostgreSQL the bump also notifies listening replicas at commit.)
async fn bump_counter(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    counter: Counter,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "UPDATE change_counters SET version = version + 1 WHERE name = $1 RETURNING version",
    )
    .bind(counter.name())
    .fetch_one(&mut **tx)
    .await?;
    Ok(sqlx::Row::try_get::<i64, _>(&row, "version")?)
}

fn engine_of(url: &str) -> Result<Engine, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Engine::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Engine::Postgres)
    } else {
        Err(StoreError::BadUrl(
            "must start with sqlite: or postgres://".into(),
        ))
    }
}

/// Unix time in milliseconds, the store's time unit.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Store futures must be spawnable on the multi-threaded runtime; this fails to compile
/// if one is not (sqlx's `raw_sql` on a transaction, for one, is not).
#[allow(dead_code)]
fn store_futures_are_send() {
    fn is_send<T: Send>(_: T) {}
    is_send(Store::open(""));
}

//! The change watcher: confirms the change counters by reading them from the store every
//! quarter window (both engines; SQLite has no other way to hear of another process's
//! commit), and on PostgreSQL also listens on channel `privgate_changes`, which every bump
//! notifies at commit, so a change usually holds on every replica within milliseconds.
//!
//! Only the polls confirm (rule 2 of the parent module): a notification only advances a
//! counter. A listener that is down or silently stuck therefore costs promptness, never the
//! bound; a poll that fails or is late lets confirmations age past the window, and reads
//! go to the store.

use super::{Counter, Freshness};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{AnyPool, Row};
use std::sync::Weak;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The channel counter bumps notify (migration 0010).
const CHANNEL: &str = "privgate_changes";

/// The listener's `application_name` in `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "privgate-change-listener";

/// Polls this often within a window, so that a confirmation is always fresh enough even
/// when a poll is slow.
const POLLS_PER_WINDOW: u32 = 4;

/// The shortest poll interval, whatever the window.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// How long the listener waits before connecting again after an error.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Where the watcher reads.
pub(crate) struct Watcher {
    pool: AnyPool,
    /// PostgreSQL only: how to open the listening connection.
    listen: Option<PgConnectOptions>,
}

impl Watcher {
    pub(crate) fn new(pool: AnyPool, listen: Option<PgConnectOptions>) -> Self {
        Self { pool, listen }
    }
}

/// Starts the poller (and the listener on PostgreSQL); both end when `stop` is cancelled or
/// the caches are gone.
pub(super) fn start(fresh: Weak<Freshness>, watcher: &Watcher, stop: &CancellationToken) {
    let Some(window) = fresh.upgrade().map(|f| f.changes.window) else {
        return;
    };
    let interval = (window / POLLS_PER_WINDOW).max(MIN_POLL_INTERVAL);
    tokio::spawn(poll(
        fresh.clone(),
        watcher.pool.clone(),
        interval,
        stop.clone(),
    ));
    if let Some(options) = &watcher.listen {
        let options = options.clone().application_name(LISTENER_APPLICATION_NAME);
        tokio::spawn(listen(fresh, options, stop.clone()));
    }
}

async fn poll(fresh: Weak<Freshness>, pool: AnyPool, interval: Duration, stop: CancellationToken) {
    let mut failing = false;
    loop {
        let Some(cache) = fresh.upgrade() else { return };
        let started = Instant::now();
        match read_counters(&pool).await {
            Ok(counters) => {
                if failing {
                    tracing::info!("store change counters readable again; caches in use");
                    failing = false;
                }
                for (counter, version) in counters {
                    cache.changes.confirmed(counter, version, started);
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "store change counters unreadable; reading the store on every request");
            }
            Err(_) => {}
        }
        drop(cache);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

async fn read_counters(pool: &AnyPool) -> Result<Vec<(Counter, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT name, version FROM change_counters WHERE name IN ('consent', 'tokens')",
    )
    .fetch_all(pool)
    .await?;
    let mut counters = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get("name")?;
        if let Some(counter) = Counter::from_name(&name) {
            counters.push((counter, row.try_get("version")?));
        }
    }
    Ok(counters)
}

async fn listen(fresh: Weak<Freshness>, options: PgConnectOptions, stop: CancellationToken) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options);
    let mut listener = None;
    loop {
        if fresh.strong_count() == 0 {
            return;
        }
        let next = async {
            if listener.is_none() {
                let mut l = PgListener::connect_with(&pool).await?;
                l.listen(CHANNEL).await?;
                listener = Some(l);
            }
            match listener.as_mut() {
                Some(l) => l.try_recv().await,
                None => Ok::<_, sqlx::Error>(None),
            }
        };
        let next = tokio::select! {
            () = stop.cancelled() => return,
            next = next => next,
        };
        match next {
            Ok(Some(notification)) => {
                let Some(cache) = fresh.upgrade() else { return };
                if let Some((counter, version)) = parse(notification.payload()) {
                    cache.changes.advanced(counter, version);
                }
            }
            // Connection lost: the listener connects again on the next call; notifications
            // in between are lost, and the polls cover them.
            Ok(None) => tracing::warn!("store change listener disconnected; reconnecting"),
            Err(e) => {
                tracing::warn!(error = %e, "store change listener failed; polls alone keep caches fresh");
                listener = None;
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(LISTEN_RETRY) => {}
                }
            }
        }
    }
}

/// A notification payload, `name:version`.
pub(super) fn parse(payload: &str) -> Option<(Counter, i64)> {
    let (name, version) = payload.split_once(':')?;
    Some((Counter::from_name(name)?, version.parse().ok()?))
}

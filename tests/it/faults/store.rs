//! The store fails under the running gateway and comes back: SQLite locked by another
//! writer, read-only or out of disk, PostgreSQL stopped and restarted while requests flow. Requests
//! that need the store are refused (503, nothing forwarded); reads that do not, go on; once
//! the cause clears the same gateway serves them again.

use super::bank::{onboard, onboard_expecting, Bank};
use super::disk::{ReadOnlyFiles, SmallDisk};
use crate::harness::*;
use http::StatusCode;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The bank on a SQLite file, its gateway started and customer c-1 onboarded.
async fn serving_on_sqlite() -> (Bank, Gateway, PathBuf) {
    let ws = Workspace::new();
    let db = ws.path("privgate.db");
    let bank = Bank::new(ws, &format!("sqlite://{}", db.display())).await;
    let gw = Gateway::start(&bank.config);
    onboard_expecting(&bank, &gw, "c-1", true).await;
    (bank, gw, db)
}

#[tokio::test]
async fn a_locked_sqlite_store_refuses_writes_until_the_lock_is_released() {
    let (bank, gw, db) = serving_on_sqlite().await;

    // Another process's writer holds the database: the gateway waits out its busy timeout
    // (5 s), then refuses. Reads of what it already knows go on.
    use sqlx::Connection;
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::Executor::execute(&mut holder, "BEGIN EXCLUSIVE")
        .await
        .unwrap();
    let started = Instant::now();
    onboard_expecting(&bank, &gw, "c-2", false).await;
    assert!(started.elapsed() >= Duration::from_secs(4), "no busy wait");
    let read = get(&bank.teller(), &gw.url("/customers/c-1")).await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);

    sqlx::Executor::execute(&mut holder, "ROLLBACK")
        .await
        .unwrap();
    onboard_expecting(&bank, &gw, "c-2", true).await;
}

#[tokio::test]
async fn an_sqlite_store_out_of_disk_refuses_writes_until_space_is_freed() {
    let ws = Workspace::new();
    let Some(disk) = SmallDisk::mount(&ws.path("db"), "8m") else {
        return;
    };
    let db = ws.path("db/privgate.db");
    let bank = Bank::new(ws, &format!("sqlite://{}", db.display())).await;
    let gw = Gateway::start(&bank.config);
    onboard_expecting(&bank, &gw, "c-1", true).await;

    disk.fill();
    onboard_expecting(&bank, &gw, "c-2", false).await;
    disk.free();
    onboard_expecting(&bank, &gw, "c-2", true).await;
    let read = get(&bank.teller(), &gw.url("/customers/c-2")).await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
}

#[tokio::test]
async fn a_read_only_sqlite_store_refuses_writes_serves_reads_until_writable_again() {
    let (bank, gw, db) = serving_on_sqlite().await;

    // The database and its write-ahead log refuse writes through the gateway's open
    // descriptors (the shared-memory index stays writable: SQLite maps it, and a refused
    // write to a mapping is a SIGBUS, not an error). Reads go on, several at once, so that
    // the pool also opens connections (read-only ones) while the files are read-only.
    let wal = sqlite_sibling(&db, "-wal");
    let Some(read_only) = ReadOnlyFiles::make(&[db.clone(), wal]) else {
        return;
    };
    onboard_expecting(&bank, &gw, "c-2", false).await;
    let teller = bank.teller();
    let known = gw.url("/customers/c-1");
    let reads = (0..8).map(|_| get(&teller, &known));
    for read in futures_util::future::join_all(reads).await {
        assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
    }
    onboard_expecting(&bank, &gw, "c-3", false).await;

    drop(read_only);
    // A connection that met the files read-only keeps them so until the pool replaces it
    // (its lifetime, 10 s): until then a write is created or refused as before (503,
    // nothing forwarded); after that every write goes through.
    let recovered = Instant::now();
    let mut n = 2;
    while recovered.elapsed() < Duration::from_secs(11) {
        let id = format!("c-{n}");
        let reply = onboard(&teller, &gw, &id).await;
        match reply.status {
            StatusCode::CREATED => {
                assert!(bank.upstream_has(&id).await);
                n += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(!bank.upstream_has(&id).await, "{id} refused but forwarded")
            }
            other => panic!("{id}: unexpected {other}: {:?}", reply.body),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for _ in 0..4 {
        onboard_expecting(&bank, &gw, &format!("c-{n}"), true).await;
        n += 1;
    }
    for id in ["c-1", "c-2"] {
        let read = get(&teller, &gw.url(&format!("/customers/{id}"))).await;
        assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
    }
}

/// SQLite's file beside `db` with `suffix` (`-wal`, `-shm`).
fn sqlite_sibling(db: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A PostgreSQL cluster of the test's own (initdb in a temporary directory, a spare
/// loopback port), so stopping it disturbs no other test. Runs as the `postgres` user.
struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl OwnPostgres {
    /// `None` (said plainly) where it cannot run: not root, or no PostgreSQL server
    /// binaries or `postgres` user; a failure with `PRIVGATE_REQUIRE_POSTGRES` set.
    fn start() -> Option<Self> {
        let root = super::disk::running_as_root();
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).max())
            .map(|v| v.join("bin"));
        let uid = Command::new("id").args(["-u", "postgres"]).output().ok();
        let (Some(bin), Some(uid), true) = (bin, uid, root) else {
            assert!(
                std::env::var_os("PRIVGATE_REQUIRE_POSTGRES").is_none(),
                "PRIVGATE_REQUIRE_POSTGRES is set but an own PostgreSQL cluster cannot run here"
            );
            eprintln!(
                "PostgreSQL restart test did NOT run: needs root and PostgreSQL server binaries"
            );
            return None;
        };
        let uid: u32 = String::from_utf8_lossy(&uid.stdout).trim().parse().ok()?;
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self { dir, bin, port };
        pg.as_postgres(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Fast shutdown: every session is disconnected, as when a server is restarted.
    fn stop_server(&self) {
        self.as_postgres("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

#[tokio::test]
async fn postgresql_stopped_and_restarted_under_load_fails_closed_then_serves_again() {
    let Some(pg) = OwnPostgres::start() else {
        return;
    };
    let bank = std::sync::Arc::new(Bank::new(Workspace::new(), &pg.url()).await);
    let gw = std::sync::Arc::new(Gateway::start(&bank.config));
    onboard_expecting(&bank, &gw, "c-1", true).await;

    // Load: four clients onboarding new customers back to back, each answer recorded.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..4u64 {
        let (bank, gw, stop) = (bank.clone(), gw.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let client = bank.teller();
            let mut answers = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let id = format!("c-{}{n:05}", worker + 1);
                let reply = onboard(&client, &gw, &id).await;
                answers.push((id, reply.status, Instant::now()));
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.stop_server();
    let stopped = Instant::now();
    // Down for longer than the store's 3 s acquire timeout: a request that waits for a
    // connection through a shorter outage is served once the server is back (not refused).
    tokio::time::sleep(Duration::from_secs(5)).await;
    pg.start_server();
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);

    let mut answers = Vec::new();
    for task in load {
        answers.extend(task.await.unwrap());
    }
    let (mut created, mut refused, mut created_after) = (0, 0, 0);
    for (id, status, at) in &answers {
        match *status {
            StatusCode::CREATED => {
                created += 1;
                created_after += usize::from(*at > restarted);
                assert!(bank.upstream_has(id).await, "{id}");
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                assert!(*at > stopped, "{id} refused before the stop");
                assert!(!bank.upstream_has(id).await, "{id} refused but forwarded");
            }
            other => panic!("{id}: unexpected {other}"),
        }
    }
    assert!(refused > 0, "the stop refused nothing: {answers:?}");
    assert!(created_after > 0, "nothing served after the restart");
    eprintln!("PostgreSQL restart under load: {created} created, {refused} refused");
    // The same gateway, no restart: a new customer now.
    onboard_expecting(&bank, &gw, "c-9", true).await;
}

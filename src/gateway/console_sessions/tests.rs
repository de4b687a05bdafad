//! Console sessions on real stores: SQLite in a temporary directory, and PostgreSQL in a
//! fresh database when `PRIVGATE_TEST_POSTGRES_URL` is set (`PRIVGATE_REQUIRE_POSTGRES=1`
//! makes its absence a failure, as in CI). "Two replicas" are two stores opened on the
//! same database, each with its own connection pool, as two gateway processes would.

use super::*;
use sqlx::Connection;

fn limits(idle_ms: u64, absolute_ms: u64) -> ConsoleConfig {
    ConsoleConfig {
        issuer: "https://idp.example".into(),
        client_id: "console".into(),
        authorization_endpoint: "https://idp.example/authorize".into(),
        token_endpoint: "https://idp.example/token".into(),
        redirect_uri: "https://gw.example/console/callback".into(),
        idle_timeout: Duration::from_millis(idle_ms),
        absolute_timeout: Duration::from_millis(absolute_ms),
        step_up_acr_values: Vec::new(),
        step_up_max_age: Duration::ZERO,
    }
}

/// A database for one test; a PostgreSQL one is dropped afterwards.
enum Database {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Database {
    fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite://{}/privgate.db", dir.path().display()),
            Self::Postgres { admin_url, name } => {
                let (base, _) = admin_url.rsplit_once('/').expect("URL ends in /DATABASE");
                format!("{base}/{name}")
            }
        }
    }

    /// A store on it: call twice for two replicas.
    async fn store(&self) -> Store {
        Store::open(&self.url()).await.unwrap()
    }

    async fn drop_postgres(self) {
        if let Self::Postgres { admin_url, name } = self {
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::Executor::execute(
                &mut admin,
                format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str(),
            )
            .await
            .unwrap();
        }
    }
}

/// A fresh SQLite database, and a fresh PostgreSQL one when the tests may use one.
async fn databases() -> Vec<Database> {
    let mut databases = vec![Database::Sqlite(tempfile::tempdir().unwrap())];
    match std::env::var("PRIVGATE_TEST_POSTGRES_URL") {
        Ok(admin_url) => {
            let name = format!("privgate_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("PostgreSQL from PRIVGATE_TEST_POSTGRES_URL is unreachable");
            sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE \"{name}\"").as_str())
                .await
                .unwrap();
            databases.push(Database::Postgres { admin_url, name });
        }
        Err(_) => {
            assert!(
                std::env::var_os("PRIVGATE_REQUIRE_POSTGRES").is_none(),
                "PRIVGATE_REQUIRE_POSTGRES is set but PRIVGATE_TEST_POSTGRES_URL is not"
            );
            eprintln!("PostgreSQL case did NOT run: set PRIVGATE_TEST_POSTGRES_URL to run it");
        }
    }
    databases
}

/// Every column of every row of `table`, as text (what a reader of the store gets).
async fn dump(db: &Database, table: &str, columns: &str) -> String {
    let mut conn = sqlx::AnyConnection::connect(&db.url()).await.unwrap();
    let rows = sqlx::query(&format!("SELECT {columns} FROM {table}"))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let mut text = String::new();
    for row in rows {
        for i in 0..columns.split(',').count() {
            let value = sqlx::Row::try_get::<String, _>(&row, i)
                .or_else(|_| sqlx::Row::try_get::<i64, _>(&row, i).map(|n| n.to_string()))
                .unwrap();
            text.push_str(&value);
            text.push('\n');
        }
    }
    text
}

const SESSION_COLUMNS: &str = "id_digest, sealed_token, created_ms, last_seen_ms";
const SIGN_IN_COLUMNS: &str = "id_digest, state_digest, sealed_verifier, return_to, created_ms";

fn page(name: &str) -> Option<&'static str> {
    ["keys", "consent"].into_iter().find(|p| *p == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_works_on_every_replica_and_ends_when_idle_or_closed() {
    for db in databases().await {
        let (a, b) = (db.store().await, db.store().await);
        let sessions = ConsoleSessions;
        let limits = limits(400, 60_000);
        let token = "header.payload.signature";
        let cookie = sessions
            .open(&a, Zeroizing::new(token.into()), &limits)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cookie.len(), 43);
        let on_a = sessions
            .current(&a, Some(&cookie), &limits)
            .await
            .unwrap()
            .unwrap();
        let on_b = sessions
            .current(&b, Some(&cookie), &limits)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(on_b.access_token.as_str(), token);
        // The CSRF token is derived, not stored: both replicas compute the same one.
        assert_eq!(on_a.csrf, on_b.csrf);
        assert!(csrf_matches(&on_b, Some(&on_a.csrf)));
        assert!(!csrf_matches(&on_b, Some("forged")));
        assert!(!csrf_matches(&on_b, None));
        for unknown in [None, Some("made-up"), Some("")] {
            let found = sessions.current(&b, unknown, &limits).await.unwrap();
            assert_eq!(found.err(), Some(NoSession::Absent), "{unknown:?}");
        }

        // Each read refreshes it: used more often than the idle timeout, it lives on.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let found = sessions.current(&a, Some(&cookie), &limits).await.unwrap();
            assert!(found.is_ok());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let found = sessions.current(&b, Some(&cookie), &limits).await.unwrap();
        assert_eq!(found.err(), Some(NoSession::Expired));
        // Removed once expired: the same cookie is now unknown on every replica.
        let found = sessions.current(&a, Some(&cookie), &limits).await.unwrap();
        assert_eq!(found.err(), Some(NoSession::Absent));

        // Closing on one replica ends it on the other.
        let cookie = sessions
            .open(&a, Zeroizing::new(token.into()), &limits)
            .await
            .unwrap()
            .unwrap();
        sessions.close(&b, Some(&cookie)).await.unwrap();
        let found = sessions.current(&a, Some(&cookie), &limits).await.unwrap();
        assert_eq!(found.err(), Some(NoSession::Absent));
        db.drop_postgres().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_ends_at_its_absolute_timeout_however_busy() {
    for db in databases().await {
        let store = db.store().await;
        let sessions = ConsoleSessions;
        // Long enough that a loaded machine still sees the session twice before its end.
        let absolute = Duration::from_millis(1_000);
        let short = limits(60_000, absolute.as_millis() as u64);
        let other = limits(60_000, 60_000);
        let limits = short;
        // The store stamps the session somewhere between these two instants: it ends
        // `absolute` after that stamp, which bounds both answers below from the right side.
        let opening = std::time::Instant::now();
        let cookie = sessions
            .open(&store, Zeroizing::new("t".into()), &limits)
            .await
            .unwrap()
            .unwrap();
        let opened = std::time::Instant::now();
        let mut seen = 0;
        loop {
            let asked = std::time::Instant::now();
            let found = sessions
                .current(&store, Some(&cookie), &limits)
                .await
                .unwrap();
            match found {
                Ok(_) => {
                    // Live only when asked before its end (50 ms for millisecond clocks).
                    assert!(asked < opened + absolute + Duration::from_millis(50));
                    seen += 1;
                }
                Err(why) => {
                    assert_eq!(why, NoSession::Expired);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(seen >= 2, "{seen}");
        assert!(std::time::Instant::now() >= opening + absolute);
        // Expired rows are swept when a session opens, found or not.
        let stale = sessions
            .open(&store, Zeroizing::new("stale".into()), &limits)
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(absolute + Duration::from_millis(50)).await;
        sessions
            .open(&store, Zeroizing::new("new".into()), &limits)
            .await
            .unwrap()
            .unwrap();
        // Under the longer limits the stale one would still be live, had it not been swept.
        let found = sessions
            .current(&store, Some(&stale), &other)
            .await
            .unwrap();
        assert_eq!(found.err(), Some(NoSession::Absent));
        db.drop_postgres().await;
    }
}

/// The store holds no cookie, token, CSRF token, `state` or verifier; a row read with
/// another cookie (a store writer moving a sealed token to a row it made) opens nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_holds_nothing_usable_without_the_cookie() {
    for db in databases().await {
        let store = db.store().await;
        let sessions = ConsoleSessions;
        let limits = limits(60_000, 60_000);
        let token = "eyJhbGciOiJFUzI1NiJ9.secret-claims.signature";
        let cookie = sessions
            .open(&store, Zeroizing::new(token.into()), &limits)
            .await
            .unwrap()
            .unwrap();
        let csrf = sessions
            .current(&store, Some(&cookie), &limits)
            .await
            .unwrap()
            .unwrap()
            .csrf;
        let (sign_in, state, verifier) = sessions
            .begin_sign_in(&store, Some("keys"))
            .await
            .unwrap()
            .unwrap();
        let dumped = format!(
            "{}{}",
            dump(&db, "console_sessions", SESSION_COLUMNS).await,
            dump(&db, "console_sign_ins", SIGN_IN_COLUMNS).await
        );
        for secret in [&cookie, token, &csrf, &sign_in, &state, verifier.as_str()] {
            assert!(!dumped.contains(secret), "{secret} in the store");
        }
        assert!(!dumped.contains("secret-claims"));

        // Another cookie's row given this session's sealed token.
        let attacker = random().unwrap();
        let attacker_id = CookieId::parse(&attacker).unwrap();
        let victim = CookieId::parse(&cookie).unwrap();
        let sealed = match store
            .console_session(victim.digest(), cutoffs(&limits, now_ms()), now_ms())
            .await
            .unwrap()
        {
            SessionLookup::Live(sealed) => sealed,
            _ => panic!("the session is live"),
        };
        assert!(attacker_id.open(Purpose::SessionToken, &sealed).is_none());
        // Under its own cookie, for another purpose, it opens nothing either.
        assert!(victim.open(Purpose::SignInVerifier, &sealed).is_none());
        assert!(victim.open(Purpose::SessionToken, &sealed).is_some());
        let planted = ConsoleSessionRow {
            id_digest: attacker_id.digest().to_owned(),
            sealed_token: sealed,
            created_ms: now_ms(),
            last_seen_ms: now_ms(),
        };
        assert!(store
            .open_console_session(&planted, cutoffs(&limits, now_ms()), 100)
            .await
            .unwrap());
        let found = sessions
            .current(&store, Some(&attacker), &limits)
            .await
            .unwrap();
        assert_eq!(found.err(), Some(NoSession::Absent));
        // And the planted row is gone.
        assert!(!store
            .close_console_session(attacker_id.digest())
            .await
            .unwrap());
        db.drop_postgres().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_in_is_finished_once_on_any_replica_and_only_with_its_state() {
    for db in databases().await {
        let (a, b) = (db.store().await, db.store().await);
        let sessions = ConsoleSessions;
        let (cookie, state, _) = sessions.begin_sign_in(&a, None).await.unwrap().unwrap();
        let finished = sessions
            .finish_sign_in(&b, &cookie, "other-state", page)
            .await
            .unwrap();
        assert!(finished.is_none());
        // The wrong state used it up.
        let finished = sessions
            .finish_sign_in(&b, &cookie, &state, page)
            .await
            .unwrap();
        assert!(finished.is_none());

        // Begun on A, finished on B (the callback landed on another replica).
        let (cookie, state, verifier) = sessions
            .begin_sign_in(&a, Some("keys"))
            .await
            .unwrap()
            .unwrap();
        // Another sign-in's cookie with this one's state is not it.
        let (other, _, _) = sessions.begin_sign_in(&a, None).await.unwrap().unwrap();
        let finished = sessions
            .finish_sign_in(&b, &other, &state, page)
            .await
            .unwrap();
        assert!(finished.is_none());
        let (got, return_to) = sessions
            .finish_sign_in(&b, &cookie, &state, page)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.as_str(), verifier.as_str());
        assert_eq!(return_to, Some("keys"));
        let again = sessions
            .finish_sign_in(&a, &cookie, &state, page)
            .await
            .unwrap();
        assert!(again.is_none());

        // A return page the console does not know (the store is an input) fails it.
        let (cookie, state, _) = sessions
            .begin_sign_in(&a, Some("overview"))
            .await
            .unwrap()
            .unwrap();
        let finished = sessions
            .finish_sign_in(&b, &cookie, &state, page)
            .await
            .unwrap();
        assert!(finished.is_none());
        db.drop_postgres().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_finishing_one_sign_in_at_once_finish_it_once() {
    for db in databases().await {
        let (a, b) = (db.store().await, db.store().await);
        let sessions = ConsoleSessions;
        for _ in 0..20 {
            let (cookie, state, _) = sessions.begin_sign_in(&a, None).await.unwrap().unwrap();
            let (on_a, on_b) = tokio::join!(
                sessions.finish_sign_in(&a, &cookie, &state, page),
                sessions.finish_sign_in(&b, &cookie, &state, page),
            );
            let finished = [on_a.unwrap(), on_b.unwrap()];
            assert_eq!(finished.iter().filter(|f| f.is_some()).count(), 1);
        }
        db.drop_postgres().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timed_out_sign_in_is_refused_and_swept() {
    for db in databases().await {
        let store = db.store().await;
        let sessions = ConsoleSessions;
        // A sign-in begun just over the timeout ago, written as `begin_sign_in` writes it.
        let (cookie, state) = (random().unwrap(), random().unwrap());
        let id = CookieId::parse(&cookie).unwrap();
        let begun = now_ms() - millis(SIGN_IN_TIMEOUT) - 1;
        let row = |cookie_id: &CookieId, created_ms| ConsoleSignInRow {
            id_digest: cookie_id.digest().to_owned(),
            state_digest: digest(&state),
            sealed_verifier: cookie_id
                .seal(Purpose::SignInVerifier, b"verifier")
                .unwrap(),
            return_to: String::new(),
            created_ms,
        };
        assert!(store
            .begin_console_sign_in(&row(&id, begun), i64::MIN, 100)
            .await
            .unwrap());
        let finished = sessions
            .finish_sign_in(&store, &cookie, &state, page)
            .await
            .unwrap();
        assert!(finished.is_none());
        // A timed-out one nobody finished is swept when the next sign-in begins.
        assert!(store
            .begin_console_sign_in(&row(&id, begun), i64::MIN, 100)
            .await
            .unwrap());
        sessions.begin_sign_in(&store, None).await.unwrap().unwrap();
        assert!(store
            .take_console_sign_in(id.digest())
            .await
            .unwrap()
            .is_none());
        db.drop_postgres().await;
    }
}

/// The bounds hold on the rows in the store: a full table refuses, whichever replica asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_tables_refuse_new_rows() {
    for db in databases().await {
        let (a, b) = (db.store().await, db.store().await);
        let cutoffs = cutoffs(&limits(60_000, 60_000), now_ms());
        for (n, store) in [(0, &a), (1, &b), (2, &a)] {
            let id = CookieId::parse(&random().unwrap()).unwrap();
            let row = ConsoleSessionRow {
                id_digest: id.digest().to_owned(),
                sealed_token: id.seal(Purpose::SessionToken, b"t").unwrap(),
                created_ms: now_ms(),
                last_seen_ms: now_ms(),
            };
            let opened = store.open_console_session(&row, cutoffs, 2).await.unwrap();
            assert_eq!(opened, n < 2, "session {n}");
            let sign_in = ConsoleSignInRow {
                id_digest: id.digest().to_owned(),
                state_digest: digest("s"),
                sealed_verifier: id.seal(Purpose::SignInVerifier, b"v").unwrap(),
                return_to: String::new(),
                created_ms: now_ms(),
            };
            let begun = store
                .begin_console_sign_in(&sign_in, i64::MIN, 2)
                .await
                .unwrap();
            assert_eq!(begun, n < 2, "sign-in {n}");
        }
        db.drop_postgres().await;
    }
}

/// A store that cannot answer is an error for the page (a 503), never "no session" or a
/// session accepted.
#[tokio::test]
async fn a_store_that_cannot_answer_is_an_error() {
    let db = Database::Sqlite(tempfile::tempdir().unwrap());
    let store = db.store().await;
    let sessions = ConsoleSessions;
    let limits = limits(60_000, 60_000);
    let cookie = sessions
        .open(&store, Zeroizing::new("t".into()), &limits)
        .await
        .unwrap()
        .unwrap();
    store.close().await;
    assert!(sessions
        .current(&store, Some(&cookie), &limits)
        .await
        .is_err());
    assert!(sessions.begin_sign_in(&store, None).await.is_err());
    assert!(sessions
        .open(&store, Zeroizing::new("t".into()), &limits)
        .await
        .is_err());
    assert!(sessions.close(&store, Some(&cookie)).await.is_err());
}

#[test]
fn cookies_are_read_by_exact_name() {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::COOKIE,
        "x__Host-privgate-console=evil; __Host-privgate-console=good"
            .parse()
            .unwrap(),
    );
    assert_eq!(cookie(&headers, SESSION_COOKIE), Some("good"));
}

#[test]
fn only_ids_shaped_like_ours_are_cookie_ids() {
    let ours = random().unwrap();
    assert!(CookieId::parse(&ours).is_some());
    for not_ours in ["", "made-up", &ours[..42], &format!("{ours}A"), "+/+/"] {
        assert!(CookieId::parse(not_ours).is_none(), "{not_ours}");
    }
    // Two cookies: different row keys and CSRF tokens.
    let other = CookieId::parse(&random().unwrap()).unwrap();
    let ours = CookieId::parse(&ours).unwrap();
    assert_ne!(ours.digest(), other.digest());
    assert_ne!(ours.csrf(), other.csrf());
    assert_eq!(ours.csrf().unwrap().len(), 43);
}

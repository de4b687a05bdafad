//! Crash consistency of one-time-code uses (issue 16, item 5): users pass step-up with
//! their current TOTP code while the gateway is killed with SIGKILL at seeded random points
//! and restarted, on SQLite and on PostgreSQL. A code is accepted by one conditional write
//! of the user's replay state; if an acknowledged use were lost to a crash, the same code
//! would pass again after the restart. Each kill point brings users who have not yet used
//! a code (so the kill lands among first uses, which write), while every earlier user keeps
//! presenting its code (so a lost use would show as a second acceptance). Checked over
//! every kill: each (user, code) passed at most once, the store records every acknowledged
//! use (the user's replay state has reached its time step), and the upstream saw exactly
//! the uses acknowledged plus at most one unanswered use per user and kill (a use written
//! and forwarded whose answer the kill cut off).

use crate::harness::*;
use crate::identity::mfa::mfa_workspace_in;
use crate::identity::{bearer, now, request, sign, with};
use http::StatusCode;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KILL_POINTS: usize = 20;
/// Users who make their first use during each kill point's run.
const NEW_USERS_PER_POINT: usize = 3;

/// An enrolled user: name, TOTP generator, and an access token whose sign-in is an hour
/// old (so the step-up route asks for a code).
type User = (String, totp_rs::TOTP, String);

/// (user, code) -> (time step of the code, times answered 200).
type Passed = Arc<Mutex<HashMap<(String, String), (i64, usize)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_code_use_on_sqlite_never_accepts_a_code_twice() {
    let ws = Workspace::new();
    let url = format!("sqlite://{}/privgate.db", ws.dir.path().display());
    kill_during_code_uses(ws, "", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_code_use_on_postgresql_never_accepts_a_code_twice() {
    let Some((url, _guard)) = crate::store::postgres_database().await else {
        return;
    };
    let ws = Workspace::new();
    let store = postgres_store_section(&ws, &url);
    kill_during_code_uses(ws, &format!("\n{store}\n"), &url).await;
}

/// `store`: the `[store]` section (empty: the default SQLite file in the workspace, which
/// `store_url` names).
async fn kill_during_code_uses(ws: Workspace, store: &str, store_url: &str) {
    let up = Upstream::start().await;
    let (ws, es, path) = mfa_workspace_in(ws, up.addr, "", store);
    let config = path.to_str().unwrap();
    let users: Vec<User> = (0..KILL_POINTS * NEW_USERS_PER_POINT)
        .map(|i| {
            let user = format!("user-{i}");
            let enrolled = privgate(["totp", "dev-enroll", "--user", &user, "--config", config]);
            assert!(enrolled.ok, "{}", enrolled.all());
            let uri = enrolled
                .stdout
                .lines()
                .find(|l| l.starts_with("otpauth://"))
                .unwrap()
                .to_owned();
            let totp = totp_rs::TOTP::from_url_unchecked(&uri).unwrap();
            let token = bearer(&sign(
                &es,
                &with(json!({
                    "sub": user, "acr": "urn:privgate:mfa", "amr": ["pwd"], "auth_time": now() - 3600
                })),
            ));
            (user, totp, token)
        })
        .collect();
    let passed: Passed = Arc::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    let mut unanswered_bound = 0;
    for point in 0..KILL_POINTS {
        let gw = Gateway::start(&path);
        let client = https_client(&ws, None, false);
        let url = gw.url("/stepup/echo");
        let active = &users[..(point + 1) * NEW_USERS_PER_POINT];
        let load: Vec<_> = active
            .iter()
            .cloned()
            .map(|user| {
                // Users start apart, so that kills land among first uses (writes).
                let start = Duration::from_millis(rng.gen_range(0..300));
                tokio::spawn(present_codes(
                    client.clone(),
                    url.clone(),
                    user,
                    start,
                    passed.clone(),
                ))
            })
            .collect();
        let delay = Duration::from_millis(rng.gen_range(20..400));
        super::kill_after(gw, delay, load).await;
        unanswered_bound += active.len();
        let passed = passed.lock().unwrap().clone();
        recorded(store_url, &passed, point).await;
    }
    let passed = passed.lock().unwrap();
    for ((user, code), (_, times)) in passed.iter() {
        assert_eq!(*times, 1, "{user}'s code {code} passed {times} times");
    }
    // A use written and forwarded whose answer a kill cut off is never acknowledged (its
    // code is spent): fewer uses than users can be acknowledged, but not none.
    let acknowledged = passed.len();
    assert!(
        acknowledged >= KILL_POINTS,
        "too few uses acknowledged: {acknowledged}"
    );
    let forwarded = up.requests();
    assert!(
        acknowledged <= forwarded && forwarded <= acknowledged + unanswered_bound,
        "{acknowledged} uses acknowledged, {forwarded} forwarded"
    );
    eprintln!(
        "one-time codes: {KILL_POINTS} kills, {} users, {acknowledged} uses acknowledged, {forwarded} forwarded",
        users.len()
    );
}

/// Until the gateway dies: the user's current code, again and again (a replay is refused,
/// 401, without counting toward the lockout).
async fn present_codes(
    client: HttpsClient,
    url: String,
    (user, totp, token): User,
    start: Duration,
    passed: Passed,
) {
    tokio::time::sleep(start).await;
    loop {
        let at = u64::try_from(now()).unwrap();
        let code = totp.generate(at);
        let step = i64::try_from(at / totp.step).unwrap();
        let headers = [("authorization", token.as_str()), ("x-otp", &code)];
        let Ok(reply) = send(&client, request(&url, &headers)).await else {
            return;
        };
        match reply.status {
            StatusCode::OK => {
                passed
                    .lock()
                    .unwrap()
                    .entry((user.clone(), code))
                    .or_insert((step, 0))
                    .1 += 1
            }
            StatusCode::UNAUTHORIZED => {}
            other => panic!("{user}: unexpected {other} {:?}", reply.body),
        }
    }
}

/// Every use acknowledged so far is recorded in the store, read directly once the gateway
/// is dead: the user's replay state has reached the code's time step, so the code cannot
/// pass again.
async fn recorded(store_url: &str, passed: &HashMap<(String, String), (i64, usize)>, point: usize) {
    let pool = super::store_pool(store_url).await;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT user_id, last_step FROM totp_enrollments")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    let last_step: HashMap<String, i64> = rows.into_iter().collect();
    for ((user, _), (step, _)) in passed {
        assert!(
            last_step.get(user).is_some_and(|last| last >= step),
            "kill point {point}: {user}'s acknowledged use of step {step} is not recorded ({:?})",
            last_step.get(user)
        );
    }
}

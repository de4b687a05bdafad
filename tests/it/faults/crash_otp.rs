//! Crash consistency of one-time-code uses (issue 16, item 5): users pass step-up with
//! their current TOTP code while the gateway is killed with SIGKILL at seeded random points
//! and restarted, on SQLite. A code is accepted by one conditional write of the user's
//! replay state; if an acknowledged use were lost to a crash, the same code would pass
//! again after the restart. Checked over every kill: each (user, code) passed at most once,
//! and the upstream saw exactly the uses acknowledged plus at most one unanswered use per
//! kill (a use written and forwarded whose answer the kill cut off).

use crate::harness::*;
use crate::identity::mfa::{code_at, mfa_workspace};
use crate::identity::{bearer, now, request, sign, with};
use http::StatusCode;
use nix::sys::signal::Signal;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const USERS: usize = 12;
const KILL_POINTS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_code_use_never_accepts_a_code_twice() {
    let up = Upstream::start().await;
    let (ws, es, path) = mfa_workspace(up.addr);
    let config = path.to_str().unwrap();
    let mut users = Vec::new();
    for i in 0..USERS {
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
        // A token whose authentication is an hour old: the step-up route asks for a code.
        let token = bearer(&sign(
            &es,
            &with(json!({
                "sub": user, "acr": "urn:privgate:mfa", "amr": ["pwd"], "auth_time": now() - 3600
            })),
        ));
        users.push((user, totp, token));
    }
    // (user, code) -> times answered 200.
    let passed: Arc<Mutex<HashMap<(String, String), usize>>> = Arc::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    let mut unanswered_bound = 0;
    for _ in 0..KILL_POINTS {
        let gw = Gateway::start(&path);
        let client = https_client(&ws, None, false);
        let url = gw.url("/stepup/echo");
        let load: Vec<_> = users
            .iter()
            .cloned()
            .map(|(user, totp, token)| {
                let (client, url, passed) = (client.clone(), url.clone(), passed.clone());
                // Users start apart, so that kills land among first uses (writes).
                let start = Duration::from_millis(rng.gen_range(0..300));
                tokio::spawn(async move {
                    tokio::time::sleep(start).await;
                    // Until the gateway dies: the current code, again and again (a replay
                    // is refused, 401, without counting toward the lockout).
                    loop {
                        let code = code_at(&totp, 0);
                        let headers = [("authorization", token.as_str()), ("x-otp", &code)];
                        let Ok(reply) = send(&client, request(&url, &headers)).await else {
                            return;
                        };
                        match reply.status {
                            StatusCode::OK => {
                                *passed
                                    .lock()
                                    .unwrap()
                                    .entry((user.clone(), code))
                                    .or_default() += 1
                            }
                            StatusCode::UNAUTHORIZED => {}
                            other => panic!("{user}: unexpected {other} {:?}", reply.body),
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..400))).await;
        gw.signal(Signal::SIGKILL);
        drop(gw);
        for task in load {
            task.await.unwrap();
        }
        unanswered_bound += USERS;
    }
    let passed = passed.lock().unwrap();
    for ((user, code), times) in passed.iter() {
        assert_eq!(*times, 1, "{user}'s code {code} passed {times} times");
    }
    // A use written and forwarded whose answer a kill cut off is never acknowledged (its
    // code is spent): fewer uses than users can be acknowledged, but not none.
    let acknowledged = passed.len();
    assert!(acknowledged > 0, "no use acknowledged");
    let forwarded = up.requests();
    assert!(
        acknowledged <= forwarded && forwarded <= acknowledged + unanswered_bound,
        "{acknowledged} uses acknowledged, {forwarded} forwarded"
    );
    eprintln!(
        "one-time codes: {KILL_POINTS} kills, {acknowledged} uses acknowledged, {forwarded} forwarded"
    );
}

//! Crash consistency of encrypted sums (issue 16, item 5): contributors submit proven
//! contributions (some replacing their earlier one) and a release officer asks for the
//! release while the gateway is killed with SIGKILL at seeded random points and restarted,
//! on SQLite, with small batches so that kills also land among the background folds. A
//! contribution whose answer a kill cut off is sent again after the restart: `409
//! nonce_reused` then says the killed gateway had stored it. After every kill, read from
//! the store: every contribution answered as stored is counted (its contributor's stored
//! contribution is it or a later one of theirs), none twice, and nothing else; a release
//! answered at most once, never below the threshold, and its total the sum of the
//! contributions stored; `privgate audit verify` passes. A last run without a kill finishes
//! the submissions and the release.
//!
//! The TFHE key set is the one the `fhe` tests share; proofs are made once, before the
//! kills. `PRIVGATE_CRASH_SEED` picks other kill points.

use crate::fhe::{
    branch, contribution_body_for, create, gateway_config, gateway_config_on, officer, stop,
    try_call,
};
use crate::harness::*;
use http::StatusCode;
use privgate::analytics::fhe::PublicMaterial;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Kills per engine (each restart loads the key set: seconds); `PRIVGATE_CRASH_POINTS` to change.
const KILL_POINTS: usize = 20;
/// Contributions per batch: a full batch is folded in the background as it fills.
const BATCH_SIZE: u32 = 2;
/// Organisations an aggregate needs before a release.
const THRESHOLD: usize = 3;

/// One contribution to submit.
struct Submission {
    contributor: String,
    organisation: &'static str,
    value: u64,
    nonce: String,
    body: Value,
}

/// What became of a submission, as far as its client knows.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Outcome {
    NotSent,
    /// Sent, no answer (the gateway was killed).
    Unanswered,
    /// Answered 201 or 200 (a replacement).
    Stored,
    /// Sent again after an unanswered try and refused as `nonce_reused`: the killed
    /// gateway had stored it.
    StoredBeforeKill,
    /// Refused: the aggregate was released first.
    Closed,
}

#[derive(Default, Clone)]
struct Told {
    outcomes: Vec<Outcome>,
    /// Release answers (200): at most one is allowed.
    releases: Vec<Value>,
    /// Releases refused for want of organisations.
    below_threshold: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_contribution_and_release_on_sqlite_counts_each_contribution_once() {
    let ws = Workspace::new();
    let config = gateway_config(&ws, BATCH_SIZE);
    let store_url = format!("sqlite://{}/privgate.db", ws.dir.path().display());
    kill_during_contributions(ws, config, &store_url, &crate::fhe::fixture().public).await;
}

/// On PostgreSQL: a key set of its own (`privgate fhe keygen`, about 10 s), its client key
/// sealed by a keyring in that database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_contribution_and_release_on_postgresql_counts_each_contribution_once() {
    let Some((store_url, _guard)) = crate::store::postgres_database().await else {
        return;
    };
    let ws = Workspace::new();
    let kek = ws.write("kek.hex", &"5b".repeat(32));
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let store = postgres_store_section(&ws, &store_url);
    let config = gateway_config_on(&ws, BATCH_SIZE, &store, &kek, &ws.path("fhe"));
    for step in [["keys", "init"], ["fhe", "keygen"]] {
        let run = privgate([step[0], step[1], "--config", config.to_str().unwrap()]);
        assert!(run.ok, "{}", run.all());
    }
    let public = privgate::analytics::fhe::keyset::load_public(&ws.path("fhe")).unwrap();
    kill_during_contributions(ws, config, &store_url, &public).await;
}

async fn kill_during_contributions(
    ws: Workspace,
    config: std::path::PathBuf,
    store_url: &str,
    public: &PublicMaterial,
) {
    let seed: u64 = std::env::var("PRIVGATE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let points: usize = std::env::var("PRIVGATE_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(KILL_POINTS);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);

    let gw = Gateway::start(&config);
    let client = https_client(&ws, None, false);
    fhe_ready(&client, &gw).await;
    let created = create(
        &client,
        &gw,
        json!({
            "name": "exposures under kills", "bits": 8, "max_contributors": 16,
            "min_organisations": THRESHOLD, "open_for": "1h", "release": {"mode": "exact"},
        }),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    stop(gw).await;

    // Two organisations first (two contributors replace theirs), the third last: the
    // threshold is met only by the last submission, so releases asked before are refused,
    // and the one that succeeds comes after the rest.
    let plan = [
        ("a1", "bank-a"),
        ("b1", "bank-b"),
        ("a2", "bank-a"),
        ("b2", "bank-b"),
        ("a1", "bank-a"),
        ("b1", "bank-b"),
        ("c1", "bank-c"),
    ];
    let submissions: Vec<Submission> = plan
        .iter()
        .map(|&(who, organisation)| {
            let contributor = format!("Service:oauth:{who}");
            let value = rng.gen_range(0..256);
            let body = contribution_body_for(public, &id, &contributor, value, 8);
            Submission {
                contributor,
                organisation,
                value,
                nonce: body["nonce"].as_str().unwrap().to_owned(),
                body,
            }
        })
        .collect();
    let submissions = Arc::new(submissions);
    let told = Arc::new(Mutex::new(Told {
        outcomes: vec![Outcome::NotSent; submissions.len()],
        ..Told::default()
    }));

    let mut state = String::new();
    for point in 0..=points {
        let gw = Gateway::start(&config);
        let client = https_client(&ws, None, false);
        fhe_ready(&client, &gw).await;
        let load = [
            tokio::spawn(submit(
                client.clone(),
                gw.url(""),
                id.clone(),
                submissions.clone(),
                told.clone(),
            )),
            tokio::spawn(release(
                client.clone(),
                gw.url(""),
                id.clone(),
                told.clone(),
            )),
        ];
        // A contribution's proof check takes a few hundred ms: kills land among them.
        let delay = Duration::from_millis(rng.gen_range(100..1200));
        if point == points {
            // The last run: no kill; everything finishes.
            for task in load {
                task.await.unwrap();
            }
            stop(gw).await;
        } else {
            super::kill_after(gw, delay, load.into()).await;
        }
        super::chain_verifies(&config, point, delay);
        // The load has stopped: a copy of what clients were told, checked without the lock.
        let told = told.lock().unwrap().clone();
        state = check(store_url, &id, &submissions, &told, point).await;
        audited_releases(&ws, &id, &told, point);
        eprintln!(
            "point {point} ({delay:?}): {:?}, {} release(s) answered, aggregate {state}",
            told.outcomes,
            told.releases.len()
        );
    }

    let told = told.lock().unwrap();
    assert!(
        told.outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Stored | Outcome::StoredBeforeKill)),
        "every submission stored at the end: {:?}",
        told.outcomes
    );
    // Exact mode closes the aggregate before it decrypts: a kill between the two (a few ms:
    // the decryption and the record's fsync) leaves it released with no total delivered,
    // and the next release is refused as closed. Never released twice, in either case.
    assert_eq!(state, "released");
    if told.releases.is_empty() {
        eprintln!("FHE under kills: the release's answer was cut off by a kill");
    }
    assert!(
        told.below_threshold > 0,
        "no release was tried below the threshold"
    );
    eprintln!(
        "FHE under kills: {points} kills (seed {seed}), outcomes {:?}, releases refused below the threshold {}, released {:?}",
        told.outcomes, told.below_threshold, told.releases.first()
    );
}

/// Waits until the FHE API answers (the key set loads after the listeners bind).
async fn fhe_ready(client: &HttpsClient, gw: &Gateway) {
    let url = gw.url("/fhe/v1/public-key");
    for _ in 0..2400 {
        let reply = try_call(client, "GET", &url, &officer(), None).await;
        if reply.is_some_and(|r| r.status == StatusCode::OK) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the FHE API never answered");
}

/// Submits, in order, every submission not yet known to be stored, until all are or the
/// gateway dies.
async fn submit(
    client: HttpsClient,
    base: String,
    id: String,
    submissions: Arc<Vec<Submission>>,
    told: Arc<Mutex<Told>>,
) {
    let url = format!("{base}/fhe/v1/aggregates/{id}/contributions");
    loop {
        let (i, before) = {
            let mut told = told.lock().unwrap();
            let Some(i) = told
                .outcomes
                .iter()
                .position(|o| matches!(o, Outcome::NotSent | Outcome::Unanswered))
            else {
                return;
            };
            let before = told.outcomes[i];
            told.outcomes[i] = Outcome::Unanswered;
            (i, before)
        };
        let s = &submissions[i];
        let who = s.contributor.trim_start_matches("Service:oauth:");
        let token = branch(who, s.organisation);
        let Some(reply) = try_call(&client, "POST", &url, &token, Some(s.body.clone())).await
        else {
            return;
        };
        let outcome = match (reply.status, reply.error_code().as_str()) {
            (StatusCode::CREATED | StatusCode::OK, _) => Outcome::Stored,
            (StatusCode::CONFLICT, "nonce_reused") => {
                assert_eq!(
                    before,
                    Outcome::Unanswered,
                    "a fresh nonce refused as reused"
                );
                Outcome::StoredBeforeKill
            }
            (StatusCode::CONFLICT, "aggregate_closed") => Outcome::Closed,
            other => panic!("contribution {i}: {other:?} {:?}", reply.body),
        };
        told.lock().unwrap().outcomes[i] = outcome;
    }
}

/// Asks for the release until it is answered, refused as closed, or the gateway dies.
async fn release(client: HttpsClient, base: String, id: String, told: Arc<Mutex<Told>>) {
    let url = format!("{base}/fhe/v1/aggregates/{id}/release");
    loop {
        let Some(reply) = try_call(&client, "POST", &url, &officer(), None).await else {
            return;
        };
        match (reply.status, reply.error_code().as_str()) {
            (StatusCode::OK, _) => {
                told.lock().unwrap().releases.push(reply.json());
                return;
            }
            (StatusCode::FORBIDDEN, "threshold_not_met") => {
                told.lock().unwrap().below_threshold += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (StatusCode::CONFLICT, "aggregate_closed") => return,
            other => panic!("release: {other:?} {:?}", reply.body),
        }
    }
}

/// What the store holds, read directly once the gateway is dead, against what the clients
/// were told.
/// Returns the aggregate's state.
async fn check(
    store_url: &str,
    id: &str,
    submissions: &[Submission],
    told: &Told,
    point: usize,
) -> String {
    let pool = super::store_pool(store_url).await;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT contributor, organisation, nonce FROM fhe_contributions WHERE aggregate_id = $1",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let (state,): (String,) = sqlx::query_as("SELECT state FROM fhe_aggregates WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;

    // Each stored contribution is one of ours, for its own contributor, sent by a client.
    let by_nonce: HashMap<&str, usize> = submissions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.nonce.as_str(), i))
        .collect();
    let mut stored: HashMap<&str, usize> = HashMap::new();
    for (contributor, organisation, nonce) in &rows {
        let &i = by_nonce
            .get(nonce.as_str())
            .unwrap_or_else(|| panic!("kill point {point}: a contribution no client sent"));
        let s = &submissions[i];
        assert_eq!(
            (&s.contributor, s.organisation),
            (contributor, organisation.as_str())
        );
        assert_ne!(
            told.outcomes[i],
            Outcome::NotSent,
            "stored before it was sent"
        );
        assert!(
            stored.insert(&s.contributor, i).is_none(),
            "kill point {point}: {contributor} counted twice"
        );
    }
    // Every contribution answered as stored is counted: it, or a later one of the same
    // contributor (a replacement), is what the store holds for them.
    for (i, s) in submissions.iter().enumerate() {
        if matches!(
            told.outcomes[i],
            Outcome::Stored | Outcome::StoredBeforeKill
        ) {
            let held = stored.get(s.contributor.as_str());
            assert!(
                held.is_some_and(|&h| h >= i),
                "kill point {point}: contribution {i} answered stored, store holds {held:?}"
            );
        }
    }
    let organisations: std::collections::HashSet<&str> =
        rows.iter().map(|(_, o, _)| o.as_str()).collect();
    let total: u64 = stored.values().map(|&i| submissions[i].value).sum();
    assert!(
        told.releases.len() <= 1,
        "released twice: {:?}",
        told.releases
    );
    if let Some(released) = told.releases.first() {
        assert_eq!(state, "released", "kill point {point}");
        assert_eq!(released["total"], total.to_string(), "kill point {point}");
        assert_eq!(released["contributors"], stored.len(), "kill point {point}");
        assert!(released["organisations"].as_u64().unwrap() >= THRESHOLD as u64);
    }
    if state == "released" {
        assert!(
            organisations.len() >= THRESHOLD,
            "kill point {point}: released with {} organisations",
            organisations.len()
        );
    }
    state
}

/// The chain records at most one release, and one for the release answered.
fn audited_releases(ws: &Workspace, id: &str, told: &Told, point: usize) {
    let released = crate::audit_ops::chain_lines(ws, "gw")
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| {
            r["action"] == "aggregate:release" && r["aggregate_id"] == id && r["status"] == 200
        })
        .count();
    assert!(
        released <= 1 && released >= told.releases.len(),
        "kill point {point}: {released} releases recorded, {} answered",
        told.releases.len()
    );
}

//! Encrypted sums end to end: the real gateway serving `/fhe/v1` over TLS, callers
//! identified by HS256 access tokens (services of several organisations), the shipped
//! Cedar policies, a real SQLite store and keyring, real TFHE keys and proofs.
//!
//! TFHE key and CRS generation takes tens of seconds on two cores, so one key set is made
//! (by `privgate fhe keygen`) once per test binary, in a fixture directory whose store
//! holds the keyring that seals the client key; each test copies that store file and
//! points `[fhe] dir` at the shared key set.

use crate::harness::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use privgate::analytics::fhe::{contribution, keyset, PublicMaterial};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::OnceLock;

mod keys;
mod offline;
mod store;

const PURPOSE: &str = "aggregate_reporting";

/// The key set made once for this binary.
pub struct Fixture {
    /// Keeps the fixture directory (certificates, store, key set) for the whole run.
    ws: Workspace,
    /// The public material, as contributors load it.
    pub public: PublicMaterial,
}

impl Fixture {
    pub fn fhe_dir(&self) -> PathBuf {
        self.ws.path("fhe")
    }

    pub fn config(&self) -> PathBuf {
        self.ws.path("privgate.toml")
    }
}

/// Makes the key set on first use (`privgate keys init`, then `privgate fhe keygen`).
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ws = Workspace::new();
        let kek = ws.write("kek.hex", &"5a".repeat(32));
        std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let extra = format!(
            "[store]\nurl = \"sqlite://{dir}/privgate.db\"\n\n[keys]\nkek = {{ source = \"key_file\", path = \"{kek}\" }}\n\n[fhe]\ndir = \"fhe\"\n",
            dir = ws.dir.path().display(),
            kek = kek.display()
        );
        let path = ws.write("privgate.toml", &config(&ws, "127.0.0.1:9".parse().unwrap(), "", &extra));
        let init = privgate(["keys", "init", "--config", path.to_str().unwrap()]);
        assert!(init.ok, "{}", init.all());
        let started = std::time::Instant::now();
        let keygen = privgate(["fhe", "keygen", "--config", path.to_str().unwrap()]);
        assert!(keygen.ok, "{}", keygen.all());
        eprintln!("fhe keygen took {:.1} s:\n{}", started.elapsed().as_secs_f64(), keygen.stdout);
        let public = keyset::load_public(&ws.path("fhe")).unwrap();
        Fixture { ws, public }
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An access token. A service's token has `client_id == sub`; `org` is its organisation.
pub fn token(sub: &str, service: bool, roles: &[&str], org: Option<&str>) -> String {
    let mut claims = json!({
        "iss": ISS, "aud": AUD, "sub": sub,
        "client_id": if service { sub.to_owned() } else { "console".to_owned() },
        "exp": now() + 600, "iat": now(), "jti": format!("t-{sub}"),
        "roles": roles, "purposes": [PURPOSE], "amr": ["pwd"], "auth_time": now(),
    });
    if let Some(org) = org {
        claims["org"] = org.into();
    }
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    encode(
        &header,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn analyst() -> String {
    token("ana", false, &["analyst"], None)
}

pub fn officer() -> String {
    token("rita", false, &["release_officer"], None)
}

pub fn branch(id: &str, org: &str) -> String {
    token(id, true, &["contributor"], Some(org))
}

/// A workspace whose store is a copy of the fixture's (same keyring), and a gateway
/// config serving `/fhe/v1` with the shipped policies, an audit chain and `batch_size`.
pub fn gateway_config(ws: &Workspace, batch_size: u32) -> PathBuf {
    let fixture = fixture();
    for suffix in ["", "-wal", "-shm"] {
        let from = fixture.ws.path(&format!("privgate.db{suffix}"));
        if from.exists() {
            std::fs::copy(&from, ws.path(&format!("privgate.db{suffix}"))).unwrap();
        }
    }
    let store = format!(
        "[store]\nurl = \"sqlite://{}/privgate.db\"",
        ws.dir.path().display()
    );
    gateway_config_on(
        ws,
        batch_size,
        &store,
        &fixture.ws.path("kek.hex"),
        &fixture.fhe_dir(),
    )
}

/// [`gateway_config`] on another store (a `[store]` section), key-encryption key and FHE
/// key set directory.
pub fn gateway_config_on(
    ws: &Workspace,
    batch_size: u32,
    store: &str,
    kek: &std::path::Path,
    fhe: &std::path::Path,
) -> PathBuf {
    let policies = shipped_policies();
    let secret = ws.write("hmac.secret", SECRET);
    let extra = format!(
        r#"
[[route]]
name = "fhe"
path_prefix = "/fhe/v1"
serve = "fhe"

[policy]
dir = "{policies}"

{store}

[keys]
kek = {{ source = "key_file", path = "{kek}" }}

[fhe]
dir = "{fhe}"
batch_size = {batch_size}

{audit}{issuer}"#,
        policies = policies.display(),
        kek = kek.display(),
        fhe = fhe.display(),
        audit = audit_section_with_pseudonyms(ws),
        issuer = staff_issuer_section(&secret, "organisation_claim = \"org\"\n"),
    );
    ws.write(
        "privgate.toml",
        &config(ws, "127.0.0.1:9".parse().unwrap(), "", &extra),
    )
}

/// Sends a JSON call with a bearer token.
pub async fn call(
    client: &HttpsClient,
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Reply {
    try_call(client, method, url, token, body).await.unwrap()
}

/// [`call`], or `None` when the connection fails (the gateway is gone).
pub async fn try_call(
    client: &HttpsClient,
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Option<Reply> {
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("x-purpose", PURPOSE);
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Full::new(Bytes::from(v.to_string()))
        }
        None => Full::default(),
    };
    send(client, req.body(body).unwrap()).await.ok()
}

/// A contribution body: `value` in `bits`, proven for (aggregate, contributor, nonce).
pub fn contribution_body(aggregate: &str, contributor: &str, value: u64, bits: u32) -> Value {
    contribution_body_for(&fixture().public, aggregate, contributor, value, bits)
}

/// [`contribution_body`] under another key set's public material.
pub fn contribution_body_for(
    public: &PublicMaterial,
    aggregate: &str,
    contributor: &str,
    value: u64,
    bits: u32,
) -> Value {
    let nonce = format!("{:032x}", rand::random::<u128>());
    let meta = contribution::metadata(aggregate, contributor, &nonce);
    let bytes = contribution::encrypt_unchecked(public, value, bits, &meta).unwrap();
    json!({ "nonce": nonce, "ciphertext": B64.encode(bytes) })
}

pub async fn create(client: &HttpsClient, gw: &Gateway, body: Value) -> Reply {
    call(
        client,
        "POST",
        &gw.url("/fhe/v1/aggregates"),
        &analyst(),
        Some(body),
    )
    .await
}

/// Creates an aggregate and returns its id.
async fn created_id(client: &HttpsClient, gw: &Gateway, body: Value) -> String {
    create(client, gw, body).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn contribute(
    client: &HttpsClient,
    gw: &Gateway,
    id: &str,
    who: &str,
    org: &str,
    value: u64,
) -> Reply {
    let body = contribution_body(id, &format!("Service:oauth:{who}"), value, 8);
    let url = gw.url(&format!("/fhe/v1/aggregates/{id}/contributions"));
    call(client, "POST", &url, &branch(who, org), Some(body)).await
}

async fn release(client: &HttpsClient, gw: &Gateway, id: &str) -> Reply {
    call(
        client,
        "POST",
        &gw.url(&format!("/fhe/v1/aggregates/{id}/release")),
        &officer(),
        None,
    )
    .await
}

pub async fn stop(gw: Gateway) {
    gw.signal(nix::sys::signal::Signal::SIGTERM);
    let mut gw = gw;
    let _ = tokio::task::spawn_blocking(move || gw.child.wait())
        .await
        .unwrap();
}

fn aggregate(min_organisations: u64) -> Value {
    json!({
        "name": "branch exposures", "bits": 8, "max_contributors": 20,
        "min_organisations": min_organisations, "open_for": "1h",
    })
}

/// A policy that demands a fresh second factor is answered with the route's RFC 9470
/// challenge, as on the other APIs the gateway serves, not with a plain refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_up_policy_is_answered_with_a_challenge() {
    let ws = Workspace::new();
    let shipped = shipped_policies();
    let copy = ws.path("policies");
    crate::harness::copy_shipped_policies(&copy);
    std::fs::write(
        copy.join("step_up.cedar"),
        r#"@id("creating-aggregates-needs-fresh-mfa")
@reason("step_up_required")
forbid (principal, action == PrivGate::Action::"aggregate:create", resource)
unless { context.authentication.amr.contains("otp") && context.authentication.age_seconds <= 300 };
"#,
    )
    .unwrap();
    let text = std::fs::read_to_string(gateway_config(&ws, 16))
        .unwrap()
        .replace(&shipped.display().to_string(), &copy.display().to_string());
    let gw = Gateway::start(&ws.write("privgate.toml", &text));
    let client = https_client(&ws, None, false);
    let reply = create(&client, &gw, aggregate(3)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\""),
        "{challenge}"
    );
    stop(gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aggregate_totals_contributions_and_releases_only_the_total() {
    let ws = Workspace::new();
    let gw = Gateway::start(&gateway_config(&ws, 16));
    let client = https_client(&ws, None, false);

    // The public key and CRS, with the hash contributors pin.
    let public = call(
        &client,
        "GET",
        &gw.url("/fhe/v1/public-key"),
        &branch("branch-a1", "bank-a"),
        None,
    )
    .await;
    assert_eq!(public.status, StatusCode::OK);
    assert_eq!(public.json()["sha256"], fixture().public.sha256.as_str());
    assert_eq!(
        B64.decode(public.json()["crs"].as_str().unwrap()).unwrap(),
        fixture().public.crs_bytes
    );

    // The policy set's floor: no aggregate releasing fewer than three organisations' data.
    let below = create(&client, &gw, aggregate(2)).await;
    assert_eq!(
        (below.status, below.error_code().as_str()),
        (StatusCode::FORBIDDEN, "threshold_below_floor")
    );
    // Sizes whose total could outgrow the widest accumulator, and widths no proof fixes.
    for body in [
        json!({"name": "x", "bits": 56, "max_contributors": 2_000_000, "min_organisations": 3, "open_for": "1h"}),
        json!({"name": "x", "bits": 18, "max_contributors": 5, "min_organisations": 3, "open_for": "1h"}),
    ] {
        let refused = create(&client, &gw, body).await;
        assert_eq!(
            (refused.status, refused.error_code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request")
        );
    }
    let created = create(&client, &gw, aggregate(3)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.json()["accumulator_bits"], 14);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let other = created_id(&client, &gw, aggregate(3)).await;

    // Two services of bank-a, one of bank-b: two organisations.
    for (who, org, value) in [
        ("branch-a1", "bank-a", 100),
        ("branch-a2", "bank-a", 50),
        ("branch-b1", "bank-b", 70),
    ] {
        let reply = contribute(&client, &gw, &id, who, org, value).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{who}: {:?}", reply.body);
    }
    let status = call(
        &client,
        "GET",
        &gw.url(&format!("/fhe/v1/aggregates/{id}")),
        &analyst(),
        None,
    )
    .await;
    assert_eq!(
        (
            status.json()["contributors"].as_i64(),
            status.json()["organisations"].as_i64()
        ),
        (Some(3), Some(2))
    );
    let refused = release(&client, &gw, &id).await;
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (StatusCode::FORBIDDEN, "threshold_not_met")
    );
    // Contributors may not release, whatever the count.
    let by_branch = call(
        &client,
        "POST",
        &gw.url(&format!("/fhe/v1/aggregates/{id}/release")),
        &branch("branch-a1", "bank-a"),
        None,
    )
    .await;
    assert_eq!(by_branch.status, StatusCode::FORBIDDEN);

    // Refused contributions: each with its stable code, none stored.
    let url = gw.url(&format!("/fhe/v1/aggregates/{id}/contributions"));
    let c1 = branch("branch-c1", "bank-c");
    let for_other = contribution_body(&other, "Service:oauth:branch-c1", 5, 8);
    let as_someone_else = contribution_body(&id, "Service:oauth:branch-b1", 5, 8);
    let too_wide = contribution_body(&id, "Service:oauth:branch-c1", 300, 16);
    let garbage =
        json!({ "nonce": "n0000000000000000", "ciphertext": B64.encode(b"not a ciphertext") });
    let not_b64 = json!({ "nonce": "n0000000000000001", "ciphertext": "%%%" });
    let wrong_key = {
        // Same parameters and CRS, another key set's public key.
        let stranger = tfhe::ClientKey::generate(privgate::analytics::fhe::params::config());
        let foreign = PublicMaterial {
            public_key: tfhe::CompactPublicKey::try_new(&stranger).unwrap(),
            crs: fixture().public.crs.clone(),
            public_key_bytes: Vec::new(),
            crs_bytes: Vec::new(),
            sha256: String::new(),
        };
        let nonce = "n0000000000000003";
        let meta = contribution::metadata(&id, "Service:oauth:branch-c1", nonce);
        let bytes = contribution::encrypt(&foreign, 5, 8, &meta).unwrap();
        json!({ "nonce": nonce, "ciphertext": B64.encode(bytes) })
    };
    for (body, code) in [
        (for_other, "fhe_proof_invalid"),
        (as_someone_else, "fhe_proof_invalid"),
        (too_wide, "fhe_contribution_too_wide"),
        (garbage, "fhe_malformed"),
        (wrong_key, "fhe_proof_invalid"),
        (not_b64, "fhe_malformed"),
    ] {
        let reply = call(&client, "POST", &url, &c1, Some(body)).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (StatusCode::BAD_REQUEST, code)
        );
    }
    // Callers without an organisation cannot contribute at all (the threshold counts
    // organisations): a service or a user without the claim, or with an empty one, even
    // with a well-formed contribution proven for them.
    let loners = [
        ("loner-1", token("loner-1", true, &["contributor"], None)),
        (
            "loner-2",
            token("loner-2", true, &["contributor"], Some("")),
        ),
        (
            "loner-3",
            token("loner-3", true, &["contributor"], Some("  ")),
        ),
        (
            "lone-user",
            token("lone-user", false, &["contributor"], None),
        ),
    ];
    for (i, (who, loner)) in loners.iter().enumerate() {
        let body = if i == 0 {
            contribution_body(&id, &format!("Service:oauth:{who}"), 5, 8)
        } else {
            json!({ "nonce": format!("n-loner-{i:012}"), "ciphertext": B64.encode(b"x") })
        };
        let reply = call(&client, "POST", &url, loner, Some(body)).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (StatusCode::FORBIDDEN, "organisation_required"),
            "{who}"
        );
    }
    // Over the body limit: refused from the declared length, before the body is read (the
    // gateway may close while the client is still writing: then the write fails).
    let huge = json!({ "nonce": "n0000000000000002", "ciphertext": "A".repeat(2 << 20) });
    let req = Request::post(&url)
        .header("authorization", format!("Bearer {c1}"))
        .header("x-purpose", PURPOSE)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(huge.to_string())))
        .unwrap();
    if let Ok(reply) = send(&client, req).await {
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
    let replayed = contribution_body(&id, "Service:oauth:branch-c1", 5, 8);
    assert_eq!(
        call(&client, "POST", &url, &c1, Some(replayed.clone()))
            .await
            .status,
        StatusCode::CREATED
    );
    let again = call(&client, "POST", &url, &c1, Some(replayed)).await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (StatusCode::CONFLICT, "nonce_reused")
    );

    // branch-b1 replaces its 70 with 20 (its earlier one no longer counts).
    let replaced = contribute(&client, &gw, &id, "branch-b1", "bank-b", 20).await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(replaced.json()["replaced"], true);

    let status = call(
        &client,
        "GET",
        &gw.url(&format!("/fhe/v1/aggregates/{id}")),
        &analyst(),
        None,
    )
    .await;
    let shown = status.json();
    assert_eq!(
        (
            shown["contributors"].as_i64(),
            shown["organisations"].as_i64()
        ),
        (Some(4), Some(3))
    );
    assert!(shown.get("total").is_none());
    let released = release(&client, &gw, &id).await;
    assert_eq!(released.status, StatusCode::OK, "{:?}", released.body);
    assert_eq!(released.json()["total"], "175");
    assert_eq!(released.json()["mode"], "exact");
    let twice = release(&client, &gw, &id).await;
    assert_eq!(
        (twice.status, twice.error_code().as_str()),
        (StatusCode::CONFLICT, "aggregate_closed")
    );
    let late = contribute(&client, &gw, &id, "branch-d1", "bank-d", 1).await;
    assert_eq!(late.error_code(), "aggregate_closed");
    stop(gw).await;

    // Audited: the release, with the deciding policy and the aggregate; the refusal too.
    let records: Vec<Value> = std::fs::read_to_string(ws.path("audit/gw.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let releases: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "aggregate:release" && r["aggregate_id"] == id.as_str())
        .collect();
    assert!(releases.iter().any(|r| r["decision"] == "allow"
        && r["status"] == 200
        && r["policy_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "release-officers-release-totals")));
    assert!(releases
        .iter()
        .any(|r| r["decision"] == "deny" && r["status"] == 403));
    assert!(
        records.iter().all(|r| r.get("total").is_none()),
        "a value in the audit trail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contributions_and_folded_batches_survive_a_restart() {
    let ws = Workspace::new();
    let path = gateway_config(&ws, 2);
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let exact = created_id(&client, &gw, aggregate(3)).await;
    let mut dp_body = aggregate(3);
    dp_body["release"] = json!({ "mode": "dp", "epsilon": 1.0, "budget": 1.0 });
    let dp = created_id(&client, &gw, dp_body).await;
    // A full batch (folded in the background) and one open contribution before the restart.
    for (who, org, value) in [
        ("b-a", "bank-a", 11),
        ("b-b", "bank-b", 22),
        ("b-c", "bank-c", 33),
    ] {
        assert_eq!(
            contribute(&client, &gw, &exact, who, org, value)
                .await
                .status,
            StatusCode::CREATED
        );
        assert_eq!(
            contribute(&client, &gw, &dp, who, org, value).await.status,
            StatusCode::CREATED
        );
    }
    stop(gw).await;

    let gw = Gateway::start(&path);
    // After the restart: the contributor client tool, over TLS with its token.
    let token = ws.write("branch.token", &branch("b-d", "bank-d"));
    let run = privgate([
        "fhe",
        "contribute",
        "--gateway",
        &gw.url("/fhe/v1"),
        "--aggregate",
        &exact,
        "--value",
        "44",
        "--ca",
        ws.path("certs/ca.pem").to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
        "--purpose",
        PURPOSE,
    ]);
    assert!(run.ok, "{}", run.all());
    assert!(run.stdout.contains("\"replaced\":false"), "{}", run.stdout);
    let released = release(&client, &gw, &exact).await;
    assert_eq!(
        released.status,
        StatusCode::OK,
        "{:?} {:?}",
        released.body,
        gw.logs.lock().unwrap()
    );
    assert_eq!(released.json()["total"], (11 + 22 + 33 + 44).to_string());
    assert_eq!(released.json()["contributors"], 4);

    // The DP release: noisy (discrete Laplace, scale 255 / 1.0) and charged to the
    // aggregate's own budget, which one release spends.
    let noisy = release(&client, &gw, &dp).await;
    assert_eq!(noisy.status, StatusCode::OK, "{:?}", noisy.body);
    assert_eq!(noisy.json()["mode"], "dp");
    let total: i64 = noisy.json()["total"].as_str().unwrap().parse().unwrap();
    assert!((total - 66).abs() < 255 * 25, "{total}");
    let spent = release(&client, &gw, &dp).await;
    assert_eq!(
        (spent.status, spent.error_code().as_str()),
        (StatusCode::CONFLICT, "privacy_budget_exhausted")
    );
    stop(gw).await;
}

#[test]
fn an_fhe_route_without_fhe_keys_does_not_pass_check() {
    let ws = Workspace::new();
    let policies = shipped_policies();
    let extra = format!(
        "[[route]]\nname = \"fhe\"\npath_prefix = \"/fhe/v1\"\nserve = \"fhe\"\n\n[policy]\ndir = \"{}\"\n",
        policies.display()
    );
    let path = ws.write(
        "privgate.toml",
        &config(&ws, "127.0.0.1:9".parse().unwrap(), "", &extra),
    );
    let run = privgate(["check", "--config", path.to_str().unwrap()]);
    assert!(!run.ok);
    assert!(
        run.all().contains("serve = \"fhe\" needs [fhe] and [keys]"),
        "{}",
        run.all()
    );
}

//! Gateway-native TOTP, service API keys and rate limits through the real binary: a real
//! store and keyring, real TLS clients and a real upstream that counts what reaches it.

use super::*;

const POST: &str = "POST";

/// Identity routes and issuer, plus `[keys]`, `[totp]` and a rate-limited route; the
/// keyring is initialised through the CLI.
fn mfa_workspace(up: std::net::SocketAddr) -> (Workspace, SigningKey, std::path::PathBuf) {
    let ws = Workspace::new();
    let es = ec_key("es-1");
    let jwks_path = ws.write("jwks.json", &jwks(&[&es]));
    let source = format!("jwks_file = \"{}\"", jwks_path.display());
    let kek = ws.write("kek.hex", &"3c".repeat(32));
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = format!(
        r#"{base}
[keys]
kek = {{ source = "key_file", path = "{kek}" }}

[totp]
max_failures = 3

[[route]]
name = "limited"
path_prefix = "/limited"
upstream = "main"
[route.rate_limit]
per_address = "1/m"
burst = 2
"#,
        base = identity_config(&ws, up, &source),
        kek = kek.display()
    );
    let path = ws.write("privgate.toml", &text);
    let init = privgate(["keys", "init", "--config", path.to_str().unwrap()]);
    assert!(init.ok, "{}", init.all());
    (ws, es, path)
}

fn post(url: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = request(url, headers);
    *req.method_mut() = http::Method::from_bytes(POST.as_bytes()).unwrap();
    req
}

fn code_at(totp: &totp_rs::TOTP, offset_s: i64) -> String {
    totp.generate(u64::try_from(now() + offset_s).unwrap())
}

#[tokio::test]
async fn totp_enrollment_round_trip_then_x_otp_satisfies_step_up_once() {
    let up = Upstream::start().await;
    let (ws, es, path) = mfa_workspace(up.addr);
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let alice = bearer(&sign(
        &es,
        &with(json!({
            "acr": "urn:privgate:mfa", "amr": ["pwd"], "auth_time": now() - 3600
        })),
    ));

    // Enrollment answers once with the URI and a QR code; anonymous callers get nothing.
    let enroll = gw.url("/mfa/v1/totp/enroll?algorithm=SHA256&digits=8");
    let anonymous = send(&client, post(&enroll, &[])).await.unwrap();
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let reply = send(&client, post(&enroll, &[("authorization", &alice)]))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let body = reply.json();
    assert!(body["qr_svg"].as_str().unwrap().contains("<svg"));
    let uri = body["otpauth_uri"].as_str().unwrap();
    let totp = totp_rs::TOTP::from_url_unchecked(uri).unwrap();
    let secret = totp.get_secret_base32();

    // Confirm: a wrong code is refused, the first good one activates.
    let confirm = gw.url("/mfa/v1/totp/confirm");
    let wrong = send(
        &client,
        post(
            &confirm,
            &[("authorization", &alice), ("x-otp", "00000000")],
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        (wrong.status, wrong.error_code().as_str()),
        (StatusCode::UNAUTHORIZED, "otp_invalid")
    );
    let first = code_at(&totp, -30);
    let ok = send(
        &client,
        post(&confirm, &[("authorization", &alice), ("x-otp", &first)]),
    )
    .await
    .unwrap();
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let again = send(&client, post(&enroll, &[("authorization", &alice)]))
        .await
        .unwrap();
    assert_eq!(again.error_code(), "totp_already_enrolled");

    // Step-up: the stale token alone is challenged; with a fresh code it passes, once.
    let url = gw.url("/stepup/echo");
    let stale = send(&client, request(&url, &[("authorization", &alice)]))
        .await
        .unwrap();
    assert_eq!(stale.error_code(), "step_up_required");
    let code = code_at(&totp, 0);
    let passed = send(
        &client,
        request(&url, &[("authorization", &alice), ("x-otp", &code)]),
    )
    .await
    .unwrap();
    assert_eq!(passed.status, StatusCode::OK, "{:?}", passed.body);
    assert!(
        passed.json()["headers"].get("x-otp").is_none(),
        "X-OTP reached the upstream"
    );
    let replay = send(
        &client,
        request(&url, &[("authorization", &alice), ("x-otp", &code)]),
    )
    .await
    .unwrap();
    assert_eq!(
        (replay.status, replay.error_code().as_str()),
        (StatusCode::UNAUTHORIZED, "otp_invalid")
    );
    assert!(replay.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));

    // Another user cannot use alice's code.
    let bob = bearer(&sign(&es, &with(json!({ "sub": "bob", "jti": "t-bob" }))));
    let next = code_at(&totp, 30);
    let theirs = send(
        &client,
        request(&url, &[("authorization", &bob), ("x-otp", &next)]),
    )
    .await
    .unwrap();
    assert_eq!(theirs.error_code(), "otp_invalid");
    assert_eq!(up.requests(), 1);

    // The operator's list names alice, never the secret; the logs never carry it either.
    let list = privgate(["totp", "list", "--config", path.to_str().unwrap()]);
    assert!(
        list.ok && list.all().contains("alice\tSHA256\t8\tactive"),
        "{}",
        list.all()
    );
    assert!(!list.all().contains(&secret));
    let logs = format!("{:?}", gw.logs.lock().unwrap());
    assert!(!logs.contains(&secret) && !logs.contains(&code) && !logs.contains(&first));
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(metrics.contains("event=\"otp_failure\""), "{metrics}");
    assert!(metrics.contains("event=\"step_up_challenge\""), "{metrics}");
}

#[tokio::test]
async fn wrong_codes_lock_the_user_with_retry_after() {
    let up = Upstream::start().await;
    let (ws, es, path) = mfa_workspace(up.addr);
    let enrolled = privgate([
        "totp",
        "dev-enroll",
        "--user",
        "alice",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert!(
        enrolled.ok && enrolled.all().contains("development only"),
        "{}",
        enrolled.all()
    );
    // With an audit trail: refusals are recorded with a decision naming them.
    let audited = std::fs::read_to_string(&path).unwrap() + &crate::audit::audit_section(&ws);
    std::fs::write(&path, audited).unwrap();
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let alice = bearer(&sign(&es, &claims()));
    let url = gw.url("/api/echo");
    for _ in 0..2 {
        let r = send(
            &client,
            request(&url, &[("authorization", &alice), ("x-otp", "135791")]),
        )
        .await
        .unwrap();
        assert_eq!(r.error_code(), "otp_invalid");
    }
    let locked = send(
        &client,
        request(&url, &[("authorization", &alice), ("x-otp", "135791")]),
    )
    .await
    .unwrap();
    assert_eq!(
        (locked.status, locked.error_code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "otp_locked")
    );
    let retry: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((890..=900).contains(&retry), "{retry}");
    assert_eq!(up.requests(), 0);
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(metrics.contains("event=\"otp_lockout\""), "{metrics}");
    crate::audit::stop(gw).await;
    let chain = std::fs::read_to_string(ws.path("audit/gw-test.jsonl")).unwrap();
    let decisions: Vec<String> = chain
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["decision"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        decisions,
        ["deny_otp_invalid", "deny_otp_invalid", "deny_otp_locked"]
    );
    assert!(
        !chain.contains("135791"),
        "codes never reach the audit trail"
    );
}

#[tokio::test]
async fn api_keys_created_used_and_revoked_through_the_cli() {
    let up = Upstream::start().await;
    let (ws, _es, path) = mfa_workspace(up.addr);
    let config = path.to_str().unwrap();
    let created = privgate([
        "apikey",
        "create",
        "--service",
        "batch",
        "--roles",
        "reporting,ops",
        "--config",
        config,
    ]);
    assert!(created.ok, "{}", created.all());
    let key = created
        .all()
        .lines()
        .find(|l| l.starts_with("pgk_"))
        .unwrap()
        .trim()
        .to_owned();
    let id = key[4..20].to_owned();
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let url = gw.url("/api/echo");
    let auth = format!("ApiKey {key}");
    let ok = send(&client, request(&url, &[("authorization", &auth)]))
        .await
        .unwrap();
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert!(
        ok.json()["headers"].get("authorization").is_none(),
        "key reached the upstream"
    );
    assert_eq!(up.requests(), 1);

    let mut wrong = key.clone();
    wrong.pop();
    wrong.push(if key.ends_with('A') { 'B' } else { 'A' });
    for bad in [
        wrong.as_str(),
        "pgk_nothex_abc",
        "pgk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let r = send(
            &client,
            request(&url, &[("authorization", &format!("ApiKey {bad}"))]),
        )
        .await
        .unwrap();
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_api_key"),
            "{bad}"
        );
    }
    let list = privgate(["apikey", "list", "--config", config]);
    assert!(
        list.ok && list.all().contains(&id) && !list.all().contains(&key[21..]),
        "{}",
        list.all()
    );
    let revoked = privgate(["apikey", "revoke", &id, "--config", config]);
    assert!(revoked.ok, "{}", revoked.all());
    let r = send(&client, request(&url, &[("authorization", &auth)]))
        .await
        .unwrap();
    assert_eq!(r.error_code(), "invalid_api_key");
    assert_eq!(up.requests(), 1);
    assert!(!format!("{:?}", gw.logs.lock().unwrap()).contains(&key[21..]));
}

#[tokio::test]
async fn a_small_route_limit_answers_429_with_retry_after_and_counts_it() {
    let up = Upstream::start().await;
    let (ws, _es, path) = mfa_workspace(up.addr);
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let url = gw.url("/limited/x");
    for _ in 0..2 {
        assert_eq!(get(&client, &url).await.status, StatusCode::OK);
    }
    let refused = get(&client, &url).await;
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Other routes have no limit.
    assert_eq!(get(&client, &gw.url("/other")).await.status, StatusCode::OK);
    assert_eq!(up.requests(), 3);
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(
        metrics.contains("privgate_security_events_total{route=\"limited\",event=\"rate_limited\",reason=\"per_address\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_code_exactly_one_passes() {
    let up = Upstream::start().await;
    let (ws, es, path) = mfa_workspace(up.addr);
    let config = path.to_str().unwrap();
    let enrolled = privgate(["totp", "dev-enroll", "--user", "alice", "--config", config]);
    assert!(enrolled.ok, "{}", enrolled.all());
    let uri = enrolled
        .stdout
        .lines()
        .find(|l| l.starts_with("otpauth://"))
        .unwrap();
    let totp = totp_rs::TOTP::from_url_unchecked(uri).unwrap();
    // Two replicas sharing the store.
    let gateways = [Gateway::start(&path), Gateway::start(&path)];
    let client = https_client(&ws, None, false);
    let alice = bearer(&sign(
        &es,
        &with(json!({
            "acr": "urn:privgate:mfa", "amr": ["pwd"], "auth_time": now() - 3600
        })),
    ));
    let code = code_at(&totp, 0);
    let attempts = (0..8).map(|i| {
        let url = gateways[i % 2].url("/stepup/echo");
        let req = request(&url, &[("authorization", &alice), ("x-otp", &code)]);
        let client = client.clone();
        async move { send(&client, req).await.unwrap().status }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let passed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(passed, 1, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED));
    assert_eq!(up.requests(), 1);
}

//! Gateway-native TOTP, service API keys and rate limits through the real binary: a real
//! store and keyring, real TLS clients and a real upstream that counts what reaches it.

use super::*;

const POST: &str = "POST";

/// Identity routes and issuer, plus `[keys]`, `[totp]` and a rate-limited route; the
/// keyring is initialised through the CLI.
pub(crate) fn mfa_workspace(
    up: std::net::SocketAddr,
) -> (Workspace, SigningKey, std::path::PathBuf) {
    mfa_workspace_with(up, "", "")
}

/// [`mfa_workspace`] with more `[keys]` lines and more `[totp]` lines (or subtables).
fn mfa_workspace_with(
    up: std::net::SocketAddr,
    keys_extra: &str,
    totp_extra: &str,
) -> (Workspace, SigningKey, std::path::PathBuf) {
    mfa_workspace_in(Workspace::new(), up, keys_extra, totp_extra)
}

/// [`mfa_workspace_with`] in a given workspace (one holding files the extra lines name,
/// such as a PostgreSQL password file).
pub(crate) fn mfa_workspace_in(
    ws: Workspace,
    up: std::net::SocketAddr,
    keys_extra: &str,
    totp_extra: &str,
) -> (Workspace, SigningKey, std::path::PathBuf) {
    let es = ec_key("es-1");
    let jwks_path = ws.write("jwks.json", &jwks(&[&es]));
    let source = format!("jwks_file = \"{}\"", jwks_path.display());
    let kek = ws.write("kek.hex", &"3c".repeat(32));
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = format!(
        r#"{base}
[keys]
kek = {{ source = "key_file", path = "{kek}" }}
{keys_extra}

[totp]
max_failures = 3
{totp_extra}

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

pub(crate) fn code_at(totp: &totp_rs::TOTP, offset_s: i64) -> String {
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
    // Enrolling needs a sign-in with a second factor at the identity provider, just now.
    let signed_in = bearer(&sign(
        &es,
        &with(json!({ "amr": ["pwd", "hwk"], "auth_time": now() - 5, "sid": "s-laptop" })),
    ));

    // Enrollment answers once with the URI and a QR code; anonymous callers get nothing.
    let enroll = gw.url("/mfa/v1/totp/enroll?algorithm=SHA256&digits=8");
    let anonymous = send(&client, post(&enroll, &[])).await.unwrap();
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let reply = send(&client, post(&enroll, &[("authorization", &signed_in)]))
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
            &[("authorization", &signed_in), ("x-otp", "00000000")],
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
        post(
            &confirm,
            &[("authorization", &signed_in), ("x-otp", &first)],
        ),
    )
    .await
    .unwrap();
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let again = send(&client, post(&enroll, &[("authorization", &signed_in)]))
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
    // The code stepped up that request only: the token's identity, cached since its first
    // use, gained no `otp` and no fresh sign-in from it.
    let after = send(&client, request(&url, &[("authorization", &alice)]))
        .await
        .unwrap();
    assert_eq!(after.error_code(), "step_up_required");
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

/// The enrollment endpoint's answer to `token` (with `extra` headers): status and code.
async fn enroll_with(
    client: &HttpsClient,
    gw: &Gateway,
    token: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, String, Option<String>) {
    let auth = bearer(token);
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    let reply = send(client, post(&gw.url("/mfa/v1/totp/enroll"), &headers))
        .await
        .unwrap();
    let challenge = reply
        .headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let code = if reply.status.is_success() {
        String::new()
    } else {
        reply.error_code()
    };
    (reply.status, code, challenge)
}

#[tokio::test]
async fn a_stolen_password_only_token_cannot_enroll_a_second_factor() {
    let up = Upstream::start().await;
    let (ws, es, path) = mfa_workspace(up.addr);
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let token = |claims: Value| sign(&es, &with(claims));
    // Not strong enough, or not fresh enough: the RFC 9470 challenge, no enrollment.
    let refused = [
        json!({ "amr": ["pwd"], "auth_time": now() }),
        json!({ "amr": ["pwd", "kba"], "auth_time": now() }),
        json!({ "amr": ["pin"], "auth_time": now() }),
        json!({ "amr": [], "auth_time": now(), "acr": "urn:privgate:mfa" }),
        json!({ "amr": ["pwd", "mfa"], "auth_time": now() - 301 }),
        json!({ "amr": ["hwk"] }),
        json!({ "amr": "pwd", "auth_time": now() }),
        // A sign-in in the future proves no recent one: it would stay fresh for ever.
        json!({ "amr": ["pwd", "mfa"], "auth_time": now() + 3600 }),
        json!({ "amr": "pwd mfa", "auth_time": now() + 86_400 }),
        json!({ "amr": ["hwk"], "auth_time": 4_102_444_800_i64 }),
    ];
    for claims in &refused {
        let (status, code, challenge) =
            enroll_with(&client, &gw, &token(claims.clone()), &[]).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "step_up_required"),
            "{claims}"
        );
        let challenge = challenge.unwrap_or_default();
        assert!(
            challenge.contains("insufficient_user_authentication")
                && challenge.contains("max_age=300"),
            "{challenge}"
        );
    }
    // Nothing was stored: the password-only token's codes do not exist, so X-OTP on a
    // step-up route stays refused, and confirming finds nothing to confirm.
    let stolen = token(json!({ "amr": ["pwd"], "auth_time": now() }));
    let confirm = send(
        &client,
        post(
            &gw.url("/mfa/v1/totp/confirm"),
            &[("authorization", &bearer(&stolen)), ("x-otp", "123456")],
        ),
    )
    .await
    .unwrap();
    assert_eq!(confirm.error_code(), "otp_invalid");
    let list = privgate(["totp", "list", "--config", path.to_str().unwrap()]);
    assert!(list.ok && !list.all().contains("alice"), "{}", list.all());
    // The gateway's own code is no evidence for enrolling (it is never checked there).
    let (status, code, _) = enroll_with(&client, &gw, &stolen, &[("x-otp", "123456")]).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "step_up_required")
    );
    // A fresh sign-in with another factor, whichever, enrolls (each user once).
    let accepted = [
        ("u-hwk", json!(["pwd", "hwk"])),
        ("u-otp", json!(["pwd", "otp"])),
        ("u-mfa", json!(["mfa"])),
        ("u-face", json!(["face"])),
    ];
    for (sub, amr) in accepted {
        let fresh = token(json!({ "sub": sub, "amr": amr, "auth_time": now() - 60 }));
        let (status, code, _) = enroll_with(&client, &gw, &fresh, &[]).await;
        assert_eq!(status, StatusCode::CREATED, "{sub}: {code}");
    }
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn a_pending_enrollment_belongs_to_the_session_that_started_it() {
    let up = Upstream::start().await;
    let (ws, es, path) = mfa_workspace(up.addr);
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let signed_in = |claims: Value| {
        let mut c = json!({ "amr": ["pwd", "hwk"], "auth_time": now() - 30 });
        for (k, v) in claims.as_object().unwrap() {
            c[k] = v.clone();
        }
        sign(&es, &with(c))
    };
    let laptop = signed_in(json!({ "sid": "s-laptop", "jti": "t-laptop-1" }));
    let (status, _, _) = enroll_with(&client, &gw, &laptop, &[]).await;
    assert_eq!(status, StatusCode::CREATED);
    let list = privgate(["totp", "list", "--config", path.to_str().unwrap()]);
    assert!(
        list.all().contains("alice\tSHA1\t6\tpending"),
        "{}",
        list.all()
    );
    let uri = {
        // The same session may start again (a lost QR code): that one is confirmed below.
        let refreshed = signed_in(json!({ "sid": "s-laptop", "jti": "t-laptop-2" }));
        let reply = send(
            &client,
            post(
                &gw.url("/mfa/v1/totp/enroll"),
                &[("authorization", &bearer(&refreshed))],
            ),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.json()["otpauth_uri"].as_str().unwrap().to_owned()
    };
    let totp = totp_rs::TOTP::from_url_unchecked(&uri).unwrap();
    let code = code_at(&totp, 0);
    // Other sessions, each strongly and freshly signed in: another sid, no sid (another
    // sign-in time), no sid and no auth_time cannot replace it or confirm it.
    let others = [
        signed_in(json!({ "sid": "s-attacker" })),
        signed_in(json!({ "auth_time": now() - 10 })),
        signed_in(json!({ "sid": "S-LAPTOP" })),
    ];
    let confirm = gw.url("/mfa/v1/totp/confirm");
    for other in &others {
        let (status, code_name, _) = enroll_with(&client, &gw, other, &[]).await;
        assert_eq!(
            (status, code_name.as_str()),
            (StatusCode::CONFLICT, "totp_enrollment_pending")
        );
        let theirs = send(
            &client,
            post(
                &confirm,
                &[("authorization", &bearer(other)), ("x-otp", &code)],
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            (theirs.status, theirs.error_code().as_str()),
            (StatusCode::UNAUTHORIZED, "otp_invalid")
        );
    }
    // Their attempts locked nothing (3 would have, with max_failures = 3); a token of the
    // starting session confirms, even one refreshed since.
    let later =
        signed_in(json!({ "sid": "s-laptop", "jti": "t-laptop-3", "auth_time": now() - 200 }));
    let ok = send(
        &client,
        post(
            &confirm,
            &[("authorization", &bearer(&later)), ("x-otp", &code)],
        ),
    )
    .await
    .unwrap();
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let list = privgate(["totp", "list", "--config", path.to_str().unwrap()]);
    assert!(
        list.all().contains("alice\tSHA1\t6\tactive\tno"),
        "{}",
        list.all()
    );
}

#[tokio::test]
async fn operator_mode_refuses_self_enrollment_and_a_provisioned_key_works_at_once() {
    let up = Upstream::start().await;
    // A long keyring refresh: only the recheck on an unknown key version can pick up the
    // `totp` key that `privgate totp provision` creates in another process.
    let (ws, es, path) = mfa_workspace_with(
        up.addr,
        "refresh_interval = \"60s\"",
        "[totp.enrollment]\nmode = \"operator\"",
    );
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let fresh = sign(
        &es,
        &with(json!({ "amr": ["pwd", "hwk"], "auth_time": now() - 5, "sid": "s-1" })),
    );
    for endpoint in ["/mfa/v1/totp/enroll", "/mfa/v1/totp/confirm"] {
        let reply = send(
            &client,
            post(
                &gw.url(endpoint),
                &[("authorization", &bearer(&fresh)), ("x-otp", "123456")],
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (StatusCode::FORBIDDEN, "totp_enrollment_by_operator"),
            "{endpoint}"
        );
    }
    // The gateway has read its keyring (no `totp` key yet) when the operator provisions.
    let stale = bearer(&sign(
        &es,
        &with(json!({ "acr": "urn:privgate:mfa", "amr": ["pwd"], "auth_time": now() - 3600 })),
    ));
    let url = gw.url("/stepup/echo");
    let before = send(&client, request(&url, &[("authorization", &stale)]))
        .await
        .unwrap();
    assert_eq!(before.error_code(), "step_up_required");
    let config = path.to_str().unwrap();
    let provisioned = privgate(["totp", "provision", "--user", "alice", "--config", config]);
    assert!(provisioned.ok, "{}", provisioned.all());
    let uri = provisioned
        .stdout
        .lines()
        .find(|l| l.starts_with("otpauth://"))
        .unwrap();
    let totp = totp_rs::TOTP::from_url_unchecked(uri).unwrap();
    let code = code_at(&totp, 0);
    let passed = send(
        &client,
        request(&url, &[("authorization", &stale), ("x-otp", &code)]),
    )
    .await
    .unwrap();
    assert_eq!(
        passed.status,
        StatusCode::OK,
        "{:?} {:?}",
        passed.body,
        gw.logs.lock().unwrap()
    );
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn totp_calls_are_a_served_route_audited_and_rate_limited_by_it() {
    let up = Upstream::start().await;
    // The TOTP endpoints on a route of their own, with a limit no other route has.
    let route = "\n[[route]]\nname = \"enrolment\"\nserve = \"totp\"\npath_prefix = \"/mfa/v1/totp\"\n[route.rate_limit]\nper_address = \"1/m\"\nburst = 3\n";
    let (ws, es, path) = mfa_workspace_with(up.addr, "", route);
    let audited = std::fs::read_to_string(&path).unwrap() + &crate::audit::audit_section(&ws);
    std::fs::write(&path, audited).unwrap();
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let signed_in = bearer(&sign(
        &es,
        &with(json!({ "amr": ["pwd", "hwk"], "auth_time": now() - 5, "sid": "s-1" })),
    ));
    let enroll = send(
        &client,
        post(
            &gw.url("/mfa/v1/totp/enroll"),
            &[("authorization", &signed_in)],
        ),
    )
    .await
    .unwrap();
    assert_eq!(enroll.status, StatusCode::CREATED, "{:?}", enroll.body);
    let uri = enroll.json()["otpauth_uri"].as_str().unwrap().to_owned();
    let totp = totp_rs::TOTP::from_url_unchecked(&uri).unwrap();
    let confirm = gw.url("/mfa/v1/totp/confirm");
    let wrong = send(
        &client,
        post(
            &confirm,
            &[("authorization", &signed_in), ("x-otp", "000000")],
        ),
    )
    .await
    .unwrap();
    assert_eq!(wrong.error_code(), "otp_invalid");
    let code = code_at(&totp, 0);
    let ok = send(
        &client,
        post(&confirm, &[("authorization", &signed_in), ("x-otp", &code)]),
    )
    .await
    .unwrap();
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    // The route's burst of 3 is spent; other routes are not limited by it.
    let limited = send(
        &client,
        post(&confirm, &[("authorization", &signed_in), ("x-otp", &code)]),
    )
    .await
    .unwrap();
    assert_eq!(
        (limited.status, limited.error_code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(get(&client, &gw.url("/other")).await.status, StatusCode::OK);
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(
        metrics.contains("privgate_security_events_total{route=\"enrolment\",event=\"rate_limited\",reason=\"per_address\"} 1"),
        "{metrics}"
    );

    // One audit record per call, on the route, with the action; never the secret or code.
    crate::audit::stop(gw).await;
    let chain = std::fs::read_to_string(ws.path("audit/gw-test.jsonl")).unwrap();
    let records: Vec<Value> = chain
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r["route"] == "enrolment")
        .collect();
    let seen: Vec<(&str, &str, u64)> = records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or(""),
                r["decision"].as_str().unwrap(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("totp:enroll", "allow", 201),
            ("totp:confirm", "deny_otp_invalid", 401),
            ("totp:confirm", "allow", 200),
            ("", "deny_rate_limited", 429),
        ]
    );
    assert!(records
        .iter()
        .all(|r| r["principal"] != "anonymous" || r["status"] == 429));
    let secret = totp.get_secret_base32();
    assert!(!chain.contains(&secret) && !chain.contains(&code));
    assert_eq!(up.requests(), 1);
}

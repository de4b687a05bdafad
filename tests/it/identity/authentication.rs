//! Step-up, revocation and token claims in the policy decision.

use super::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn step_up_challenge_names_the_route_requirements_exactly() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let es = ec_key("es-1");
    let jwks_path = ws.write("jwks.json", &jwks(&[&es]));
    let source = format!("jwks_file = \"{}\"", jwks_path.display());
    let path = ws.write("privgate.toml", &identity_config(&ws, up.addr, &source));
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let url = gw.url("/stepup/echo");
    let expected = "Bearer error=\"insufficient_user_authentication\", error_description=\"A \
                    different authentication level is required\", acr_values=\"urn:privgate:mfa\", \
                    max_age=300";
    let mfa = json!({ "acr": "urn:privgate:mfa", "amr": ["pwd", "otp"], "auth_time": now() - 5 });
    let cases = [
        (
            "password only",
            json!({ "acr": "urn:privgate:pwd", "amr": ["pwd"], "auth_time": now() - 5 }),
            false,
        ),
        (
            "otp but stale",
            json!({ "acr": "urn:privgate:mfa", "amr": ["otp"], "auth_time": now() - 600 }),
            false,
        ),
        (
            "otp without auth_time",
            json!({ "acr": "urn:privgate:mfa", "amr": ["otp"] }),
            false,
        ),
        ("fresh mfa", mfa, true),
    ];
    for (name, extra, ok) in cases {
        let auth = bearer(&sign(&es, &with(extra)));
        let reply = send(&client, request(&url, &[("authorization", &auth)]))
            .await
            .unwrap();
        if ok {
            assert_eq!(reply.status, StatusCode::OK, "{name}");
            continue;
        }
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (StatusCode::UNAUTHORIZED, "step_up_required"),
            "{name}"
        );
        assert_eq!(reply.headers["www-authenticate"], expected, "{name}");
    }
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn revoked_tokens_are_refused_on_every_replica_from_the_moment_the_cli_returns() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let es = ec_key("es-1");
    let jwks_path = ws.write("jwks.json", &jwks(&[&es]));
    let source = format!("jwks_file = \"{}\"", jwks_path.display());
    // Window 0: "from the moment the CLI returns" means the very next request.
    let text = identity_config(&ws, up.addr, &source) + "\n[store]\nrevocation_window = \"0s\"\n";
    let path = ws.write("privgate.toml", &text);
    // Two replicas sharing the store (and each caching the verified token).
    let gw = Gateway::start(&path);
    let replica = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let url = gw.url("/api/echo");
    let replica_url = replica.url("/api/echo");
    let first = sign(&es, &with(json!({ "jti": "t-1" })));
    let second = sign(&es, &with(json!({ "jti": "t-2", "iat": now() - 10 })));
    assert_eq!(status_with(&client, &url, &first).await, StatusCode::OK);
    assert_eq!(
        status_with(&client, &replica_url, &first).await,
        StatusCode::OK
    );

    let config = path.to_str().unwrap();
    let run = privgate(["token", "revoke", "--config", config, "--jti", "t-1"]);
    assert!(run.ok, "{}", run.all());
    for url in [&url, &replica_url] {
        assert_eq!(
            status_with(&client, url, &first).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(status_with(&client, &url, &second).await, StatusCode::OK);

    // Revoking the subject refuses its tokens issued so far, not those issued later.
    let run = privgate(["token", "revoke", "--config", config, "--sub", "alice"]);
    assert!(run.ok, "{}", run.all());
    assert_eq!(
        status_with(&client, &url, &second).await,
        StatusCode::UNAUTHORIZED
    );
    let later = sign(&es, &with(json!({ "jti": "t-3", "iat": now() + 2 })));
    assert_eq!(status_with(&client, &url, &later).await, StatusCode::OK);
    assert!(!privgate(["token", "revoke", "--config", config]).ok);
}

/// With a revocation window, two replicas that both served a token refuse it no later than
/// the window (plus a request's time) after the CLI revoked it.
#[tokio::test]
async fn revoked_tokens_are_refused_on_every_replica_within_the_window() {
    const WINDOW: Duration = Duration::from_millis(500);
    const MARGIN: Duration = Duration::from_millis(1500);
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let es = ec_key("es-1");
    let jwks_path = ws.write("jwks.json", &jwks(&[&es]));
    let source = format!("jwks_file = \"{}\"", jwks_path.display());
    let text =
        identity_config(&ws, up.addr, &source) + "\n[store]\nrevocation_window = \"500ms\"\n";
    let path = ws.write("privgate.toml", &text);
    let (one, two) = (Gateway::start(&path), Gateway::start(&path));
    let client = https_client(&ws, None, false);
    let token = sign(&es, &with(json!({ "jti": "t-9" })));
    let urls = [&one, &two].map(|gw| gw.url("/api/echo"));
    // The first request starts each replica's watcher; once it has confirmed the counters,
    // the second answer is cached (what the revocation must get past).
    for _ in 0..2 {
        for url in &urls {
            assert_eq!(status_with(&client, url, &token).await, StatusCode::OK);
        }
        tokio::time::sleep(WINDOW / 2).await;
    }
    let config = path.to_str().unwrap();
    let run = privgate(["token", "revoke", "--config", config, "--jti", "t-9"]);
    assert!(run.ok, "{}", run.all());
    let revoked_at = Instant::now();
    for url in &urls {
        while status_with(&client, url, &token).await == StatusCode::OK {
            assert!(
                revoked_at.elapsed() <= WINDOW + MARGIN,
                "{url} still accepted the revoked token {:?} after the CLI returned",
                revoked_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            status_with(&client, url, &token).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn token_claims_feed_the_policy_context_roles_purposes_and_step_up() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let es = ec_key("es-1");
    let jwks_path = ws.write("jwks.json", &jwks(&[&es]));
    let policies = shipped_policies();
    let source = format!(
        r#"jwks_file = "{jwks}"
purposes_claim = "purposes"

[policy]
dir = "{policies}"

[[route]]
name = "payments"
path_prefix = "/payments"
upstream = "main"
body = "buffered"
action = "payments:create"
amount = "$.amount_minor"

[[route]]
name = "customers"
path_prefix = "/customers"
upstream = "main"
body = "buffered"
action = "customers:read"
subject = {{ from = "path", id = "integer" }}
"#,
        jwks = jwks_path.display(),
        policies = policies.display()
    );
    let text = without_plain_routes(identity_config(&ws, up.addr, &source));
    let path = ws.write("privgate.toml", &text);
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let pay = |token: &str, amount: i64| {
        Request::post(gw.url("/payments"))
            .header("authorization", bearer(token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(
                "{{\"amount_minor\": {amount}}}"
            ))))
            .unwrap()
    };
    let payer = |extra: Value| {
        let mut c = with(json!({ "roles": ["payments"], "purposes": ["payments"] }));
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        sign(&es, &c)
    };
    let challenge = "Bearer error=\"insufficient_user_authentication\", error_description=\"A \
                     different authentication level is required\"";
    // (case, token, amount, status)
    let cases = [
        (
            "small payment, password only",
            payer(json!({ "amr": ["pwd"] })),
            1_000,
            StatusCode::OK,
        ),
        (
            "large payment, password only",
            payer(json!({ "amr": ["pwd"] })),
            250_000,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "large payment, stale otp",
            payer(json!({ "amr": ["otp"], "auth_time": now() - 600 })),
            250_000,
            StatusCode::UNAUTHORIZED,
        ),
        (
            // A sign-in in the future is no recent one: the policy's age is never fresh.
            "large payment, otp signed in an hour from now",
            payer(json!({ "amr": ["otp"], "auth_time": now() + 3600 })),
            250_000,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "large payment, fresh otp",
            payer(json!({ "amr": ["otp"], "auth_time": now() - 10 })),
            250_000,
            StatusCode::OK,
        ),
        (
            "client credentials (Service)",
            payer(json!({ "sub": "mobile-app" })),
            1_000,
            StatusCode::OK,
        ),
        (
            "no role",
            sign(&es, &with(json!({ "purposes": ["payments"] }))),
            1_000,
            StatusCode::FORBIDDEN,
        ),
        (
            "no purpose",
            sign(&es, &with(json!({ "roles": ["payments"] }))),
            1_000,
            StatusCode::FORBIDDEN,
        ),
    ];
    for (name, token, amount, status) in cases {
        let reply = send(&client, pay(&token, amount)).await.unwrap();
        assert_eq!(reply.status, status, "{name}");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(reply.error_code(), "step_up_required", "{name}");
            assert_eq!(reply.headers["www-authenticate"], challenge, "{name}");
        }
    }

    // X-Purpose picks one of the issuer-set purposes, never adds one.
    let teller = sign(
        &es,
        &with(json!({ "roles": ["teller"], "purposes": ["customer_service"] })),
    );
    let url = gw.url("/customers/42");
    let read = |purpose: Option<&'static str>| {
        let mut req = Request::get(&url).header("authorization", bearer(&teller));
        if let Some(p) = purpose {
            req = req.header("x-purpose", p);
        }
        req.body(Full::default()).unwrap()
    };
    assert_eq!(
        send(&client, read(None)).await.unwrap().status,
        StatusCode::OK
    );
    let reply = send(&client, read(Some("marketing"))).await.unwrap();
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::FORBIDDEN, "purpose_not_allowed")
    );
}

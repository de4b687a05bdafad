//! Item 8, secrets hygiene: a broad slice of the gateway's flows run with known PII, tokens,
//! one-time codes, an API key, the keyring passphrase and the issuer's HMAC secret; then
//! every place the gateway writes to (its stdout and stderr at `debug`, every error body,
//! the masked bodies, `/metrics`, the audit chain and its checkpoint sink, the output of
//! the CLI commands that do not hand a secret out) is searched for each secret, as it is
//! and base64, base64url, percent- or JSON-encoded. Zero hits.
//!
//! The flows: onboarding a customer (field protection) and reading it masked, a partner
//! refused for want of consent, then granted it (CLI) and shown the record, request bodies
//! refused with PII inside (invalid JSON, a guarded member, a duplicate key, an id that is
//! an email address, PII in the path and query), bearer tokens (valid, expired, tampered,
//! carrying PII claims), TOTP (a development enrolment, wrong and right codes at a step-up
//! route), service API keys (created, used, tampered, revoked), a passphrase-protected
//! keyring, and differentially private queries (one answered, three refused with PII as
//! SQL literals).

use crate::harness::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http_body_util::Full;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CUSTOMER_ID: &str = "[1-9][0-9]{0,9}|c-[1-9][0-9]{0,11}";
const PASSPHRASE: &str = "hygiene passphrase: correct horse battery staple";

/// The customer's PII (the teller onboards it; none of it may leave in a log or error).
const PII: &[&str] = &[
    "Jane Hygiene",
    "jane.hygiene@example.com",
    "+44 20 7946 0123",
    "900-12-3456",
    "1987-06-05",
    "7 Hygiene Street",
    "GB82WEST12345698765432",
    "4000001234567899",
];

fn customer(id: &str) -> String {
    json!({
        "id": id, "name": PII[0], "email": PII[1], "phone": PII[2], "national_id": PII[3],
        "date_of_birth": PII[4], "address": { "street": PII[5], "city": "Leeds" },
        "iban": PII[6], "card_number": PII[7], "segment": "retail",
    })
    .to_string()
}

/// The gateway, its stdout and stderr written to files.
struct Captured {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Captured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(ws: &Workspace, config: &Path) -> Captured {
    let out = std::fs::File::create(ws.path("gateway.stdout")).unwrap();
    let err = std::fs::File::create(ws.path("gateway.stderr")).unwrap();
    let child = Command::new(BIN)
        .args(["--log-format", "json", "serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap();
    let (mut addr, mut admin) = (None, None);
    for _ in 0..400 {
        let text = std::fs::read_to_string(ws.path("gateway.stderr")).unwrap();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["message"] == "listening" {
                let a: SocketAddr = v["address"].as_str().unwrap().parse().unwrap();
                match v["listener"] == "admin" {
                    true => admin = Some(a),
                    false => addr = Some(a),
                }
            }
        }
        if addr.is_some() && admin.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Captured {
        child,
        addr: addr.expect("gateway did not start"),
        admin: admin.unwrap(),
    }
}

impl Captured {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }
}

/// An HS256 access token for `sub` from the harness issuer, with `extra` claims.
fn token(sub: &str, extra: serde_json::Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut claims = json!({
        "iss": ISS, "aud": AUD, "sub": sub, "client_id": "hygiene-app",
        "exp": now + 300, "iat": now, "jti": format!("t-{sub}-{}", extra.to_string().len()),
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = match v {
            serde_json::Value::String(s) if s == "now-3600" => json!(now - 3600),
            serde_json::Value::String(s) if s == "now-600" => json!(now - 600),
            other => other.clone(),
        };
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// Every form a secret could take in text: as it is, JSON-escaped, percent-encoded, and
/// base64/base64url at each of the three alignments it could have inside a longer encoding.
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![
        secret.to_owned(),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_owned(),
        form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        secret
            .replace(' ', "%20")
            .replace('+', "%2B")
            .replace('@', "%40"),
    ];
    for pad in 0..3 {
        let padded = format!("{}{secret}", "x".repeat(pad));
        for encoded in [STANDARD.encode(&padded), URL_SAFE_NO_PAD.encode(&padded)] {
            // Skip the characters the padding touches, and the last group's.
            let skip = [0, 2, 3][pad];
            let inner = encoded.trim_end_matches('=');
            if inner.len() > skip + 4 {
                out.push(inner[skip..inner.len() - 3].to_owned());
            }
        }
    }
    out.sort();
    out.dedup();
    out.retain(|f| f.len() >= 6);
    out
}

/// Where `secret` (in any of its forms) occurs in `text`: numeric secrets (one-time codes)
/// only as whole numbers, so that a timestamp or port does not count.
fn hits(text: &str, secret: &str) -> Vec<String> {
    let numeric = secret.bytes().all(|b| b.is_ascii_digit());
    let mut found = Vec::new();
    for form in forms(secret) {
        for (i, _) in text.match_indices(&form) {
            let before = text[..i].bytes().last();
            let after = text[i + form.len()..].bytes().next();
            if numeric
                && (before.is_some_and(|b| b.is_ascii_digit())
                    || after.is_some_and(|b| b.is_ascii_digit()))
            {
                continue;
            }
            let start = text[..i].char_indices().rev().nth(40).map_or(0, |(j, _)| j);
            let end = (i + form.len() + 40).min(text.len());
            let end = (end..=text.len())
                .find(|e| text.is_char_boundary(*e))
                .unwrap();
            found.push(format!("`{form}` in …{}…", &text[start..end]));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_an_error_a_metric_or_the_audit_trail() {
    let ws = Workspace::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let _upstream = tokio::spawn(privgate::demo::upstream::serve(listener));
    let hmac = ws.write("hmac.secret", SECRET);
    let passphrase = ws.write("kek-passphrase", PASSPHRASE);
    std::fs::set_permissions(
        &passphrase,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // The shipped customer routes, the keyring under a passphrase, an identity provider,
    // TOTP, step-up and an authenticated plain route, partner client a.
    let protected = protected_customers(&ws, "3c", CUSTOMER_ID)
        .lines()
        .map(|l| match l.starts_with("kek = ") {
            true => "kek = { source = \"passphrase_file\", path = \"kek-passphrase\" }".to_owned(),
            false => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let extra = format!(
        r#"{protected}
[totp]
max_failures = 5

[[route]]
name = "api"
path_prefix = "/api"
upstream = "main"
authenticate = true

[[route]]
name = "stepup"
path_prefix = "/stepup"
upstream = "main"
[route.step_up]
acr_values = ["urn:privgate:mfa"]
amr_any = ["otp", "hwk", "mfa"]
max_age = "5m"
{loans}
{issuer}
{partner}"#,
        loans = loan_book(&ws),
        issuer = staff_issuer_section(&hmac, ""),
        partner = fintech_app_client(&ws),
    );
    let text = without_plain_routes(config(&ws, upstream, &optional_mtls(&ws), &extra));
    let path = ws.write("privgate.toml", &text);
    let config = path.to_str().unwrap();
    let mut cli_output = String::new();
    let cli = |args: &[&str]| {
        let mut all = vec![args[0], "--config", config];
        all.extend_from_slice(&args[1..]);
        let run = privgate(all);
        assert!(run.ok, "{args:?}: {}", run.all());
        run
    };
    cli_output += &cli(&["keys", "init"]).all();

    // Secrets handed out by the CLI (their own output is the one place they may appear).
    let enrolled = cli(&["totp", "dev-enroll", "--user", "alice"]).all();
    let uri = enrolled
        .lines()
        .find(|l| l.starts_with("otpauth://"))
        .unwrap();
    let totp = totp_rs::TOTP::from_url_unchecked(uri).unwrap();
    let totp_secret = totp.get_secret_base32();
    let created = cli(&["apikey", "create", "--service", "batch", "--roles", "ops"]).all();
    let api_key = created
        .lines()
        .find(|l| l.starts_with("pgk_"))
        .unwrap()
        .trim()
        .to_owned();

    let gw = start(&ws, &path);
    let teller = https_client(&ws, Some("certs/client-b"), false);
    let partner = https_client(&ws, Some("certs/client-a"), false);
    let anonymous = https_client(&ws, None, false);
    let json_type = [("content-type", "application/json")];
    let mut error_bodies = String::new();
    let mut masked_bodies = String::new();
    let mut expect = |reply: Reply, status: u16, what: &str| {
        assert_eq!(reply.status.as_u16(), status, "{what}: {:?}", reply.body);
        if !reply.status.is_success() {
            error_bodies.push_str(&String::from_utf8_lossy(&reply.body));
            error_bodies.push('\n');
        }
        reply
    };

    // Field protection: onboarding, the teller's masked view, refusals carrying PII.
    let created = send_with(
        &teller,
        "POST",
        &gw.url("/customers"),
        &json_type,
        &customer("c-7"),
    )
    .await;
    expect(created, 201, "onboarding");
    let shown = send_with(&teller, "GET", &gw.url("/customers/c-7"), &[], "").await;
    masked_bodies += &String::from_utf8_lossy(&expect(shown, 200, "masked read").body);
    let broken = customer("c-8");
    for (body, status, what) in [
        (&broken[..broken.len() - 1], 400, "invalid JSON"),
        (
            &broken.replace(
                "\"segment\"",
                "\"note\":\"card 4000001234567899\",\"segment\"",
            )[..],
            422,
            "guarded member",
        ),
        (
            &broken.replace("\"segment\":\"retail\"", "\"national_id\":\"900-12-3456\"")[..],
            400,
            "duplicate key",
        ),
        (
            &broken.replace("c-8", "jane.hygiene@example.com")[..],
            400,
            "id an email",
        ),
        (
            &broken.replace("\"name\"", "\"Name\"")[..],
            400,
            "misspelled member",
        ),
    ] {
        let reply = send_with(&teller, "POST", &gw.url("/customers"), &json_type, body).await;
        expect(reply, status, what);
    }
    for (path, status, what) in [
        (
            "/customers/jane.hygiene@example.com",
            400,
            "PII in the path",
        ),
        (
            "/customers/c-7?card=4000001234567899&n=Jane%20Hygiene",
            200,
            "PII in the query",
        ),
    ] {
        expect(get(&teller, &gw.url(path)).await, status, what);
    }

    // Consent: refused, granted through the CLI, then shown.
    let refused = send_with(&partner, "GET", &gw.url("/customers/c-7"), &[], "").await;
    expect(refused, 403, "no consent");
    cli_output += &cli(&[
        "consent",
        "grant",
        "--subject",
        "c-7",
        "--grantee",
        "fintech",
        "--purpose",
        "account_information",
        "--permission",
        "ReadParty",
    ])
    .all();
    after_revocation_window().await;
    let clear = send_with(&partner, "GET", &gw.url("/customers/c-7"), &[], "").await;
    let clear = expect(clear, 200, "consented read");
    assert!(
        String::from_utf8_lossy(&clear.body).contains(PII[0]),
        "the flow ran"
    );

    // Tokens: valid, expired, tampered, carrying PII claims.
    let valid = token("alice", json!({}));
    let expired = token("alice", json!({ "exp": "now-600", "iat": "now-3600" }));
    let with_pii = token("jane", json!({ "email": PII[1], "name": PII[0] }));
    let mut tampered = valid.clone();
    tampered.truncate(tampered.len() - 4);
    tampered.push_str("AAAA");
    let bearer = |t: &str| format!("Bearer {t}");
    for (t, status) in [
        (&valid, 200),
        (&expired, 401),
        (&tampered, 401),
        (&with_pii, 200),
    ] {
        let reply = send_with(
            &anonymous,
            "GET",
            &gw.url("/api/echo"),
            &[("authorization", &bearer(t))],
            "",
        )
        .await;
        // The sample upstream has no /api: its 404 is the upstream's answer, passed on.
        let reached = reply.status.as_u16() == 404;
        expect(
            reply,
            if status == 200 && reached {
                404
            } else {
                status
            },
            "token",
        );
    }
    let reply = send_with(
        &anonymous,
        "GET",
        &gw.url(&format!("/api/echo?access_token={valid}")),
        &[],
        "",
    )
    .await;
    expect(reply, 400, "token in the query");

    // TOTP at a step-up route: a stale token, a wrong code, then a right one.
    let stale = token(
        "alice",
        json!({ "acr": "urn:privgate:mfa", "amr": ["pwd"], "auth_time": "now-3600" }),
    );
    let wrong_code = if totp.generate_current().unwrap() == "24681357" {
        "13572468"
    } else {
        "24681357"
    };
    let right_code = totp.generate_current().unwrap();
    let url = gw.url("/stepup/echo");
    let reply = send_with(
        &anonymous,
        "GET",
        &url,
        &[("authorization", &bearer(&stale)), ("x-otp", wrong_code)],
        "",
    )
    .await;
    expect(reply, 401, "wrong code");
    let reply = send_with(
        &anonymous,
        "GET",
        &url,
        &[("authorization", &bearer(&stale)), ("x-otp", &right_code)],
        "",
    )
    .await;
    assert_ne!(
        reply.status.as_u16(),
        401,
        "the right code passed: {:?}",
        reply.body
    );
    let reply = send_with(
        &anonymous,
        "GET",
        &url,
        &[("authorization", &bearer(&stale)), ("x-otp", &right_code)],
        "",
    )
    .await;
    expect(reply, 401, "replayed code");

    // API keys: used, tampered, revoked.
    let auth = format!("ApiKey {api_key}");
    let reply = send_with(
        &anonymous,
        "GET",
        &gw.url("/api/echo"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    expect(reply, 404, "API key (the upstream's 404)");
    let mut bad_key = api_key.clone();
    bad_key.pop();
    bad_key.push(if api_key.ends_with('A') { 'B' } else { 'A' });
    let reply = send_with(
        &anonymous,
        "GET",
        &gw.url("/api/echo"),
        &[("authorization", &format!("ApiKey {bad_key}"))],
        "",
    )
    .await;
    expect(reply, 401, "tampered API key");
    let id = &api_key[4..20];
    cli_output += &cli(&["apikey", "revoke", id]).all();
    after_revocation_window().await;
    let reply = send_with(
        &anonymous,
        "GET",
        &gw.url("/api/echo"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    expect(reply, 401, "revoked API key");

    // Analytics: an answer, and refused queries that carry PII as literals.
    let analyst = token(
        "ana",
        json!({ "roles": ["analyst"], "purposes": ["analytics"], "amr": ["pwd"], "auth_time": "now-600" }),
    );
    let analytics = gw.url("/analytics/v1/query");
    for (sql, status) in [
        ("SELECT SUM(principal) FROM loan_book", 200),
        (
            "SELECT COUNT(*) FROM loan_book WHERE customer_id = 'jane.hygiene@example.com'",
            400,
        ),
        (
            "SELECT note FROM loan_book WHERE note = '4000001234567899'",
            400,
        ),
        (
            "SELECT COUNT(*) FROM loan_book WHERE principal = 900123456 AND 'Jane Hygiene' = note",
            400,
        ),
    ] {
        let body = json!({ "dataset": "loan_book", "sql": sql, "epsilon": 0.5 }).to_string();
        let auth = bearer(&analyst);
        let headers = [("authorization", auth.as_str()), json_type[0]];
        let reply = send_with(&anonymous, "POST", &analytics, &headers, &body).await;
        expect(reply, status, sql);
    }

    // Everything the gateway wrote.
    let metrics = admin_metrics(gw.admin).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gw.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut gw = gw;
    tokio::task::block_in_place(|| gw.child.wait()).unwrap();
    let verified = privgate(["audit", "verify", "--config", config]);
    assert!(verified.ok, "{}", verified.all());
    cli_output += &verified.all();
    let mut places: Vec<(String, String)> = vec![
        (
            "stdout".into(),
            std::fs::read_to_string(ws.path("gateway.stdout")).unwrap(),
        ),
        (
            "stderr".into(),
            std::fs::read_to_string(ws.path("gateway.stderr")).unwrap(),
        ),
        ("error bodies".into(), error_bodies),
        ("masked bodies".into(), masked_bodies),
        ("/metrics".into(), metrics),
        ("CLI output".into(), cli_output),
    ];
    for dir in ["audit", "sink"] {
        for entry in std::fs::read_dir(ws.path(dir)).unwrap() {
            let path = entry.unwrap().path();
            places.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    let stderr_lines = places[1].1.lines().count();
    assert!(
        stderr_lines > 50,
        "only {stderr_lines} log lines: is the log level on?"
    );

    let signature = |t: &str| t.rsplit('.').next().unwrap().to_owned();
    let mut secrets: Vec<(&str, String)> = PII.iter().map(|p| ("PII", p.to_string())).collect();
    secrets.push(("PII", "900123456".to_owned()));
    secrets.extend([
        ("issuer HMAC secret", SECRET.to_owned()),
        ("keyring passphrase", PASSPHRASE.to_owned()),
        ("TOTP secret", totp_secret.clone()),
        ("one-time code", right_code.clone()),
        ("one-time code", wrong_code.to_owned()),
        ("API key", api_key.clone()),
        ("API key secret", api_key[21..].to_owned()),
        ("tampered API key secret", bad_key[21..].to_owned()),
    ]);
    for t in [&valid, &expired, &with_pii, &tampered, &stale, &analyst] {
        secrets.push(("bearer token", t.to_string()));
        secrets.push(("token signature", signature(t)));
    }
    let mut found = Vec::new();
    for (place, text) in &places {
        for (kind, secret) in &secrets {
            for hit in hits(text, secret) {
                found.push(format!("{kind} in {place}: {hit}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "{} hits:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// The operations listener's `/metrics`.
async fn admin_metrics(admin: SocketAddr) -> String {
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let response = client
        .get(format!("http://{admin}/metrics").parse().unwrap())
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The search finds a secret in each form it looks for, so that zero hits above means
/// absent, not missed.
#[test]
fn the_search_finds_every_encoding() {
    let secret = "jane.hygiene@example.com";
    for pad in ["", "x", "xy"] {
        let plain = format!("{pad}{secret} and more");
        for encoded in [STANDARD.encode(&plain), URL_SAFE_NO_PAD.encode(&plain)] {
            assert!(
                !hits(&format!("log: {encoded}"), secret).is_empty(),
                "{encoded}"
            );
        }
    }
    for text in [
        "email=jane.hygiene%40example.com",
        r#"{"m":"jane.hygiene@example.com"}"#,
    ] {
        assert!(!hits(text, secret).is_empty(), "{text}");
    }
    assert!(!hits(r#"{"n":"+44 20 7946 0123"}"#, "+44 20 7946 0123").is_empty());
    assert!(!hits("q=%2B44%2020%207946%200123", "+44 20 7946 0123").is_empty());
    // One-time codes count only as whole numbers.
    assert!(!hits("code 24681357 refused", "24681357").is_empty());
    assert!(hits("at 1733246813579", "24681357").is_empty());
}

//! Token identity end to end: the real gateway verifying JWT access tokens signed here with
//! keys generated here, its key set read from a file or fetched from a local HTTPS identity
//! provider double, real TLS clients (with and without client certificates) and a real
//! upstream that counts what reaches it.

use crate::harness::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ISS: &str = "https://idp.privgate.test";
const AUD: &str = "api://privgate";
const SECRET: &str = "an-hmac-secret-of-at-least-32-bytes!!";
const MISSING: &str = "Bearer realm=\"privgate\"";
const INVALID_TOKEN: &str = "Bearer realm=\"privgate\", error=\"invalid_token\"";
const INVALID_REQUEST: &str = "Bearer realm=\"privgate\", error=\"invalid_request\"";

/// A signing key and its public JWK.
struct SigningKey {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

fn rsa_key(kid: &str, bits: usize) -> (SigningKey, String) {
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).unwrap();
    let public = private.to_public_key();
    let jwk = json!({
        "kty": "RSA", "kid": kid, "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    });
    let der = private.to_pkcs1_der().unwrap();
    let public_pem = public.to_pkcs1_pem(Default::default()).unwrap();
    let key = SigningKey {
        alg: Algorithm::PS256,
        kid: kid.into(),
        key: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk,
    };
    (key, public_pem)
}

fn ec_key(kid: &str) -> SigningKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    SigningKey {
        alg: Algorithm::ES256,
        kid: kid.into(),
        key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        }),
    }
}

fn ed_key(kid: &str) -> SigningKey {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    SigningKey {
        alg: Algorithm::EdDSA,
        kid: kid.into(),
        key: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        }),
    }
}

fn jwks(keys: &[&SigningKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "client_id": "mobile-app",
        "exp": now() + 300, "iat": now(), "jti": "t-1",
    })
}

fn with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = Some("at+jwt".into());
    encode(&header, claims, &key.key).unwrap()
}

/// The SHA-256 thumbprint of a workspace certificate, base64url as in `cnf.x5t#S256`.
fn x5t_s256(ws: &Workspace, cert: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(ws.path(cert)).unwrap();
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, der.as_ref()))
}

/// Routes and one issuer; `key_source` is the issuer's `jwks_file = ...` or `jwks_url` lines.
fn identity_config(ws: &Workspace, up: std::net::SocketAddr, key_source: &str) -> String {
    let secret = ws.write("hmac.secret", SECRET);
    let extra = format!(
        r#"
[[route]]
name = "api"
path_prefix = "/api"
upstream = "main"
authenticate = true

[[route]]
name = "bound"
path_prefix = "/bound"
upstream = "main"
require_bound_token = true

[[route]]
name = "stepup"
path_prefix = "/stepup"
upstream = "main"
[route.step_up]
acr_values = ["urn:privgate:mfa"]
amr_any = ["otp", "hwk", "mfa"]
max_age = "5m"

[[issuer]]
issuer = "{ISS}"
audiences = ["{AUD}"]
algorithms = ["PS256", "ES256", "EdDSA", "HS256"]
shared_secret_file = "{secret}"
require_typ_at_jwt = true
forward_claims = {{ sub = "X-Privgate-Subject", client_id = "X-Privgate-Client" }}
{key_source}
"#,
        secret = secret.display()
    );
    let listener = format!(
        "client_ca = \"{}\"\nclient_auth = \"optional\"",
        ws.path("certs/ca.pem").display()
    );
    config(ws, up, &listener, &extra)
}

fn request(url: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::get(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Full::default()).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// What a refusal must look like: status, error code, exact challenge (None: no header).
type Refusal = (StatusCode, &'static str, Option<&'static str>);

#[tokio::test]
async fn bad_tokens_are_refused_with_the_right_challenge_and_never_reach_the_upstream() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let (ps, rsa_public_pem) = rsa_key("ps-1", 2048);
    let (weak, _) = rsa_key("weak-1024", 1024);
    let es = ec_key("es-1");
    let other_es = ec_key("es-1");
    let jwks_path = ws.write("jwks.json", &jwks(&[&ps, &weak, &es]));
    let source = format!("jwks_file = \"{}\"", jwks_path.display());
    let path = ws.write("privgate.toml", &identity_config(&ws, up.addr, &source));
    let gw = Gateway::start(&path);
    gw.wait_for_log("JWKS key skipped");
    let anonymous = https_client(&ws, None, false);
    let client_b = https_client(&ws, Some("certs/client-b"), false);
    let api = gw.url("/api/echo");

    let good = sign(&es, &claims());
    let (head, rest) = good.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let tampered = format!(
        "{head}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(with(json!({ "sub": "mallory" })).to_string())
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let confused = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("ps-1".into());
        header.typ = Some("at+jwt".into());
        let key = EncodingKey::from_secret(rsa_public_pem.as_bytes());
        encode(&header, &claims(), &key).unwrap()
    };
    let unknown_kid = sign(&ec_key("es-unpublished"), &claims());
    let bound_to_a = sign(
        &es,
        &with(json!({ "cnf": { "x5t#S256": x5t_s256(&ws, "certs/client-a.pem") } })),
    );

    let bad = StatusCode::UNAUTHORIZED;
    let invalid: Refusal = (bad, "invalid_token", Some(INVALID_TOKEN));
    let invalid_request: Refusal = (
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some(INVALID_REQUEST),
    );
    let q = |t: &str| gw.url(&format!("/api/echo?access_token={t}"));
    // (case, client, url, Authorization value, expected)
    let cases: Vec<(&str, &HttpsClient, String, Option<String>, Refusal)> = vec![
        (
            "missing token",
            &anonymous,
            api.clone(),
            None,
            (bad, "authentication_required", Some(MISSING)),
        ),
        (
            "malformed token",
            &anonymous,
            api.clone(),
            Some(bearer("not.a.jwt")),
            invalid,
        ),
        (
            "malformed credential",
            &anonymous,
            api.clone(),
            Some("Bearer a b".into()),
            invalid,
        ),
        (
            "alg none",
            &anonymous,
            api.clone(),
            Some(bearer(&none)),
            invalid,
        ),
        (
            "HS256 with the RSA public key",
            &anonymous,
            api.clone(),
            Some(bearer(&confused)),
            invalid,
        ),
        (
            "unknown kid after refetch",
            &anonymous,
            api.clone(),
            Some(bearer(&unknown_kid)),
            invalid,
        ),
        (
            "same kid, other key",
            &anonymous,
            api.clone(),
            Some(bearer(&sign(&other_es, &claims()))),
            invalid,
        ),
        (
            "RSA-1024 key",
            &anonymous,
            api.clone(),
            Some(bearer(&sign(&weak, &claims()))),
            invalid,
        ),
        (
            "expired",
            &anonymous,
            api.clone(),
            Some(bearer(&sign(&ps, &with(json!({ "exp": now() - 120 }))))),
            invalid,
        ),
        (
            "not yet valid",
            &anonymous,
            api.clone(),
            Some(bearer(&sign(&ps, &with(json!({ "nbf": now() + 120 }))))),
            invalid,
        ),
        (
            "wrong iss",
            &anonymous,
            api.clone(),
            Some(bearer(&sign(
                &es,
                &with(json!({ "iss": "https://evil.test" })),
            ))),
            invalid,
        ),
        (
            "wrong aud",
            &anonymous,
            api.clone(),
            Some(bearer(&sign(&es, &with(json!({ "aud": "api://other" }))))),
            invalid,
        ),
        (
            "tampered payload",
            &anonymous,
            api.clone(),
            Some(bearer(&tampered)),
            invalid,
        ),
        (
            "token in query",
            &anonymous,
            q(&good),
            None,
            invalid_request,
        ),
        (
            "token in two places",
            &anonymous,
            q(&good),
            Some(bearer(&good)),
            invalid_request,
        ),
        (
            "bound token, other certificate",
            &client_b,
            api.clone(),
            Some(bearer(&bound_to_a)),
            invalid,
        ),
        (
            "bound token, no certificate",
            &anonymous,
            api.clone(),
            Some(bearer(&bound_to_a)),
            invalid,
        ),
        (
            "unbound token on bound route",
            &anonymous,
            gw.url("/bound/echo"),
            Some(bearer(&good)),
            invalid,
        ),
    ];
    for (name, client, url, authorization, (status, code, challenge)) in cases {
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let reply = send(client, request(&url, &headers)).await.unwrap();
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (status, code),
            "{name}"
        );
        assert_eq!(
            reply
                .headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            challenge,
            "{name}"
        );
        assert_eq!(up.requests(), 0, "{name} reached the upstream");
    }
    // The token never appears in the gateway's logs.
    let logs = format!("{:?}", gw.logs.lock().unwrap());
    for secret_part in [signature, good.as_str()] {
        assert!(!logs.contains(secret_part), "token logged");
    }
}

#[tokio::test]
async fn good_tokens_reach_the_upstream_with_claim_headers_and_no_spoofed_copies() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let (ps, _) = rsa_key("ps-1", 2048);
    let (es, ed) = (ec_key("es-1"), ed_key("ed-1"));
    let jwks_path = ws.write("jwks.json", &jwks(&[&ps, &es, &ed]));
    let source = format!("jwks_file = \"{}\"", jwks_path.display());
    let path = ws.write("privgate.toml", &identity_config(&ws, up.addr, &source));
    let gw = Gateway::start(&path);
    let client_a = https_client(&ws, Some("certs/client-a"), false);
    let hs = SigningKey {
        alg: Algorithm::HS256,
        kid: "hs".into(),
        key: EncodingKey::from_secret(SECRET.as_bytes()),
        jwk: Value::Null,
    };

    for key in [&ps, &es, &ed, &hs] {
        let token = sign(key, &claims());
        let headers = [
            ("authorization", bearer(&token)),
            ("x-privgate-subject", "admin".to_owned()),
            ("X-Privgate-Client", "spoofed".to_owned()),
        ];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = send(&client_a, request(&gw.url("/api/echo"), &headers))
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{:?}", key.alg);
        let seen = &reply.json()["headers"];
        assert_eq!(seen["x-privgate-subject"], "alice", "{:?}", key.alg);
        assert_eq!(seen["x-privgate-client"], "mobile-app");
        assert!(
            seen.get("authorization").is_none(),
            "token forwarded upstream"
        );
    }

    // A token bound to this connection's certificate passes a bound-token route.
    let bound = sign(
        &es,
        &with(json!({ "cnf": { "x5t#S256": x5t_s256(&ws, "certs/client-a.pem") } })),
    );
    let auth = bearer(&bound);
    let reply = send(
        &client_a,
        request(&gw.url("/bound/echo"), &[("authorization", &auth)]),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK);

    // Claim headers are internal everywhere: even anonymous routes drop spoofed copies.
    let reply = send(
        &client_a,
        request(
            &gw.url("/echo"),
            &[("x-privgate-subject", "admin"), ("x-privgate-client", "x")],
        ),
    )
    .await
    .unwrap();
    let seen = &reply.json()["headers"];
    assert!(seen.get("x-privgate-subject").is_none() && seen.get("x-privgate-client").is_none());
}

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

// ---------------------------------------------------------------------------------------
// A local HTTPS identity provider double serving the JWKS

struct JwksServer {
    addr: std::net::SocketAddr,
    body: Arc<Mutex<String>>,
    failing: Arc<AtomicBool>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    async fn start(ws: &Workspace, body: String) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<_> = CertificateDer::pem_file_iter(ws.path("certs/server.pem"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(ws.path("certs/server.key.pem")).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = Arc::new(Mutex::new(body));
        let failing = Arc::new(AtomicBool::new(false));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (b, f, n) = (body.clone(), failing.clone(), fetches.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, b, f, n) = (acceptor.clone(), b.clone(), f.clone(), n.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |_req| {
                        n.fetch_add(1, Ordering::SeqCst);
                        let status = if f.load(Ordering::SeqCst) { 500 } else { 200 };
                        let body = b.lock().unwrap().clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            body,
            failing,
            fetches,
            task,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn source(&self, ws: &Workspace, cooldown: &str, refresh: &str) -> String {
        format!(
            "jwks_url = \"https://localhost:{}/jwks\"\nca = \"{}\"\njwks_refetch_cooldown = \"{cooldown}\"\njwks_refresh = \"{refresh}\"",
            self.addr.port(),
            ws.path("certs/ca.pem").display()
        )
    }
}

async fn status_with(client: &HttpsClient, url: &str, token: &str) -> StatusCode {
    let auth = bearer(token);
    send(client, request(url, &[("authorization", &auth)]))
        .await
        .unwrap()
        .status
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn key_rotation_is_picked_up_by_kid_refetch_within_the_cooldown() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let (old, new) = (ec_key("2026-01"), ec_key("2026-02"));
    let idp = JwksServer::start(&ws, jwks(&[&old])).await;
    let source = idp.source(&ws, "2s", "1h");
    let path = ws.write("privgate.toml", &identity_config(&ws, up.addr, &source));
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let url = gw.url("/api/echo");

    wait_until(|| idp.fetches() == 1).await;
    assert_eq!(
        status_with(&client, &url, &sign(&old, &claims())).await,
        StatusCode::OK
    );
    // A key the issuer has not published yet: one refetch, then refused.
    assert_eq!(
        status_with(&client, &url, &sign(&new, &claims())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(idp.fetches(), 2);
    // The issuer publishes it; within the cooldown the gateway does not fetch again.
    *idp.body.lock().unwrap() = jwks(&[&old, &new]);
    for _ in 0..3 {
        assert_eq!(
            status_with(&client, &url, &sign(&new, &claims())).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(idp.fetches(), 2, "refetched within the cooldown");
    // After the cooldown, the unknown kid triggers one fetch and the new key works.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        status_with(&client, &url, &sign(&new, &claims())).await,
        StatusCode::OK
    );
    assert_eq!(
        status_with(&client, &url, &sign(&new, &claims())).await,
        StatusCode::OK
    );
    assert_eq!(idp.fetches(), 3);
}

#[tokio::test]
async fn the_last_good_key_set_is_served_while_the_jwks_server_fails() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let (ps, _) = rsa_key("ps-1", 2048);
    let idp = JwksServer::start(&ws, jwks(&[&ps])).await;
    let source = idp.source(&ws, "1s", "1s");
    let path = ws.write("privgate.toml", &identity_config(&ws, up.addr, &source));
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let url = gw.url("/api/echo");

    wait_until(|| idp.fetches() >= 1).await;
    assert_eq!(
        status_with(&client, &url, &sign(&ps, &claims())).await,
        StatusCode::OK
    );
    idp.failing.store(true, Ordering::SeqCst);
    let before = idp.fetches();
    wait_until(|| idp.fetches() >= before + 2).await;
    gw.wait_for_log("JWKS fetch failed");
    assert_eq!(
        status_with(&client, &url, &sign(&ps, &claims())).await,
        StatusCode::OK
    );

    let (_, metrics) = gw.admin_get("/metrics").await;
    let gauge = metrics
        .lines()
        .find(|l| l.starts_with("privgate_jwks_key_set_age_seconds{"))
        .unwrap_or_else(|| panic!("no key-set age gauge: {metrics}"));
    assert!(gauge.contains(ISS), "{gauge}");
    let age: f64 = gauge.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(age >= 1.0, "age {age} should grow while fetches fail");
}

#[tokio::test]
async fn revoked_tokens_are_refused_from_the_moment_the_cli_returns() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let es = ec_key("es-1");
    let jwks_path = ws.write("jwks.json", &jwks(&[&es]));
    let source = format!("jwks_file = \"{}\"", jwks_path.display());
    let path = ws.write("privgate.toml", &identity_config(&ws, up.addr, &source));
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let url = gw.url("/api/echo");
    let first = sign(&es, &with(json!({ "jti": "t-1" })));
    let second = sign(&es, &with(json!({ "jti": "t-2", "iat": now() - 10 })));
    assert_eq!(status_with(&client, &url, &first).await, StatusCode::OK);

    let config = path.to_str().unwrap();
    let run = privgate(["token", "revoke", "--config", config, "--jti", "t-1"]);
    assert!(run.ok, "{}", run.all());
    assert_eq!(
        status_with(&client, &url, &first).await,
        StatusCode::UNAUTHORIZED
    );
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

#[tokio::test]
async fn token_claims_feed_the_policy_context_roles_purposes_and_step_up() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let es = ec_key("es-1");
    let jwks_path = ws.write("jwks.json", &jwks(&[&es]));
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
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
action = "customers:read"
subject = "after_prefix"
"#,
        jwks = jwks_path.display(),
        policies = policies.display()
    );
    let path = ws.write("privgate.toml", &identity_config(&ws, up.addr, &source));
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

//! The issuer's HTTPS endpoints, played by a local identity-provider double: key rotation,
//! JWKS failures, and introspection of opaque tokens.

use super::*;

/// A local HTTPS identity provider double answering every request with `body` (the JWKS,
/// or an introspection answer), counting requests, remembering the last one (method,
/// Authorization, body), answering 500 while `failing` and 503 to the next request after
/// `unavailable_once` is set.
struct JwksServer {
    addr: std::net::SocketAddr,
    body: Arc<Mutex<String>>,
    last: Arc<Mutex<Option<(String, String, String)>>>,
    failing: Arc<AtomicBool>,
    unavailable_once: Arc<AtomicBool>,
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
        let acceptor = tokio_rustls::TlsAcceptor::from(https_server_tls(ws));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = Arc::new(Mutex::new(body));
        let failing = Arc::new(AtomicBool::new(false));
        let unavailable_once = Arc::new(AtomicBool::new(false));
        let fetches = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(Mutex::new(None));
        let (b, f, n, l) = (body.clone(), failing.clone(), fetches.clone(), last.clone());
        let u = unavailable_once.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, b, f, n, l) =
                    (acceptor.clone(), b.clone(), f.clone(), n.clone(), l.clone());
                let u = u.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<_>| {
                        let (b, f, n, l) = (b.clone(), f.clone(), n.clone(), l.clone());
                        let u = u.clone();
                        async move {
                            n.fetch_add(1, Ordering::SeqCst);
                            let method = req.method().to_string();
                            let auth = req
                                .headers()
                                .get("authorization")
                                .map(|v| v.to_str().unwrap_or("").to_owned())
                                .unwrap_or_default();
                            let sent = http_body_util::BodyExt::collect(req.into_body())
                                .await
                                .map(|c: http_body_util::Collected<Bytes>| c.to_bytes())
                                .unwrap_or_default();
                            let sent = String::from_utf8_lossy(&sent).into_owned();
                            *l.lock().unwrap() = Some((method, auth, sent));
                            let status = if u.swap(false, Ordering::SeqCst) {
                                503
                            } else if f.load(Ordering::SeqCst) {
                                500
                            } else {
                                200
                            };
                            let body = b.lock().unwrap().clone();
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
            last,
            failing,
            unavailable_once,
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

    // The issuer withdraws the old key: once the gateway has the new set, tokens signed
    // with the old key are refused, even those it verified (and cached) before.
    let old_token = sign(&old, &claims());
    assert_eq!(status_with(&client, &url, &old_token).await, StatusCode::OK);
    *idp.body.lock().unwrap() = jwks(&[&new]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let unknown = sign(&ec_key("2026-03"), &claims());
    assert_eq!(
        status_with(&client, &url, &unknown).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(idp.fetches(), 4);
    assert_eq!(
        status_with(&client, &url, &old_token).await,
        StatusCode::UNAUTHORIZED
    );
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

/// The outbound client tries a JWKS GET again after a 503: the gateway starts with the key
/// set at once instead of waiting for the next refresh.
#[tokio::test]
async fn a_jwks_server_unavailable_once_is_asked_again_at_once() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let es = ec_key("es-1");
    let idp = JwksServer::start(&ws, jwks(&[&es])).await;
    idp.unavailable_once.store(true, Ordering::SeqCst);
    let source = idp.source(&ws, "1h", "1h");
    let path = ws.write("privgate.toml", &identity_config(&ws, up.addr, &source));
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);

    wait_until(|| idp.fetches() >= 2).await;
    assert_eq!(
        status_with(&client, &gw.url("/api/echo"), &sign(&es, &claims())).await,
        StatusCode::OK
    );
    assert_eq!(idp.fetches(), 2, "one 503, one retry, no refetch");
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_active_answers_reused_briefly() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let es = ec_key("es-1");
    let jwks_path = ws.write("jwks.json", &jwks(&[&es]));
    let answer = json!({
        "active": true, "iss": ISS, "aud": [AUD], "sub": "bob", "client_id": "partner-app",
        "exp": now() + 300, "scope": "accounts",
    });
    let idp = JwksServer::start(&ws, answer.to_string()).await;
    let secret = ws.write("introspect.secret", "s3cr:et\n");
    let source = format!(
        "jwks_file = \"{jwks}\"\nintrospection_url = \"https://localhost:{port}/introspect\"\n\
         introspection_client_id = \"privgate gw\"\nintrospection_secret_file = \"{secret}\"\n\
         ca = \"{ca}\"\nintrospection_cache = \"1s\"",
        jwks = jwks_path.display(),
        port = idp.addr.port(),
        secret = secret.display(),
        ca = ws.path("certs/ca.pem").display(),
    );
    let path = ws.write("privgate.toml", &identity_config(&ws, up.addr, &source));
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let url = gw.url("/api/echo");

    let opaque = "opaque-token-abc123";
    let auth = bearer(opaque);
    let reply = send(&client, request(&url, &[("authorization", &auth)]))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["headers"]["x-privgate-subject"], "bob");
    assert_eq!(reply.json()["headers"]["x-privgate-client"], "partner-app");
    let (method, authorization, body) = idp.last.lock().unwrap().clone().unwrap();
    assert_eq!(method, "POST");
    assert_eq!(
        authorization,
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("privgate+gw:s3cr%3Aet")
        )
    );
    assert_eq!(
        body,
        "token=opaque-token-abc123&token_type_hint=access_token"
    );

    // Reused within introspection_cache; asked again after it.
    assert_eq!(status_with(&client, &url, opaque).await, StatusCode::OK);
    assert_eq!(idp.fetches(), 1);
    *idp.body.lock().unwrap() = json!({ "active": false }).to_string();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reply = send(&client, request(&url, &[("authorization", &auth)]))
        .await
        .unwrap();
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    assert_eq!(reply.headers["www-authenticate"], INVALID_TOKEN);
    assert_eq!(idp.fetches(), 2);

    // An endpoint that fails refuses opaque tokens (fail closed); JWTs verify locally.
    idp.failing.store(true, Ordering::SeqCst);
    let reply = send(
        &client,
        request(&url, &[("authorization", "Bearer another-opaque")]),
    )
    .await
    .unwrap();
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "introspection_unavailable")
    );
    assert_eq!(
        status_with(&client, &url, &sign(&es, &claims())).await,
        StatusCode::OK
    );
    assert_eq!(up.requests(), 3);
}

#[tokio::test]
async fn a_jwks_endpoint_serving_garbage_fails_closed_until_it_serves_keys() {
    // Garbage from the start: no key set, so no token is accepted (fail closed); once the
    // issuer serves its keys the gateway takes them at the next refresh, without restart;
    // garbage again keeps the last good set.
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let (ps, _) = rsa_key("ps-1", 2048);
    let idp = JwksServer::start(&ws, "<html>not a key set".into()).await;
    let source = idp.source(&ws, "1s", "1s");
    let path = ws.write("privgate.toml", &identity_config(&ws, up.addr, &source));
    let gw = Gateway::start(&path);
    let client = https_client(&ws, None, false);
    let url = gw.url("/api/echo");

    wait_until(|| idp.fetches() >= 1).await;
    gw.wait_for_log("JWKS fetch failed");
    let refused = status_with(&client, &url, &sign(&ps, &claims())).await;
    assert!(
        refused == StatusCode::UNAUTHORIZED || refused == StatusCode::SERVICE_UNAVAILABLE,
        "{refused}"
    );
    assert_eq!(up.requests(), 0);

    *idp.body.lock().unwrap() = jwks(&[&ps]);
    for _ in 0..60 {
        if status_with(&client, &url, &sign(&ps, &claims())).await == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status_with(&client, &url, &sign(&ps, &claims())).await,
        StatusCode::OK
    );

    *idp.body.lock().unwrap() = "{\"keys\": [{\"kty\": \"RSA\", \"n\": 7}]}".into();
    let before = idp.fetches();
    wait_until(|| idp.fetches() >= before + 2).await;
    assert_eq!(
        status_with(&client, &url, &sign(&ps, &claims())).await,
        StatusCode::OK
    );
}

//! The outbound client (`privgate::outbound`) against real TLS servers on loopback: retries
//! of idempotent requests only, the per-try timeout, the answer size limit, and HTTP
//! CONNECT proxies chosen by proxy rules with NO_PROXY exceptions. The callers (JWKS,
//! introspection, webhook, `privgate query`, `privgate fhe contribute`) keep their own
//! end-to-end tests.

use crate::harness::*;
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use privgate::outbound::{OutboundClient, OutboundError};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted server does with its next connection.
#[derive(Clone, Copy)]
enum Step {
    /// Closes the connection before the TLS handshake.
    Reset,
    /// Answers with this status and a short body.
    Answer(u16),
    /// Answers 200 with a body of this many bytes.
    Large(usize),
    /// Reads the request and never answers.
    Hang,
}

/// An HTTPS server (certificate for `localhost`) following a script, one step per
/// connection (the last step repeats; no keep-alive), counting connections and requests.
struct Scripted {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    async fn start(ws: &Workspace, script: &[Step]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tokio_rustls::TlsAcceptor::from(https_server_tls(ws));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (seen_connections, seen_requests) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                seen_connections.fetch_add(1, Ordering::SeqCst);
                let step = {
                    let mut script = script.lock().unwrap();
                    if script.len() > 1 {
                        script.pop_front().unwrap()
                    } else {
                        script[0]
                    }
                };
                if let Step::Reset = step {
                    drop(tcp);
                    continue;
                }
                let acceptor = acceptor.clone();
                let requests = seen_requests.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                        requests.fetch_add(1, Ordering::SeqCst);
                        async move {
                            let (status, body) = match step {
                                Step::Answer(status) => (status, Bytes::from_static(b"scripted")),
                                Step::Large(n) => (200, Bytes::from(vec![b'x'; n])),
                                Step::Hang | Step::Reset => {
                                    std::future::pending::<()>().await;
                                    unreachable!()
                                }
                            };
                            let mut response = hyper::Response::new(Full::new(body));
                            *response.status_mut() = StatusCode::from_u16(status).unwrap();
                            // One step per connection: no keep-alive.
                            response.headers_mut().insert(
                                http::header::CONNECTION,
                                http::HeaderValue::from_static("close"),
                            );
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            port,
            connections,
            requests,
            task,
        }
    }

    fn uri(&self) -> Uri {
        format!("https://localhost:{}/resource", self.port)
            .parse()
            .unwrap()
    }
}

/// A client trusting the workspace CA, with no proxy whatever the environment says.
fn client(ws: &Workspace) -> privgate::outbound::Builder {
    OutboundClient::builder()
        .ca(Some(ws.path("certs/ca.pem")))
        .proxy(Matcher::builder().build())
}

#[tokio::test]
async fn a_get_is_tried_again_after_a_reset_and_a_503_and_then_succeeds() {
    let ws = Workspace::new();
    let server = Scripted::start(&ws, &[Step::Reset, Step::Answer(503), Step::Answer(200)]).await;
    let client = client(&ws).attempts(3).build().unwrap();
    let answer = client.get(&server.uri(), "text/plain").await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.body().as_ref(), b"scripted");
    assert_eq!(server.connections.load(Ordering::SeqCst), 3);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_get_gives_the_last_answer_when_the_tries_run_out() {
    let ws = Workspace::new();
    let server = Scripted::start(&ws, &[Step::Answer(503)]).await;
    let client = client(&ws).attempts(2).build().unwrap();
    let answer = client.get(&server.uri(), "text/plain").await.unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_post_is_sent_once_whatever_the_failure() {
    let ws = Workspace::new();
    let server = Scripted::start(&ws, &[Step::Answer(503), Step::Answer(200)]).await;
    let client = client(&ws).attempts(3).build().unwrap();
    let post = Request::post(server.uri())
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    let answer = client.send(post).await.unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);

    let reset = Scripted::start(&ws, &[Step::Reset, Step::Answer(200)]).await;
    let post = Request::post(reset.uri())
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    let error = client.send(post).await.unwrap_err();
    assert!(matches!(error, OutboundError::Connection(_)), "{error}");
    assert_eq!(reset.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_try_without_an_answer_ends_at_the_timeout() {
    let ws = Workspace::new();
    let server = Scripted::start(&ws, &[Step::Hang]).await;
    let client = client(&ws)
        .timeout(Duration::from_millis(300))
        .attempts(2)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = client.get(&server.uri(), "text/plain").await.unwrap_err();
    assert!(matches!(error, OutboundError::Timeout(_)), "{error}");
    // Two tries of 300 ms and a backoff of at most 200 ms.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_answer_over_the_size_limit_is_an_error_not_a_truncated_body() {
    let ws = Workspace::new();
    let server = Scripted::start(&ws, &[Step::Large(4096)]).await;
    let client = client(&ws).max_body(1024).attempts(3).build().unwrap();
    let error = client.get(&server.uri(), "text/plain").await.unwrap_err();
    assert!(matches!(error, OutboundError::TooLarge(1024)), "{error}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1, "not retried");
}

#[tokio::test]
async fn a_server_outside_the_trusted_roots_is_refused() {
    let ws = Workspace::new();
    let server = Scripted::start(&ws, &[Step::Answer(200)]).await;
    let client = OutboundClient::builder()
        .ca(Some(ws.path("other/ca.pem")))
        .proxy(Matcher::builder().build())
        .attempts(1)
        .build()
        .unwrap();
    let error = client.get(&server.uri(), "text/plain").await.unwrap_err();
    assert!(matches!(error, OutboundError::Connection(_)), "{error}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

/// A CONNECT proxy double: records each CONNECT target and relays bytes both ways.
struct ConnectProxy {
    port: u16,
    targets: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let seen = targets.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let target = head
                        .strip_prefix("CONNECT ")
                        .and_then(|rest| rest.split(' ').next())
                        .unwrap_or("")
                        .to_owned();
                    seen.lock().unwrap().push(target.clone());
                    let Ok(mut server) =
                        TcpStream::connect(target.replace("localhost", "127.0.0.1")).await
                    else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    let _ = client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self {
            port,
            targets,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

#[tokio::test]
async fn a_proxied_call_goes_through_a_connect_tunnel_with_tls_end_to_end() {
    let ws = Workspace::new();
    let server = Scripted::start(&ws, &[Step::Answer(200)]).await;
    let proxy = ConnectProxy::start().await;
    let client = client(&ws)
        .proxy(Matcher::builder().https(proxy.url()).build())
        .build()
        .unwrap();
    let answer = client.get(&server.uri(), "text/plain").await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.body().as_ref(), b"scripted");
    assert_eq!(
        *proxy.targets.lock().unwrap(),
        vec![format!("localhost:{}", server.port)]
    );
}

#[tokio::test]
async fn no_proxy_hosts_are_reached_directly() {
    let ws = Workspace::new();
    let server = Scripted::start(&ws, &[Step::Answer(200)]).await;
    let proxy = ConnectProxy::start().await;
    let client = client(&ws)
        .proxy(
            Matcher::builder()
                .https(proxy.url())
                .no("example.org, localhost")
                .build(),
        )
        .build()
        .unwrap();
    let answer = client.get(&server.uri(), "text/plain").await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(proxy.targets.lock().unwrap().is_empty());
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

/// `privgate query` reads its proxy from the environment (HTTPS_PROXY, NO_PROXY) and sends
/// its POST once: the query spends budget.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_takes_its_proxy_from_the_environment_and_sends_a_query_once() {
    let ws = Workspace::new();
    let server = Scripted::start(&ws, &[Step::Answer(503)]).await;
    let proxy = ConnectProxy::start().await;
    let token = ws.write("token", "not-a-real-token\n");
    let query = |no_proxy: &'static str| {
        let args = vec![
            "query".to_owned(),
            "--dataset".to_owned(),
            "loans".to_owned(),
            "--epsilon".to_owned(),
            "0.1".to_owned(),
            "--url".to_owned(),
            format!("https://localhost:{}/analytics/v1", server.port),
            "--token-file".to_owned(),
            token.display().to_string(),
            "--ca".to_owned(),
            ws.path("certs/ca.pem").display().to_string(),
            "SELECT COUNT(*) FROM loans".to_owned(),
        ];
        let proxy_url = proxy.url();
        tokio::task::spawn_blocking(move || {
            privgate_with_env(
                args,
                &[
                    ("HTTPS_PROXY", proxy_url.as_str()),
                    ("ALL_PROXY", ""),
                    ("NO_PROXY", no_proxy),
                ],
            )
        })
    };
    let run = query("").await.unwrap();
    assert!(!run.ok, "a 503 is a failure: {}", run.all());
    assert_eq!(
        *proxy.targets.lock().unwrap(),
        vec![format!("localhost:{}", server.port)]
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 1, "not retried");

    let run = query("localhost").await.unwrap();
    assert!(!run.ok, "{}", run.all());
    assert_eq!(
        proxy.targets.lock().unwrap().len(),
        1,
        "NO_PROXY host proxied"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

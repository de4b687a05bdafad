//! Limits at and over their values: body size, JSON depth, header size, slow clients,
//! idle connections.

use crate::harness::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{Full, StreamBody};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const LIMITS: &str = r#"
[limits]
max_body_bytes = 1000
max_json_depth = 4
max_response_body_bytes = 4096
max_headers = 20
max_connections = 2
max_concurrent_streams = 7
header_read_timeout = "1s"
idle_timeout = "3s"
"#;

async fn setup() -> (Workspace, Upstream, Gateway) {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, "", LIMITS)));
    (ws, up, gw)
}

#[tokio::test]
async fn body_size_limit_is_413_above_and_passes_at_the_limit() {
    let (ws, _up, gw) = setup().await;
    let client = https_client(&ws, None, false);
    let post = |path: &str, n: usize| {
        Request::post(gw.url(path))
            .body(Full::new(Bytes::from(vec![b'a'; n])))
            .unwrap()
    };

    assert_eq!(
        send(&client, post("/echo", 1000)).await.unwrap().status,
        StatusCode::OK
    );
    let reply = send(&client, post("/echo", 1001)).await.unwrap();
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error_code(), "body_too_large");

    // Buffered route, JSON exactly at the limit.
    let json = format!("\"{}\"", "b".repeat(998));
    let req = Request::post(gw.url("/buffered/echo"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json)))
        .unwrap();
    assert_eq!(send(&client, req).await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413_on_buffered_routes() {
    let (ws, _up, gw) = setup().await;
    // HTTP/2 without content-length: the size is only known while reading.
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_tls(&ws, None, &[]))
        .https_only()
        .enable_http2()
        .build();
    type Chunks = StreamBody<
        futures_util::stream::Iter<
            std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::convert::Infallible>>,
        >,
    >;
    let client: hyper_util::client::legacy::Client<_, Chunks> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(connector);
    let chunks: Vec<_> = (0..11)
        .map(|_| Ok(http_body::Frame::data(Bytes::from(vec![b' '; 100]))))
        .collect();
    let req = Request::post(gw.url("/buffered/echo"))
        .body(StreamBody::new(futures_util::stream::iter(chunks)))
        .unwrap();
    let response = client.request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn json_depth_limit_and_invalid_json_on_buffered_routes() {
    let (ws, _up, gw) = setup().await;
    let client = https_client(&ws, None, false);
    let cases = [
        ("[[[[1]]]]", StatusCode::OK, ""),
        ("[[[[[1]]]]]", StatusCode::BAD_REQUEST, "json_too_deep"),
        ("{\"a\":", StatusCode::BAD_REQUEST, "invalid_json"),
        ("name=Alice", StatusCode::BAD_REQUEST, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let req = Request::post(gw.url("/buffered/echo"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let reply = send(&client, req).await.unwrap();
        assert_eq!(reply.status, status, "{body}");
        if !code.is_empty() {
            assert_eq!(reply.error_code(), code, "{body}");
        }
    }
    // The same bodies pass through untouched on a streamed route.
    let req = Request::post(gw.url("/echo"))
        .body(Full::new(Bytes::from("name=Alice")))
        .unwrap();
    assert_eq!(send(&client, req).await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn buffered_responses_over_the_limit_are_502_never_passed_on() {
    let (ws, _up, gw) = setup().await;
    let client = https_client(&ws, None, false);
    // 4094 characters + 2 quotes = exactly the 4096-byte limit.
    let reply = get(&client, &gw.url("/buffered/big?bytes=4094")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), 4096);
    let reply = get(&client, &gw.url("/buffered/big?bytes=4095")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error_code(), "bad_gateway");
    assert!(!String::from_utf8_lossy(&reply.body).contains("xxxx"));
    // Stream routes are not buffered, so the limit does not apply.
    assert_eq!(
        get(&client, &gw.url("/big?bytes=10000")).await.body.len(),
        10002
    );
}

#[tokio::test]
async fn connections_over_the_limit_wait_until_one_closes() {
    let (ws, _up, gw) = setup().await;
    let first = raw_tls(&ws, gw.addr).await;
    let _second = raw_tls(&ws, gw.addr).await;
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(
        metrics.contains(r#"privgate_active_connections{listener="public"} 2"#),
        "{metrics}"
    );
    // The third TCP connection lands in the kernel backlog: its handshake cannot finish.
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_tls(
        &ws,
        None,
        &[b"http/1.1"],
    )));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let handshake = connector.connect(name, tcp);
    tokio::pin!(handshake);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut handshake)
            .await
            .is_err(),
        "a third connection was served with max_connections = 2"
    );
    drop(first);
    let stream = tokio::time::timeout(Duration::from_secs(5), handshake).await;
    assert!(
        matches!(stream, Ok(Ok(_))),
        "third connection not served after one closed"
    );
}

#[tokio::test]
async fn http2_stream_limit_is_advertised() {
    let (ws, _up, gw) = setup().await;
    let connector =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_tls(&ws, None, &[b"h2"])));
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut client, mut connection) = h2::client::handshake(tls).await.unwrap();
    let request = http::Request::get(gw.url("/echo")).body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = tokio::select! {
        r = response => r.unwrap(),
        _ = &mut connection => panic!("connection closed"),
    };
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(connection.max_concurrent_send_streams(), 7);
}

#[tokio::test]
async fn oversized_request_head_is_refused() {
    let (ws, _up, gw) = setup().await;
    let client = https_client(&ws, None, false);
    let ok = Request::get(gw.url("/echo"))
        .header("x-big", "v".repeat(8 * 1024))
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&client, ok).await.unwrap().status, StatusCode::OK);
    let too_big = Request::get(gw.url("/echo"))
        .header("x-big", "v".repeat(20 * 1024))
        .body(Full::default())
        .unwrap();
    let reply = send(&client, too_big).await.unwrap();
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    // Header count: hyper's client adds `host`, so 19 + host is exactly max_headers = 20.
    let many = |n: usize| {
        let mut b = Request::get(gw.url("/echo"));
        for i in 0..n {
            b = b.header(format!("x-h{i}"), "1");
        }
        b.body(Full::default()).unwrap()
    };
    assert_eq!(
        send(&client, many(19)).await.unwrap().status,
        StatusCode::OK
    );
    let reply = send(&client, many(20)).await.unwrap();
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[tokio::test]
async fn slow_request_heads_are_cut_off_after_the_head_timeout() {
    let (ws, _up, gw) = setup().await;
    let mut stream = raw_tls(&ws, gw.addr).await;
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nhost: localhost\r\nx-slow: ")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "slowloris connection still open after 5 s");
    // Cut by the 1 s head timeout, not the 3 s idle timeout.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_close_after_the_idle_timeout_not_the_head_timeout() {
    let (ws, _up, gw) = setup().await;
    let mut stream = raw_tls(&ws, gw.addr).await;
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (read, closed) = read_until_closed(&mut stream, Duration::from_secs(8)).await;
    assert!(
        read.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&read)
    );
    assert!(closed, "idle connection still open after 8 s");
    // Open through the 1 s head timeout (an idle wait is not a slow head), closed by 3 s idle.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2800),
        "closed after {elapsed:?}"
    );
}

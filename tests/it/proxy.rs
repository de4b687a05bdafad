//! Forwarding: passthrough, HTTP/2, keep-alive reuse, header hygiene, upstream failures.

use crate::harness::*;
use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::Full;

async fn setup(extra: &str) -> (Workspace, Upstream, Gateway) {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    let cfg = ws.write("privgate.toml", &config(&ws, upstream.addr, "", extra));
    let gw = Gateway::start(&cfg);
    (ws, upstream, gw)
}

#[tokio::test]
async fn get_and_post_pass_through_with_bodies() {
    let (ws, _up, gw) = setup("").await;
    let client = https_client(&ws, None, false);

    let reply = get(&client, &gw.url("/echo/customers/7?expand=accounts&x=%20y")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let echo = reply.json();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/echo/customers/7");
    assert_eq!(echo["query"], "expand=accounts&x=%20y");

    // Streamed route: any bytes pass through untouched.
    let payload = "line one\nline two \u{00e9}";
    let req = Request::post(gw.url("/echo/upload"))
        .body(Full::new(Bytes::from(payload)))
        .unwrap();
    let echo = send(&client, req).await.unwrap().json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body"], payload);

    // Buffered route: JSON passes through with an exact Content-Length.
    let json = r#"{"amount_minor":1250,"to_iban":"GB33BUKB20201555555555"}"#;
    let req = Request::post(gw.url("/buffered/echo"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json)))
        .unwrap();
    let reply = send(&client, req).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let echo = reply.json();
    assert_eq!(echo["body"], json);
    assert_eq!(echo["headers"]["content-length"], json.len().to_string());
}

#[tokio::test]
async fn http2_clients_are_served_and_upstream_gets_http11() {
    let (ws, _up, gw) = setup("").await;
    let client = https_client(&ws, None, true);
    let req = Request::post(gw.url("/echo/h2"))
        .body(Full::new(Bytes::from_static(b"{\"a\":1}")))
        .unwrap();
    let reply = send(&client, req).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.version, Version::HTTP_2);
    let echo = reply.json();
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["body"], "{\"a\":1}");
    assert!(echo["headers"]["host"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(echo["headers"]["x-forwarded-host"] == "localhost");
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let (ws, up, gw) = setup("").await;
    // Two clients, five sequential requests each: one pooled upstream connection serves
    // each client's five. Each connection lane keeps its own pool, so the second client,
    // if its connection went to another lane, opens one more.
    for (h2, at_most) in [(false, 1), (true, 2)] {
        let client = https_client(&ws, None, h2);
        for _ in 0..5 {
            assert_eq!(
                get(&client, &gw.url("/echo/pool")).await.status,
                StatusCode::OK
            );
        }
        assert!(
            (1..=at_most).contains(&up.connections()),
            "upstream saw {} connections",
            up.connections()
        );
    }
}

#[tokio::test]
async fn hop_by_hop_and_internal_headers_are_stripped_both_ways() {
    let (ws, _up, gw) = setup("[forwarding]\ninternal_headers = [\"x-tenant\"]").await;
    let client = https_client(&ws, None, false);
    let req = Request::get(gw.url("/echo/headers"))
        .header("connection", "x-client-hop")
        .header("x-client-hop", "secret")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic dXNlcjpwYXNz")
        .header("x-otp", "123456")
        .header("x-purpose", "marketing")
        .header("x-privgate-subject", "forged-admin")
        .header("x-tenant", "forged")
        .header("x-forwarded-for", "203.0.113.66")
        .header("x-request-id", "client-chosen-id")
        .header("accept", "application/json")
        .body(Full::default())
        .unwrap();
    let reply = send(&client, req).await.unwrap();
    let headers = &reply.json()["headers"];
    for gone in [
        "x-client-hop",
        "te",
        "proxy-authorization",
        "x-otp",
        "x-purpose",
        "x-privgate-subject",
        "x-tenant",
    ] {
        assert!(
            headers.get(gone).is_none(),
            "{gone} reached the upstream: {headers}"
        );
    }
    assert_eq!(headers["accept"], "application/json");
    assert_eq!(
        headers["x-forwarded-for"], "127.0.0.1",
        "client-sent XFF must be replaced"
    );
    assert_eq!(headers["x-forwarded-proto"], "https");
    assert_eq!(headers["x-request-id"], "client-chosen-id");
    assert_eq!(reply.headers["x-request-id"], "client-chosen-id");

    // Response direction.
    let reply = get(&client, &gw.url("/hop")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.get("x-upstream-hop").is_none());
    assert!(reply.headers.get("keep-alive").is_none());
    assert_eq!(reply.headers["x-upstream-end"], "kept");
    // A request id was generated for a request that had none.
    let id = reply.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "{id}");
}

#[tokio::test]
async fn dead_upstream_is_502_and_slow_upstream_is_504() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let extra = format!(
        r#"
[upstream.dead]
url = "http://{dead}"
connect_timeout = "1s"

[[route]]
name = "dead"
path_prefix = "/dead"
upstream = "dead"

[[route]]
name = "slow"
path_prefix = "/slow"
upstream = "main"
"#
    );
    let (ws, up, gw) = setup(&extra).await;
    let client = https_client(&ws, None, false);

    let reply = get(&client, &gw.url("/dead/x")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error_code(), "upstream_unavailable");
    let body = String::from_utf8_lossy(&reply.body).to_string();
    assert!(
        !body.contains("127.0.0.1") && !body.contains("dead"),
        "internal detail leaked: {body}"
    );
    assert_eq!(
        reply.json()["error"]["request_id"],
        reply.headers["x-request-id"].to_str().unwrap()
    );

    // `main` has a 2 s response timeout; the upstream takes 5 s.
    let started = std::time::Instant::now();
    let reply = get(&client, &gw.url("/slow?ms=5000")).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.error_code(), "upstream_timeout");
    assert!(started.elapsed() < std::time::Duration::from_millis(4500));
    drop(up);

    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(
        metrics.contains(r#"privgate_upstream_errors_total{upstream="dead",kind="unreachable"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"privgate_upstream_errors_total{upstream="main",kind="timeout"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"privgate_requests_total{route="dead",status="502"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn https_upstream_is_verified_and_gets_the_gateway_client_certificate() {
    let ws = Workspace::new();
    let tls_upstream = Upstream::start_with_tls(Some(upstream_tls(&ws, "certs/ca.pem"))).await;
    let dir = ws.dir.path().display();
    let extra = format!(
        r#"
[upstream.secure]
url = "https://localhost:{port}"
ca = "{dir}/certs/ca.pem"
client_cert = "{dir}/certs/client-b.pem"
client_key = "{dir}/certs/client-b.key.pem"

[upstream.untrusted]
url = "https://localhost:{port}"
ca = "{dir}/other/ca.pem"
client_cert = "{dir}/certs/client-b.pem"
client_key = "{dir}/certs/client-b.key.pem"

[[route]]
name = "secure"
path_prefix = "/secure"
upstream = "secure"
strip_prefix = true

[[route]]
name = "untrusted"
path_prefix = "/untrusted"
upstream = "untrusted"
"#,
        port = tls_upstream.addr.port()
    );
    let plain = Upstream::start().await;
    let cfg = ws.write("privgate.toml", &config(&ws, plain.addr, "", &extra));
    let gw = Gateway::start(&cfg);
    let client = https_client(&ws, None, false);

    let reply = get(&client, &gw.url("/secure/echo/x")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let echo = reply.json();
    assert_eq!(echo["path"], "/echo/x", "prefix stripped");
    assert_eq!(echo["client_cert"], true);

    // The upstream's certificate does not chain to the configured CA: refused, 502.
    let reply = get(&client, &gw.url("/untrusted/echo")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error_code(), "upstream_unavailable");
}

#[tokio::test]
async fn unknown_routes_methods_and_ambiguous_paths_are_refused() {
    let extra = r#"
[[route]]
name = "payments"
path_prefix = "/payments"
methods = ["POST"]
upstream = "main"
"#;
    let ws = Workspace::new();
    let up = Upstream::start().await;
    // No catch-all route here: replace the default "/" route's prefix.
    let cfg = config(&ws, up.addr, "", extra).replacen(
        "path_prefix = \"/\"",
        "path_prefix = \"/echo\"",
        1,
    );
    let gw = Gateway::start(&ws.write("privgate.toml", &cfg));
    let client = https_client(&ws, None, false);
    let cases = [
        (
            "GET",
            "/nothing-here",
            StatusCode::NOT_FOUND,
            "route_not_found",
        ),
        (
            "GET",
            "/payments/1",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "GET",
            "/echo/../payments",
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "GET",
            "/echo/%2e%2e/payments",
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
    ];
    for (method, path, status, code) in cases {
        let req = Request::builder()
            .method(method)
            .uri(gw.url(path))
            .body(Full::default())
            .unwrap();
        let reply = send(&client, req).await.unwrap();
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (status, code),
            "{method} {path}"
        );
    }
}

/// Reads from `stream` until `text` holds every one of `wanted` (or 10 s pass).
async fn read_until_all<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    text: &mut String,
    wanted: &[&str],
) {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !wanted.iter().all(|w| text.contains(w)) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            outcome => panic!("{wanted:?} not all received ({outcome:?}): {text}"),
        }
    }
}

/// `privgate serve` runs with transparent huge pages off for its process (what idle
/// connections hold stays what they use: `cli::serve::without_huge_pages`).
#[tokio::test]
async fn serve_runs_without_transparent_huge_pages() {
    let (_ws, _up, gw) = setup("").await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.child.id())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .expect("the kernel reports THP_enabled (Linux 5.0 and later)");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}

/// Connections are served on the connection lanes, one thread per CPU named `lane-N`, and
/// spread over them: with twice as many busy keep-alive connections as lanes, every lane
/// serves (its thread's CPU time grows).
#[tokio::test]
async fn connections_are_spread_over_one_lane_per_cpu() {
    let (ws, _up, gw) = setup("").await;
    let pid = gw.child.id();
    let lane_cpu = || {
        let mut lanes = std::collections::BTreeMap::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if let Some(lane) = comm.trim().strip_prefix("lane-") {
                let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
                // Fields after the command's closing parenthesis; utime and stime are the
                // 14th and 15th of the line, the 12th and 13th after it.
                let after = &stat[stat.rfind(')').unwrap() + 2..];
                let fields: Vec<u64> = after
                    .split_whitespace()
                    .skip(11)
                    .take(2)
                    .map(|f| f.parse().unwrap())
                    .collect();
                lanes.insert(lane.parse::<usize>().unwrap(), fields[0] + fields[1]);
            }
        }
        lanes
    };
    let cpus = std::thread::available_parallelism().unwrap().get();
    // A thread names itself once it first runs: on a loaded machine a lane that has not
    // been scheduled yet is still unnamed, so its name is waited for (up to 10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let before = loop {
        let lanes = lane_cpu();
        if lanes.len() >= cpus || std::time::Instant::now() > deadline {
            break lanes;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        before.keys().copied().collect::<Vec<_>>(),
        (0..cpus).collect::<Vec<_>>(),
        "one lane per CPU"
    );
    let clients: Vec<_> = (0..2 * cpus)
        .map(|_| https_client(&ws, None, false))
        .collect();
    let url = gw.url("/echo/lanes");
    let mut busy = tokio::task::JoinSet::new();
    for client in clients {
        let url = url.clone();
        busy.spawn(async move {
            for _ in 0..150 {
                assert_eq!(get(&client, &url).await.status, StatusCode::OK);
            }
        });
    }
    while let Some(done) = busy.join_next().await {
        done.unwrap();
    }
    let after = lane_cpu();
    for (lane, ticks) in &after {
        assert!(
            *ticks > before[lane],
            "lane {lane} served nothing: {before:?} -> {after:?}"
        );
    }
}

/// Between requests an idle HTTP/1.1 connection is parked outside hyper; pipelined
/// requests, bodies and request heads split across that pause are all served, and no
/// response announces a close.
#[tokio::test]
async fn keep_alive_connections_serve_pipelined_and_split_requests_across_idle_pauses() {
    use tokio::io::AsyncWriteExt;
    let (ws, _up, gw) = setup("").await;
    let mut stream = raw_tls(&ws, gw.addr).await;
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(400)); // past connection::PARK_AFTER
    let mut text = String::new();

    // Two pipelined requests in one write, the second with a body.
    stream
        .write_all(
            b"GET /echo/one HTTP/1.1\r\nhost: localhost\r\n\r\n\
              POST /echo/two HTTP/1.1\r\nhost: localhost\r\ncontent-length: 5\r\n\r\nhello",
        )
        .await
        .unwrap();
    read_until_all(&mut stream, &mut text, &["/echo/one", "/echo/two", "hello"]).await;
    pause().await;

    // A head split across a pause, after the connection went idle.
    stream
        .write_all(b"GET /echo/three HTTP/1.1\r\nho")
        .await
        .unwrap();
    pause().await;
    stream.write_all(b"st: localhost\r\n\r\n").await.unwrap();
    read_until_all(&mut stream, &mut text, &["/echo/three"]).await;
    pause().await;

    // A whole request and the start of the next: the start is read ahead by the state
    // that served the first, and must reach the state that serves the second.
    stream
        .write_all(b"GET /echo/four HTTP/1.1\r\nhost: localhost\r\n\r\nGET /echo/fi")
        .await
        .unwrap();
    read_until_all(&mut stream, &mut text, &["/echo/four"]).await;
    pause().await;
    stream
        .write_all(b"ve HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    read_until_all(&mut stream, &mut text, &["/echo/five"]).await;

    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 5, "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
}

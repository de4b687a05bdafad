//! The upstream misbehaves in each way a TCP peer can, then recovers: each fault is answered
//! with its documented status (never a partial body passed off as whole), and the next
//! request after the fault clears is served, with no restart.

use crate::harness::*;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the upstream does with the next request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Behaviour {
    /// A valid keep-alive `200 {"ok":true}`.
    Healthy,
    /// The head and part of a `Content-Length` body, then a TCP reset.
    ResetMidBody,
    /// Reads the request and never answers.
    Hang,
    /// Bytes that are not HTTP, then a close.
    Garbage,
    /// A chunked body without its last chunk, then a close.
    TruncatedChunked,
}

/// A raw-TCP upstream on loopback whose behaviour the test switches; `None`: nothing
/// listens on its port (connections refused).
struct FaultyUpstream {
    addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    task: Option<tokio::task::JoinHandle<()>>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl FaultyUpstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut upstream = Self {
            addr,
            behaviour: Arc::new(Mutex::new(Behaviour::Healthy)),
            task: None,
            connections: Arc::default(),
        };
        upstream.serve(listener);
        upstream
    }

    fn serve(&mut self, listener: TcpListener) {
        let behaviour = self.behaviour.clone();
        let connections = self.connections.clone();
        self.task = Some(tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let task = tokio::spawn(connection(tcp, behaviour.clone()));
                connections.lock().unwrap().push(task);
            }
        }));
    }

    fn set(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap() = b;
    }

    /// Stops listening and closes every connection: new ones to the port are refused.
    async fn refuse(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
        // Time for the gateway's pool to see its idle connections close.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Listens again on the same port.
    async fn listen_again(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

async fn connection(mut tcp: TcpStream, behaviour: Arc<Mutex<Behaviour>>) {
    let mut buf = Vec::new();
    loop {
        // The gateway's requests here have no body: the head ends the request.
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.clear();
        let now = *behaviour.lock().unwrap();
        let _ = match now {
            Behaviour::Healthy => {
                tcp.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}",
                )
                .await
            }
            Behaviour::ResetMidBody => {
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"name\":\"Al",
                    )
                    .await;
                let _ = tcp.flush().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                // Linger zero: the close is a RST, not a FIN (and with nothing left unsent,
                // the drop does not block, which is why tokio deprecates the setter).
                #[allow(deprecated)]
                let _ = tcp.set_linger(Some(Duration::ZERO));
                return;
            }
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            Behaviour::Garbage => {
                let _ = tcp.write_all(b"\x16\x03\x01garbage that is not HTTP\r\n\r\n").await;
                return;
            }
            Behaviour::TruncatedChunked => {
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nb\r\n{\"name\":\"Al\r\n",
                    )
                    .await;
                let _ = tcp.flush().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                return;
            }
        };
    }
}

/// Status and whether the whole body arrived, for a GET through the gateway.
async fn fetch(client: &HttpsClient, url: &str) -> (StatusCode, Result<Bytes, String>) {
    let req = http::Request::get(url).body(Full::default()).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(15), client.request(req))
        .await
        .expect("the gateway answers within 15 s")
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await;
    (
        status,
        body.map(|b| b.to_bytes()).map_err(|e| e.to_string()),
    )
}

#[tokio::test]
async fn each_upstream_fault_is_answered_as_documented_and_the_next_request_is_served() {
    let ws = Workspace::new();
    let mut up = FaultyUpstream::start().await;
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, "", "")));
    let client = https_client(&ws, None, false);
    let healthy = |(status, body): (StatusCode, Result<Bytes, String>), case: &str| {
        assert_eq!(status, StatusCode::OK, "{case}: not recovered");
        assert_eq!(
            body.unwrap(),
            Bytes::from_static(b"{\"ok\":true}"),
            "{case}"
        );
    };
    healthy(fetch(&client, &gw.url("/buffered/a")).await, "start");

    // (fault, buffered route's status and code); the streamed route's answer is below.
    let cases = [
        (
            Behaviour::ResetMidBody,
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
        ),
        (
            Behaviour::Hang,
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
        ),
        (Behaviour::Garbage, StatusCode::BAD_GATEWAY, "bad_gateway"),
        (
            Behaviour::TruncatedChunked,
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
        ),
    ];
    for (fault, status, code) in cases {
        up.set(fault);
        let (got, body) = fetch(&client, &gw.url("/buffered/a")).await;
        let body = body.unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(got, status, "{fault:?}: {body:?}");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], code, "{fault:?}");
        assert!(
            !body.windows(4).any(|w| w == b"name"),
            "{fault:?}: {body:?}"
        );

        // Streamed: once the head has gone, a body cut upstream is cut for the client too
        // (no clean end it could take for the whole answer); before it, the same refusal.
        let (got, body) = fetch(&client, &gw.url("/streamed")).await;
        match fault {
            Behaviour::ResetMidBody | Behaviour::TruncatedChunked => {
                assert_eq!(got, StatusCode::OK, "{fault:?}");
                assert!(
                    body.is_err(),
                    "{fault:?}: a cut body ended cleanly: {body:?}"
                );
            }
            _ => assert_eq!(got, status, "{fault:?}"),
        }

        up.set(Behaviour::Healthy);
        healthy(
            fetch(&client, &gw.url("/buffered/a")).await,
            &format!("{fault:?}"),
        );
        healthy(
            fetch(&client, &gw.url("/streamed")).await,
            &format!("{fault:?}"),
        );
    }

    // Refusing connections: 502 `upstream_unavailable`, served again once it listens.
    up.refuse().await;
    let (got, body) = fetch(&client, &gw.url("/buffered/a")).await;
    assert_eq!(got, StatusCode::BAD_GATEWAY);
    let json: serde_json::Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "upstream_unavailable");
    up.listen_again().await;
    healthy(fetch(&client, &gw.url("/buffered/a")).await, "refused");
}

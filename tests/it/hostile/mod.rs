//! Issue 16, items 2, 3 and 8: hostile clients against the real binary.
//!
//! Every test here puts the gateway in front of a [`Recorder`], an upstream that keeps each
//! request it received (head and whole body), so a test can say not only what the client
//! was told but what, if anything, went upstream: a refused request must leave nothing
//! there, and a normalised one must arrive with exactly one framing.

mod http1;
mod http2;
mod json;
mod secrets;
mod slow;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Received {
    /// Every value of header `name`.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether the request had exactly one framing: no body, a `Content-Length` equal to
    /// its body, or chunked alone.
    pub fn check_framing(&self) -> Result<(), String> {
        let lengths = self.header("content-length");
        let codings = self.header("transfer-encoding");
        let length = self.body.len().to_string();
        match (lengths.as_slice(), codings.as_slice()) {
            ([], []) if self.body.is_empty() => Ok(()),
            ([declared], []) if *declared == length => Ok(()),
            ([], ["chunked"]) => Ok(()),
            _ => Err(format!("ambiguous framing upstream: {self:?}")),
        }
    }
}

/// A real HTTP/1.1 upstream that records every request it received whole, and answers:
/// `/big?mib=N` with N MiB of `x`, streamed; a JSON body with itself; anything else
/// `{"ok":true}`.
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let seen = seen.clone();
                        async move { Ok::<_, Infallible>(record(req, &seen).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { addr, seen, task }
    }

    /// What the upstream has received so far.
    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

type Answer = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn record(req: Request<Incoming>, seen: &Mutex<Vec<Received>>) -> Response<Answer> {
    let (head, body) = req.into_parts();
    // A body that does not arrive whole is not a request the upstream would act on.
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Response::builder()
            .status(400)
            .body(Full::default().boxed())
            .unwrap();
    };
    let target = head
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let query = head.uri.query().unwrap_or("").to_owned();
    seen.lock().unwrap().push(Received {
        method: head.method.to_string(),
        target: target.clone(),
        headers: head
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body: body.clone(),
    });
    if target.starts_with("/big") {
        let mib: usize = query.trim_start_matches("mib=").parse().unwrap_or(0);
        let chunk = Bytes::from(vec![b'x'; 1024 * 1024]);
        let chunks = (0..mib).map(move |_| Ok(http_body::Frame::data(chunk.clone())));
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        return Response::new(body.boxed());
    }
    // A JSON body comes back as a stored record would (the create routes read their
    // subject from the answer); anything else is acknowledged.
    let json = head
        .headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().ends_with(b"json"));
    let answer = match json && !body.is_empty() {
        true => body,
        false => Bytes::from_static(br#"{"ok":true}"#),
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(answer).boxed())
        .unwrap()
}

//! The one HTTPS client for every call the gateway and its CLI make on their own: an
//! issuer's JWKS, token introspection and token endpoint, the risk webhook, `privgate
//! query` and `privgate fhe contribute`. hyper-util's pooled client on hyper-rustls, with
//! the same rustls configuration as upstream connections (`gateway::tls`).
//!
//! Contract:
//! - HTTPS only; servers verified against a CA bundle or, without one, the system roots; an
//!   optional client certificate (mutual TLS);
//! - every try is bounded by one timeout (connect, send and the whole answer read), and an
//!   answer by a size limit: a body over it is an error, never a truncated answer;
//! - idempotent requests (GET, HEAD) are tried again on a failure a retry can mend (no
//!   connection, a reset, a timeout, 408, 429, 502, 503, 504), after an exponentially
//!   growing wait with jitter; anything else (a POST: a query spends budget, a contribution
//!   nonce is accepted once) is sent exactly once and its failure returned to the caller;
//! - proxies from the environment as curl reads them (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`
//!   and their lower-case forms): a proxied connection is an HTTP CONNECT tunnel, TLS runs
//!   end to end inside it, so the proxy sees the host name and port only;
//! - errors name the failure (timeout, connection, status), never headers or bodies.

use crate::config::ConfigError;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tower_service::Service;

/// Connect timeout when the caller sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one try when the caller sets none.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read when the caller sets no limit.
const MAX_BODY: usize = 1 << 20;
/// Tries of an idempotent request when the caller sets no number.
const ATTEMPTS: u32 = 3;
/// Wait before the first retry; doubled for each further one, at most `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between two tries: these calls have a person or a start-up waiting.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Why a call failed. The text names the failure only (no header, body or token).
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The request could not be built (a bad URL or header).
    #[error("bad request: {0}")]
    Request(String),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed (refused, reset, TLS, proxy).
    #[error("connection failed: {0}")]
    Connection(String),
    /// The answer's body is over the size limit.
    #[error("answer over {0} bytes")]
    TooLarge(usize),
}

/// The HTTPS client. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct OutboundClient {
    client: Client<HttpsConnector<ProxyConnector>, Full<Bytes>>,
    timeout: Duration,
    max_body: usize,
    attempts: u32,
}

/// Settings of an [`OutboundClient`]; `build` reads the TLS files.
pub struct Builder {
    ca: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    connect_timeout: Duration,
    timeout: Duration,
    max_body: usize,
    attempts: u32,
    proxy: Option<Matcher>,
}

impl OutboundClient {
    /// Settings with the defaults: system roots, no client certificate, 5 s to connect,
    /// 30 s a try, 1 MiB answers, 3 tries of an idempotent request, proxies from the
    /// environment.
    pub fn builder() -> Builder {
        Builder {
            ca: None,
            client_cert: None,
            connect_timeout: CONNECT_TIMEOUT,
            timeout: TIMEOUT,
            max_body: MAX_BODY,
            attempts: ATTEMPTS,
            proxy: None,
        }
    }

    /// A GET of `uri` with the given `Accept`.
    pub async fn get(&self, uri: &Uri, accept: &str) -> Result<Response<Bytes>, OutboundError> {
        let request = Request::get(uri.clone())
            .header(http::header::ACCEPT, accept)
            .body(Bytes::new())
            .map_err(|e| OutboundError::Request(e.to_string()))?;
        self.send(request).await
    }

    /// Sends `request` and reads the whole answer, whatever its status; a GET or HEAD is
    /// tried again as the module says.
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, OutboundError> {
        let idempotent = matches!(*request.method(), Method::GET | Method::HEAD);
        let attempts = if idempotent { self.attempts } else { 1 };
        let (parts, body) = request.into_parts();
        let mut wait = FIRST_BACKOFF;
        for attempt in 1..=attempts {
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = parts.uri.clone();
            *request.headers_mut() = parts.headers.clone();
            let outcome = match self.try_once(request).await {
                Ok(answer) if attempt < attempts && retryable(answer.status()) => {
                    format!("answered {}", answer.status())
                }
                Ok(answer) => return Ok(answer),
                Err(e @ OutboundError::TooLarge(_)) => return Err(e),
                Err(e) if attempt < attempts => e.to_string(),
                Err(e) => return Err(e),
            };
            let host = parts.uri.host().unwrap_or("");
            tracing::debug!(host, attempt, error = %outcome, "outbound call failed; retrying");
            tokio::time::sleep(jittered(wait)).await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
        unreachable!("the last try returns")
    }

    /// One try: the request and the whole answer (any status) within the timeout.
    async fn try_once(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Bytes>, OutboundError> {
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| OutboundError::Connection(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        OutboundError::TooLarge(self.max_body)
                    } else {
                        OutboundError::Connection(format!("reading the answer: {e}"))
                    }
                })?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| OutboundError::Timeout(self.timeout))?
    }
}

/// Statuses that say "try again later" rather than "no".
fn retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::REQUEST_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// A wait between half and all of `wait` ("equal jitter"), so that many clients failed at
/// once do not come back at once.
fn jittered(wait: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let fraction = match crate::keys::random(&mut byte) {
        Ok(()) => f64::from(byte[0]) / 255.0,
        Err(_) => 1.0,
    };
    wait / 2 + wait.mul_f64(fraction / 2.0)
}

impl Builder {
    /// Verify servers against this CA bundle (PEM) instead of the system roots.
    pub fn ca(mut self, ca: Option<PathBuf>) -> Self {
        self.ca = ca;
        self
    }

    /// Present this certificate and key (PEM files) to servers asking for one.
    pub fn client_cert(mut self, cert: PathBuf, key: PathBuf) -> Self {
        self.client_cert = Some((cert, key));
        self
    }

    /// Time to open a TCP connection (to the server or the proxy).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time for one try: connecting, sending and reading the whole answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest answer body read.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Tries of an idempotent request (at least one).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Proxy rules instead of the environment's (tests, and callers with their own rules).
    pub fn proxy(mut self, proxy: Matcher) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Reads the TLS files and builds the client.
    pub fn build(self) -> Result<OutboundClient, ConfigError> {
        let client_cert = self
            .client_cert
            .as_ref()
            .map(|(cert, key)| (cert.as_path(), key.as_path()));
        let tls = crate::gateway::tls::outbound_client_config(self.ca.as_deref(), client_cert)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        let proxy = ProxyConnector {
            http,
            proxy: Arc::new(self.proxy.unwrap_or_else(Matcher::from_env)),
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(proxy);
        Ok(OutboundClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: self.timeout,
            max_body: self.max_body,
            attempts: self.attempts,
        })
    }
}

/// Opens the TCP stream TLS runs on: straight to the server, or a CONNECT tunnel through
/// the proxy the rules pick for it.
#[derive(Clone)]
struct ProxyConnector {
    http: HttpConnector,
    proxy: Arc<Matcher>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Service<Uri> for ProxyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        let mut http = self.http.clone();
        match self.proxy.intercept(&destination) {
            None => Box::pin(async move { Ok(http.call(destination).await?) }),
            Some(intercept) => {
                let mut tunnel = Tunnel::new(intercept.uri().clone(), http);
                if let Some(auth) = intercept.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move { Ok(tunnel.call(destination).await?) })
            }
        }
    }
}

/// An error with its causes, for logs (hyper's top-level errors say little alone).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jittered_wait_is_between_half_and_all_of_the_wait() {
        let wait = Duration::from_millis(400);
        let waits: Vec<Duration> = (0..64).map(|_| jittered(wait)).collect();
        assert!(
            waits.iter().all(|w| *w >= wait / 2 && *w <= wait),
            "{waits:?}"
        );
        assert!(waits.iter().any(|w| *w != waits[0]), "no jitter: {waits:?}");
    }

    #[test]
    fn only_statuses_that_say_later_are_tried_again() {
        for status in [408, 429, 502, 503, 504] {
            assert!(retryable(StatusCode::from_u16(status).unwrap()), "{status}");
        }
        for status in [200, 301, 400, 401, 403, 404, 409, 500, 501] {
            assert!(
                !retryable(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
    }
}

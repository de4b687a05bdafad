//! Keep-alive connections to one upstream, one pool per connection lane, on hyper's own
//! HTTP/1.1 client connections.
//!
//! Why not hyper-util's pooled client: per request it hashed a pool key (scheme and
//! authority, SipHash), cloned and dropped the connector, set `Host` by formatting the URI
//! and went through a checkout future, about 6 % of the plain-forwarding route's samples
//! (docs/performance-history.md). Here the upstream is fixed, so a lane's pool is a stack of
//! idle senders and `Host` one header value built at load.
//!
//! The pool's contract, as the one it replaces:
//! - a connection is reused only once the previous response's body ended (a body cut short,
//!   or dropped by a client that went away, leaves its connection to close), and a ready
//!   one is taken before one still sending a request body its upstream answered early;
//! - a connection the upstream closed while idle is not used; a request sent on a reused
//!   connection that turns out closed before any byte of it was written is sent again on
//!   another connection;
//! - a request written in the instant the upstream closes an idle connection (its own
//!   keep-alive timeout) is lost with that connection, and whether the upstream read it
//!   cannot be known: a GET, HEAD or OPTIONS without a body, on a connection idle for at
//!   least [`RESEND_AFTER_IDLE`], is sent once more on a new connection, as nginx does for
//!   idempotent requests; anything else fails (502). Under load connections are idle for
//!   microseconds and no copy is kept;
//! - idle connections close after `pool_idle_timeout` (checked when taking one, and by a
//!   reaper task while any are idle), and at most `pool_max_idle` wait per lane;
//! - each connection is driven by a task on the lane that opened it (`lanes`).

use crate::gateway::lanes;
use crate::gateway::proxy_body::{BoxError, ProxyBody};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower_service::Service;

/// Why an exchange failed.
#[derive(Debug)]
pub(super) enum SendError {
    /// No connection could be opened (refused, unreachable, TLS).
    Connect(BoxError),
    /// The connection failed during the exchange (nothing usable came back).
    Exchange(hyper::Error),
}

/// The pools of one upstream, one per lane.
pub(super) struct Pool {
    connector: HttpsConnector<HttpConnector>,
    /// Scheme and authority: what the connector connects to.
    origin: Uri,
    /// The `Host` every request carries.
    host: HeaderValue,
    idle_timeout: Duration,
    max_idle: usize,
    /// Idle time from which a connection may have met the upstream's keep-alive timeout.
    resend_after_idle: Duration,
    lanes: Box<[Arc<LanePool>]>,
}

/// Idle time from which an idempotent request keeps a copy to send again if its reused
/// connection turns out closed under it. Upstream keep-alive timeouts are seconds (Node 5 s,
/// nginx 75 s, Go unlimited); a connection reused sooner is not near one.
pub(super) const RESEND_AFTER_IDLE: Duration = Duration::from_secs(1);

/// One lane's idle connections, most recently used last.
#[derive(Default)]
struct LanePool {
    idle: Mutex<Vec<Idle>>,
    /// Whether a reaper task is closing this lane's expired connections.
    reaping: AtomicBool,
}

struct Idle {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

impl Pool {
    pub(super) fn new(
        connector: HttpsConnector<HttpConnector>,
        origin: Uri,
        host: HeaderValue,
        idle_timeout: Duration,
        max_idle: usize,
        resend_after_idle: Duration,
    ) -> Self {
        Self {
            connector,
            origin,
            host,
            idle_timeout,
            max_idle,
            resend_after_idle,
            lanes: (0..lanes::count()).map(|_| Arc::default()).collect(),
        }
    }

    /// Sends `req` (origin-form target) on an idle connection of this lane, or a new one. An
    /// `async` block over the request it captured, not an `async fn` (which would hold it
    /// twice: its argument and a local).
    #[allow(clippy::manual_async_fn)]
    pub(super) fn send(
        &self,
        mut req: Request<ProxyBody>,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, SendError>> + '_ {
        req.headers_mut()
            .insert(http::header::HOST, self.host.clone());
        async move {
            let lane = &self.lanes[lanes::current() % self.lanes.len()];
            while let Some((mut sender, idle_for)) = self.take_idle(lane) {
                if sender.ready().await.is_err() {
                    continue; // closed meanwhile
                }
                let copy = if idle_for >= self.resend_after_idle {
                    resendable(&req)
                } else {
                    None
                };
                match sender.try_send_request(req).await {
                    Ok(response) => return Ok(self.returning(response, sender, lane)),
                    Err(mut failed) => match failed.take_message() {
                        // Closed before any byte was written: nothing reached the upstream, so
                        // sending it again cannot repeat it.
                        Some(unsent) if failed.error().is_canceled() => req = unsent,
                        _ => match copy {
                            Some(copy) if closed_under_it(failed.error()) => {
                                req = copy;
                                break; // on a new connection, not another idle one
                            }
                            _ => return Err(SendError::Exchange(failed.into_error())),
                        },
                    },
                }
            }
            // Boxed, in a statement of its own (docs/architecture.md, "The request path"): a
            // connection is opened rarely, and its handshake's state would otherwise be part of
            // every request's future (copied whenever that moves).
            let connect = Box::pin(self.connect());
            let mut sender = connect.await?;
            let response = sender
                .send_request(req)
                .await
                .map_err(SendError::Exchange)?;
            Ok(self.returning(response, sender, lane))
        }
    }

    /// The most recently idle connection of `lane` that is ready for a request, else the
    /// most recent one still open, and how long it was idle; closes the expired ones (idle
    /// connections are in the order they came back, so all below an expired one are too).
    /// One whose response has ended while its request body is still being sent (an upstream
    /// that answered early) is not ready, and is passed over while another is.
    fn take_idle(&self, lane: &LanePool) -> Option<(SendRequest<ProxyBody>, Duration)> {
        let mut idle = lane.idle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ready) = idle.iter().rposition(|c| c.sender.is_ready()) {
            let Idle { sender, since } = idle.remove(ready);
            let idle_for = since.elapsed();
            if idle_for < self.idle_timeout {
                return Some((sender, idle_for));
            }
            idle.drain(..ready);
        }
        while let Some(Idle { sender, since }) = idle.pop() {
            let idle_for = since.elapsed();
            if idle_for >= self.idle_timeout {
                idle.clear();
                return None;
            }
            if !sender.is_closed() {
                return Some((sender, idle_for));
            }
        }
        None
    }

    /// A new connection, driven by a task on this lane.
    async fn connect(&self) -> Result<SendRequest<ProxyBody>, SendError> {
        let io = self
            .connector
            .clone()
            .call(self.origin.clone())
            .await
            .map_err(SendError::Connect)?;
        let (sender, connection) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        tokio::spawn(async move {
            // Its end (the upstream closed it, or it failed) shows as an error on the
            // exchange that was using it, if any.
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn returning(
        &self,
        response: Response<Incoming>,
        sender: SendRequest<ProxyBody>,
        lane: &Arc<LanePool>,
    ) -> Response<UpstreamBody> {
        response.map(|body| UpstreamBody {
            body,
            back: Some(GiveBack {
                sender,
                lane: lane.clone(),
                idle_timeout: self.idle_timeout,
                max_idle: self.max_idle,
            }),
        })
    }
}

/// A copy of `req` to send again, for a GET, HEAD or OPTIONS without a body (safe to
/// repeat, RFC 9110 section 9.2.2, and nothing to replay); `None` for anything else.
fn resendable(req: &Request<ProxyBody>) -> Option<Request<ProxyBody>> {
    let idempotent = matches!(
        *req.method(),
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    );
    if !idempotent || !http_body::Body::is_end_stream(req.body()) {
        return None;
    }
    let mut copy = Request::new(crate::gateway::body::full(Bytes::new()));
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// Whether an exchange failed because the connection closed under it before any answer:
/// the upstream's end of an idle connection (a close or a reset).
fn closed_under_it(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            );
        }
        source = cause.source();
    }
    false
}

/// A connection on loan to a response body, returned to its lane's pool when the body ends.
struct GiveBack {
    sender: SendRequest<ProxyBody>,
    lane: Arc<LanePool>,
    idle_timeout: Duration,
    max_idle: usize,
}

impl GiveBack {
    fn give_back(self) {
        let mut idle = self.lane.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= self.max_idle {
            return; // dropped: the connection closes
        }
        idle.push(Idle {
            sender: self.sender,
            since: Instant::now(),
        });
        drop(idle);
        if !self.lane.reaping.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(reap(Arc::downgrade(&self.lane), self.idle_timeout));
                }
                // Outside a runtime (not on the request path): expiry is still checked
                // when a connection is taken.
                Err(_) => self.lane.reaping.store(false, Ordering::Release),
            }
        }
    }
}

/// Closes a lane's expired idle connections every `idle_timeout` until none is idle or the
/// pool is gone (a reload replaced it).
async fn reap(lane: Weak<LanePool>, idle_timeout: Duration) {
    loop {
        tokio::time::sleep(idle_timeout).await;
        let Some(lane) = lane.upgrade() else { return };
        let mut idle = lane.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|c| c.since.elapsed() < idle_timeout && !c.sender.is_closed());
        if idle.is_empty() {
            lane.reaping.store(false, Ordering::Release);
            return;
        }
    }
}

/// An upstream response's body; its connection goes back to the pool once it has ended.
pub(crate) struct UpstreamBody {
    body: Incoming,
    back: Option<GiveBack>,
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => {
                if let Some(back) = self.back.take() {
                    back.give_back();
                }
            }
            // A failed body leaves its connection to close.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Ended without being read to its end (an empty body, or a reader that stops at
        // `is_end_stream`): reusable too. Anything else closes with its connection.
        if let Some(back) = self.back.take() {
            if http_body::Body::is_end_stream(&self.body) {
                back.give_back();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the test upstream does after each response.
    #[derive(Clone, Copy, PartialEq)]
    enum After {
        KeepAlive,
        /// Closes the connection without saying so (no `connection: close`), shortly after
        /// the answer.
        Close,
    }

    /// A plain-HTTP upstream on loopback answering every request `200 {"ok":true}`,
    /// counting the connections it accepted, the requests it read and the connections
    /// that ended.
    struct Upstream {
        origin: Uri,
        accepted: Arc<AtomicUsize>,
        requests: Arc<AtomicUsize>,
        ended: Arc<AtomicUsize>,
    }

    /// Served from a thread and runtime of its own (it answers whatever the pool's runtime
    /// is doing).
    async fn upstream(after: After) -> Upstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let origin = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let counters = [(); 3].map(|()| Arc::new(AtomicUsize::new(0)));
        let [accepted, requests, ended] = counters.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                loop {
                    let (mut tcp, _) = listener.accept().await.unwrap();
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let (requests, ended) = (requests.clone(), ended.clone());
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        'connection: loop {
                            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                                let mut chunk = [0u8; 1024];
                                match tcp.read(&mut chunk).await {
                                    Ok(0) | Err(_) => break 'connection,
                                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                                }
                            }
                            buf.clear();
                            requests.fetch_add(1, Ordering::SeqCst);
                            let answer =
                                b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
                            if tcp.write_all(answer).await.is_err() {
                                break;
                            }
                            if after == After::Close {
                                // After the answer has been read: the client's side of the
                                // connection is idle when the close arrives.
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                break;
                            }
                        }
                        drop(tcp);
                        ended.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
        });
        let [accepted, requests, ended] = counters;
        Upstream {
            origin,
            accepted,
            requests,
            ended,
        }
    }

    fn pool(up: &Upstream, idle_timeout: Duration, max_idle: usize) -> Pool {
        pool_resending_after(up, idle_timeout, max_idle, RESEND_AFTER_IDLE)
    }

    fn pool_resending_after(
        up: &Upstream,
        idle_timeout: Duration,
        max_idle: usize,
        resend_after_idle: Duration,
    ) -> Pool {
        let connector = crate::gateway::tls::http_or_https_connector(
            crate::gateway::tls::trusts_no_server(),
            Duration::from_secs(5),
        );
        Pool::new(
            connector,
            up.origin.clone(),
            HeaderValue::from_static("upstream"),
            idle_timeout,
            max_idle,
            resend_after_idle,
        )
    }

    fn get() -> Request<ProxyBody> {
        Request::get("/")
            .body(crate::gateway::body::full(Bytes::new()))
            .unwrap()
    }

    async fn read(response: Response<UpstreamBody>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    async fn eventually(what: &str, done: impl Fn() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what} did not happen within 5 s");
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_body_has_ended_and_not_before() {
        let up = upstream(After::KeepAlive).await;
        let pool = pool(&up, Duration::from_secs(60), 8);
        let first = pool.send(get()).await.unwrap();
        // The first body is unread: the second request needs a connection of its own.
        let second = pool.send(get()).await.unwrap();
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
        assert_eq!(read(first).await, "{\"ok\":true}");
        assert_eq!(read(second).await, "{\"ok\":true}");
        for _ in 0..5 {
            assert_eq!(read(pool.send(get()).await.unwrap()).await, "{\"ok\":true}");
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2, "connections reused");
        assert_eq!(up.requests.load(Ordering::SeqCst), 7);
    }

    /// A request body that never ends.
    struct Endless;

    impl http_body::Body for Endless {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_connection_still_sending_a_request_body_is_passed_over_for_a_ready_one() {
        use http_body_util::BodyExt as _;
        let up = upstream(After::KeepAlive).await;
        let pool = pool(&up, Duration::from_secs(60), 8);
        let first = pool.send(get()).await.unwrap();
        // The upstream answers this one as soon as its head is read, while its body is
        // still being sent: its connection comes back with the body unfinished.
        let uploading = Request::post("/").body(Endless.boxed_unsync()).unwrap();
        let early = pool.send(uploading).await.unwrap();
        read(first).await;
        read(early).await;
        assert_eq!(pool.lanes[0].idle.lock().unwrap().len(), 2);
        let next = tokio::time::timeout(Duration::from_secs(5), pool.send(get()))
            .await
            .expect("taken the ready connection, not waited on the busy one");
        assert_eq!(read(next.unwrap()).await, "{\"ok\":true}");
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let up = upstream(After::KeepAlive).await;
        let pool = pool(&up, Duration::from_secs(60), 8);
        let unread = pool.send(get()).await.unwrap();
        // Dropped with its 11 bytes unread (they may still be on the way): the connection
        // is not in a state the next request can trust.
        drop(unread);
        assert_eq!(read(pool.send(get()).await.unwrap()).await, "{\"ok\":true}");
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
        eventually("the abandoned connection closing", || {
            up.ended.load(Ordering::SeqCst) == 1
        })
        .await;
    }

    #[tokio::test]
    async fn connections_the_upstream_closed_while_idle_are_not_used_and_requests_are_sent_once() {
        let up = upstream(After::Close).await;
        let pool = pool(&up, Duration::from_secs(60), 8);
        for n in 1..=5 {
            assert_eq!(read(pool.send(get()).await.unwrap()).await, "{\"ok\":true}");
            assert_eq!(
                up.requests.load(Ordering::SeqCst),
                n,
                "each request sent once"
            );
            // Closed by the upstream before the next request is sent.
            eventually("the upstream closing", || {
                up.ended.load(Ordering::SeqCst) == n
            })
            .await;
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 5);
    }

    /// The upstream closes an idle connection while this runtime stands still, so the pool
    /// does not know when it takes it: the request is written to a connection already
    /// closed.
    async fn send_on_a_connection_closed_unseen(
        pool: &Pool,
        up: &Upstream,
        req: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let before = up.ended.load(Ordering::SeqCst);
        assert_eq!(read(pool.send(get()).await.unwrap()).await, "{\"ok\":true}");
        let waited = Instant::now();
        while up.ended.load(Ordering::SeqCst) == before {
            assert!(
                waited.elapsed() < Duration::from_secs(5),
                "the upstream kept it open"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!pool.lanes[0].idle.lock().unwrap()[0].sender.is_closed());
        pool.send(req).await
    }

    #[tokio::test]
    async fn an_idempotent_request_lost_with_a_closing_idle_connection_is_sent_again() {
        let up = upstream(After::Close).await;
        let resending = pool_resending_after(&up, Duration::from_secs(60), 8, Duration::ZERO);
        let response = send_on_a_connection_closed_unseen(&resending, &up, get()).await;
        assert_eq!(read(response.unwrap()).await, "{\"ok\":true}");
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
        assert_eq!(
            up.requests.load(Ordering::SeqCst),
            2,
            "read once, on the new one"
        );

        // A request with a body, or not idempotent, is not sent twice.
        for req in [
            Request::post("/").body(crate::gateway::body::full(Bytes::new())),
            Request::get("/").body(crate::gateway::body::full(Bytes::from_static(b"{}"))),
        ] {
            let failed = send_on_a_connection_closed_unseen(&resending, &up, req.unwrap()).await;
            assert!(
                matches!(failed, Err(SendError::Exchange(_))),
                "{:?}",
                failed.as_ref().err()
            );
        }
        // Nor one on a connection idle for less than the pool's threshold.
        let recent = pool(&up, Duration::from_secs(60), 8);
        let failed = send_on_a_connection_closed_unseen(&recent, &up, get()).await;
        assert!(
            matches!(failed, Err(SendError::Exchange(_))),
            "{:?}",
            failed.as_ref().err()
        );
    }

    #[tokio::test]
    async fn idle_connections_close_after_the_idle_timeout_and_past_the_idle_limit() {
        let up = upstream(After::KeepAlive).await;
        let pool = pool(&up, Duration::from_millis(200), 1);
        // Two at once, both returned: the pool keeps one, the other closes.
        let (a, b) = tokio::join!(pool.send(get()), pool.send(get()));
        let (a, b) = (a.unwrap(), b.unwrap());
        read(a).await;
        read(b).await;
        eventually("the connection over the idle limit closing", || {
            up.ended.load(Ordering::SeqCst) == 1
        })
        .await;
        // The one kept closes once idle for the timeout, with no request to notice it.
        eventually("the idle connection closing", || {
            up.ended.load(Ordering::SeqCst) == 2
        })
        .await;
        assert!(pool.lanes[0].idle.lock().unwrap().is_empty());
        // And a request after that opens a new one.
        assert_eq!(read(pool.send(get()).await.unwrap()).await, "{\"ok\":true}");
        assert_eq!(up.accepted.load(Ordering::SeqCst), 3);
    }
}

//! Connection clocks: the idle timeout and the request-head timeout, kept apart; and the
//! slow-reader clocks (a write blocked on the client, an HTTP/2 response waiting on the
//! client's flow-control window).
//!
//! hyper's own HTTP/1 head timer starts whenever it waits for a request, idle keep-alive
//! waits included, so it would close every idle keep-alive connection after the (short)
//! head timeout instead of the (longer) idle timeout. Here the head clock starts at the first
//! byte of a new request, seen through [`WatchedIo`], and the idle clock runs only while no
//! request is in flight.
//!
//! It also tells the HTTP/1 serving loop when a connection may be parked (see
//! `connection`): every exchange answered, its response body dropped by hyper, and every byte
//! written flushed.

use bytes::{Buf, Bytes};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Requests in flight, last time busy, and when the head of the next request started.
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    last_busy: Mutex<Instant>,
    head_started: Mutex<Option<Instant>>,
    head_notify: Notify,
    /// An exchange ended since the current HTTP/1 connection state began (or since the
    /// last request head): hyper is between requests, not before its first.
    exchange_ended: AtomicBool,
    /// Bytes were written since the last completed flush.
    unflushed: AtomicBool,
    /// Request heads handed to the service so far.
    exchanges: AtomicUsize,
    /// HTTP/2 responses whose body waits on the client (see [`ExchangeBody`]): since when.
    waiting_on_client: Mutex<HashMap<u64, Instant>>,
    waiting_notify: Notify,
    next_response: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_busy: Mutex::new(Instant::now()),
            head_started: Mutex::new(None),
            head_notify: Notify::new(),
            exchange_ended: AtomicBool::new(false),
            unflushed: AtomicBool::new(false),
            exchanges: AtomicUsize::new(0),
            waiting_on_client: Mutex::new(HashMap::new()),
            waiting_notify: Notify::new(),
            next_response: AtomicU64::new(0),
        }
    }

    fn waiting_on_client(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        self.waiting_on_client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Response `id` has a body that waits for the client from now.
    fn response_waiting(&self, id: u64) {
        self.waiting_on_client().insert(id, Instant::now());
        self.waiting_notify.notify_one();
    }

    /// Response `id`'s body is moving (or gone).
    fn response_moving(&self, id: u64) {
        self.waiting_on_client().remove(&id);
    }

    /// Completes once some HTTP/2 response has waited on the client for `limit`: its head
    /// was sent, or a frame of its body handed over, and hyper has not asked for more since,
    /// which it does as soon as the client's flow-control window lets it send (a slow
    /// reader that keeps its window shut, whose writes never block).
    pub(crate) async fn client_stalled(&self, limit: Duration) {
        loop {
            let notified = self.waiting_notify.notified();
            let oldest = self
                .waiting_on_client()
                .iter()
                .min_by_key(|(_, since)| **since)
                .map(|(id, since)| (*id, *since));
            let Some((id, since)) = oldest else {
                notified.await;
                continue;
            };
            tokio::time::sleep_until(since + limit).await;
            if self.waiting_on_client().get(&id) == Some(&since) {
                return;
            }
        }
    }

    fn last_busy(&self) -> Instant {
        *self.last_busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn head_started(&self) -> Option<Instant> {
        *self.head_started.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request head was parsed and handed to the service.
    pub(crate) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.exchanges.fetch_add(1, Ordering::SeqCst);
        self.exchange_ended.store(false, Ordering::SeqCst);
        *self.head_started.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.last_busy.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// The exchange ended: hyper dropped the response body (sent, or the connection failed).
    fn end(&self) {
        *self.last_busy.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.exchange_ended.store(true, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Request heads handed to the service so far on this connection.
    pub(crate) fn exchanges(&self) -> usize {
        self.exchanges.load(Ordering::SeqCst)
    }

    /// A new HTTP/1 connection state starts over the client IO: no exchange on it yet.
    pub(crate) fn http1_state_started(&self) {
        self.exchange_ended.store(false, Ordering::SeqCst);
    }

    /// Whether hyper's HTTP/1 state can be let go: an exchange ended on it, none is in
    /// flight, and everything written was flushed. Asked when the connection is pending, so
    /// hyper is then waiting for the next request's bytes.
    pub(crate) fn between_requests(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
            && self.exchange_ended.load(Ordering::SeqCst)
            && !self.unflushed.load(Ordering::SeqCst)
    }

    /// Bytes arrived from the client: with nothing in flight, that starts a request head.
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0 {
            let mut started = self.head_started.lock().unwrap_or_else(|p| p.into_inner());
            if started.is_none() {
                *started = Some(Instant::now());
                self.head_notify.notify_one();
            }
        }
    }

    /// Completes once no request has been in flight, and no request head has started, for
    /// `idle`.
    pub(crate) async fn idle_for(&self, idle: Duration) {
        loop {
            let busy = self.in_flight.load(Ordering::SeqCst) > 0 || self.head_started().is_some();
            let deadline = if busy {
                Instant::now() + idle
            } else {
                self.last_busy() + idle
            };
            tokio::time::sleep_until(deadline).await;
            let busy = self.in_flight.load(Ordering::SeqCst) > 0 || self.head_started().is_some();
            if !busy && self.last_busy().elapsed() >= idle {
                return;
            }
        }
    }

    /// Completes when a request head has been arriving for longer than `limit` (slowloris).
    pub(crate) async fn head_overdue(&self, limit: Duration) {
        loop {
            let Some(started) = self.head_started() else {
                self.head_notify.notified().await;
                continue;
            };
            tokio::time::sleep_until(started + limit).await;
            if self.head_started() == Some(started) {
                return;
            }
        }
    }
}

/// A response body that ends its exchange on the [`Activity`] when hyper drops it, i.e.
/// once the whole response was handed to the connection (or the connection failed). On
/// HTTP/2 it also tells the activity when it waits on the client (see
/// [`Activity::client_stalled`]).
pub(crate) struct ExchangeBody<B> {
    inner: B,
    activity: Arc<Activity>,
    /// This response's id among those watched for waiting on the client (HTTP/2 only).
    watched: Option<u64>,
}

impl<B> ExchangeBody<B> {
    /// `activity.begin()` must have been called for this exchange. `watch`: the connection
    /// is HTTP/2, where a client can stall a response by flow control alone.
    pub(crate) fn new(inner: B, activity: Arc<Activity>, watch: bool) -> Self {
        let watched = watch.then(|| {
            let id = activity.next_response.fetch_add(1, Ordering::Relaxed);
            activity.response_waiting(id);
            id
        });
        Self {
            inner,
            activity,
            watched,
        }
    }
}

impl<B> Drop for ExchangeBody<B> {
    fn drop(&mut self) {
        if let Some(id) = self.watched {
            self.activity.response_moving(id);
        }
        self.activity.end();
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for ExchangeBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let Some(id) = this.watched else {
            return Pin::new(&mut this.inner).poll_frame(cx);
        };
        this.activity.response_moving(id);
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            this.activity.response_waiting(id);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Client IO that reports reads and flushes to an [`Activity`], first replays bytes read
/// ahead by an earlier HTTP/1 connection state, and fails a write that stays blocked for
/// longer than the write timeout (a slow reader: the client stopped reading what it asked
/// for), which ends the connection.
pub(crate) struct WatchedIo<IO> {
    inner: IO,
    activity: Arc<Activity>,
    replay: Bytes,
    write_timeout: Duration,
    /// Runs while a write is blocked; reset by any write that completes.
    write_stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> WatchedIo<IO> {
    pub(crate) fn new(inner: IO, activity: Arc<Activity>, write_timeout: Duration) -> Self {
        Self {
            inner,
            activity,
            replay: Bytes::new(),
            write_timeout,
            write_stalled: None,
        }
    }

    /// Passes a write's outcome on, unless it has been blocked for the write timeout.
    fn unless_stalled<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.write_stalled = None;
            return result;
        }
        let timeout = self.write_timeout;
        let stalled = self
            .write_stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    pub(crate) fn get_ref(&self) -> &IO {
        &self.inner
    }

    /// Bytes read from the client that no HTTP state has consumed: `read_ahead` (taken back
    /// from hyper) comes before what is still left to replay. They are copied out, because
    /// `read_ahead` is a view into hyper's whole read buffer (8 KB or more), which a parked
    /// connection would otherwise keep allocated, even for an empty view, while it idles.
    pub(crate) fn replay_first(&mut self, read_ahead: Bytes) {
        if read_ahead.is_empty() {
            return;
        }
        let mut joined = Vec::with_capacity(read_ahead.len() + self.replay.len());
        joined.extend_from_slice(&read_ahead);
        joined.extend_from_slice(&self.replay);
        self.replay = joined.into();
    }

    pub(crate) fn has_replay(&self) -> bool {
        !self.replay.is_empty()
    }

    fn wrote(&self, result: &Poll<io::Result<usize>>) {
        if !matches!(result, Poll::Ready(Ok(0)) | Poll::Ready(Err(_))) {
            self.activity.unflushed.store(true, Ordering::SeqCst);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WatchedIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            if this.replay.is_empty() {
                this.replay = Bytes::new(); // lets the copy go
            }
            this.activity.bytes_read();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_read();
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WatchedIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        this.wrote(&result);
        this.unless_stalled(cx, result)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = result {
            this.activity.unflushed.store(false, Ordering::SeqCst);
        }
        this.unless_stalled(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.unless_stalled(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&result);
        this.unless_stalled(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use tokio::io::AsyncReadExt;

    fn watched() -> WatchedIo<tokio::io::Empty> {
        WatchedIo::new(
            tokio::io::empty(),
            Arc::new(Activity::new()),
            Duration::from_secs(1),
        )
    }

    /// hyper's read buffer after one request head: the whole allocation, and the view of
    /// what follows the head (what `into_parts` hands back).
    fn read_buffer(after_head: &[u8]) -> (Bytes, Bytes) {
        const HEAD: &[u8] = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";
        let mut buffer = BytesMut::with_capacity(8192);
        buffer.extend_from_slice(HEAD);
        buffer.extend_from_slice(after_head);
        let whole = buffer.freeze();
        let mut rest = whole.clone();
        rest.advance(HEAD.len());
        (whole, rest)
    }

    async fn read_all(io: &mut WatchedIo<tokio::io::Empty>) -> Vec<u8> {
        let mut read = Vec::new();
        io.read_to_end(&mut read).await.unwrap();
        read
    }

    #[tokio::test]
    async fn a_parked_connection_keeps_no_view_of_hypers_read_buffer() {
        let mut io = watched();
        let (whole, rest) = read_buffer(b"");
        io.replay_first(rest);
        assert!(whole.is_unique(), "an empty read-ahead kept hyper's buffer");
        assert!(!io.has_replay());

        let (whole, rest) = read_buffer(b"GET /next HT");
        io.replay_first(rest);
        assert!(whole.is_unique(), "a read-ahead kept hyper's buffer");
        assert!(io.has_replay());
        assert_eq!(read_all(&mut io).await, b"GET /next HT");
        assert!(!io.has_replay());
    }

    #[tokio::test]
    async fn read_ahead_is_replayed_before_what_was_left() {
        let mut io = watched();
        io.replay_first(read_buffer(b"TP/1.1\r\n").1);
        io.replay_first(read_buffer(b"GET /next HT").1);
        io.replay_first(read_buffer(b"").1);
        assert_eq!(read_all(&mut io).await, b"GET /next HTTP/1.1\r\n");
    }
}

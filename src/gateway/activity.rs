//! Connection clocks: the idle timeout and the request-head timeout, kept apart.
//!
//! hyper's own HTTP/1 head timer starts whenever it waits for a request, idle keep-alive
//! waits included, so it would close every idle keep-alive connection after the (short)
//! head timeout instead of the (longer) idle timeout. Here the head clock starts at the first
//! byte of a new request, seen through [`WatchedIo`], and the idle clock runs only while no
//! request is in flight.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
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
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_busy: Mutex::new(Instant::now()),
            head_started: Mutex::new(None),
            head_notify: Notify::new(),
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
        *self.head_started.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.last_busy.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// The service answered.
    pub(crate) fn end(&self) {
        *self.last_busy.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
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

/// Client IO that reports reads to an [`Activity`].
pub(crate) struct WatchedIo<IO> {
    inner: IO,
    activity: Arc<Activity>,
}

impl<IO> WatchedIo<IO> {
    pub(crate) fn new(inner: IO, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WatchedIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
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
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

//! One client connection: TLS handshake under the header-read timeout, HTTP/1.1 or HTTP/2
//! with the configured limits, idle close, and graceful close on shutdown.

use super::proxy;
use super::server::Shared;
use super::tls::PeerCertificate;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

/// What later phases may know about the connection a request came on.
#[derive(Debug)]
pub struct ConnectionInfo {
    /// Listener name.
    pub listener: Arc<str>,
    /// The client's address.
    pub client_addr: SocketAddr,
    /// The verified client certificate, on mutual-TLS connections.
    pub peer_certificate: Option<PeerCertificate>,
}

/// Tracks requests in flight and the last time the connection was busy, for the idle timeout.
struct Activity {
    in_flight: AtomicUsize,
    last_busy: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_busy: Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        *self.last_busy.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
    }

    fn end(&self) {
        self.touch();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Completes once no request has been in flight for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = *self.last_busy.lock().unwrap_or_else(|p| p.into_inner());
            let deadline = if self.in_flight.load(Ordering::SeqCst) > 0 {
                Instant::now() + idle
            } else {
                last + idle
            };
            tokio::time::sleep_until(deadline).await;
            let last = *self.last_busy.lock().unwrap_or_else(|p| p.into_inner());
            if self.in_flight.load(Ordering::SeqCst) == 0 && last.elapsed() >= idle {
                return;
            }
        }
    }
}

/// Serves one accepted TCP connection to completion.
pub async fn serve(
    shared: Arc<Shared>,
    listener: Arc<str>,
    tcp: TcpStream,
    client_addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _open = shared.metrics.connection_opened(&listener);
    let _ = tcp.set_nodelay(true);
    let generation = shared.generation.load_full();
    let Some(acceptor) = generation.acceptors.get(&*listener).cloned() else {
        tracing::error!(%listener, "no TLS acceptor for listener");
        return;
    };
    let limits = generation.config.limits.clone();
    drop(generation);

    // The handshake shares the header-read timeout: a client that trickles its hello is as
    // much a slowloris as one that trickles headers.
    let tls = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared.metrics.tls_handshake_failed(&listener);
            tracing::debug!(%listener, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.tls_handshake_failed(&listener);
            tracing::debug!(%listener, "TLS handshake timed out");
            return;
        }
    };
    let peer_certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| PeerCertificate::new(leaf.clone().into_owned()));
    let info = Arc::new(ConnectionInfo {
        listener: listener.clone(),
        client_addr,
        peer_certificate,
    });
    let activity = Arc::new(Activity::new());

    let service = {
        let (shared, info, activity) = (shared.clone(), info.clone(), activity.clone());
        service_fn(move |req| {
            let (shared, info, activity) = (shared.clone(), info.clone(), activity.clone());
            async move {
                activity.begin();
                let response = proxy::handle(&shared, &info, req).await;
                activity.end();
                Ok::<_, Infallible>(response)
            }
        })
    };

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);

    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%listener, error = %e, "connection ended with error");
                }
                break;
            }
            _ = shutdown.wait_for(|stop| *stop), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = activity.idle_for(limits.idle_timeout), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

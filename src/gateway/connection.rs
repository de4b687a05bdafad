//! One client connection: TLS handshake under the header-read timeout, HTTP/1.1 or HTTP/2
//! with the configured limits, idle close, and graceful close on shutdown.
//!
//! An idle HTTP/1.1 keep-alive connection is parked: between requests hyper's connection
//! state (its read and write buffers, 8 KB or more) is let go and only the TLS stream is
//! kept, waiting for the socket to become readable without a read buffer. Hyper is asked to
//! stop (`graceful_shutdown`, which closes an idle connection without writing anything) only
//! once it has been between requests for `PARK_AFTER` (see [`Activity::between_requests`]), so no response changes;
//! bytes it had read ahead (a pipelined request) are replayed to the next state.

use super::activity::{Activity, ExchangeBody, WatchedIo};
use super::proxy;
use super::state::{ConnectionInfo, Shared};
use crate::certs::PeerCertificate;
use crate::config::Limits;
use http::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};

/// Serves one accepted TCP connection to completion.
pub(crate) async fn serve(
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
    // Taken with the acceptor: a reload applies to connections accepted after it.
    let hsts = generation
        .config
        .listeners
        .iter()
        .find(|l| *l.name == *listener)
        .and_then(|l| l.hsts.as_ref())
        .and_then(|h| HeaderValue::from_str(&h.header_value()).ok());
    drop(generation);

    // The handshake shares the header-read timeout: a client that trickles its hello is as
    // much a slowloris as one that trickles headers. Boxed, like every large state below:
    // this task lives as long as the connection, idle or not, and its future is as large as
    // its largest state, so the handshake's state and hyper's are heap only while they run.
    let handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp));
    let tls: ClientTls = match Box::pin(handshake).await {
        Ok(Ok(tls)) => Box::new(tls),
        outcome => {
            shared.metrics.tls_handshake_failed(&listener);
            let reason = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            tracing::debug!(%listener, %reason, "TLS handshake failed");
            return;
        }
    };
    let peer_certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| PeerCertificate::new(leaf.clone().into_owned()));
    // HTTP/2 multiplexes frames on one connection, so a "request head" clock means nothing
    // there; h2 bounds header blocks by size and streams by count instead.
    let is_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let info = Arc::new(ConnectionInfo {
        listener: listener.clone(),
        client_addr,
        client_hop: super::headers::ClientHop::new(client_addr.ip()),
        peer_certificate,
    });
    let activity = Arc::new(Activity::new());
    let service = proxy_service(shared, info, activity.clone(), hsts, is_h2);
    let io = WatchedIo::new(tls, activity.clone(), limits.client_write_timeout);
    if !is_h2 {
        serve_http1(&listener, io, service, &limits, &activity, shutdown).await;
        return;
    }
    let builder = http2_builder(&limits);
    let mut conn = Box::pin(builder.serve_connection(TokioIo::new(io), service));

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
            // A slow reader that keeps its flow-control window shut: no write ever blocks,
            // so only this clock sees it. The connection goes, with every stream on it.
            _ = activity.client_stalled(limits.client_write_timeout) => {
                tracing::debug!(%listener, "client stopped reading; closing");
                break;
            }
        }
    }
}

/// How long a keep-alive connection stays in hyper between requests before it is parked:
/// long enough that a busy client's next request finds hyper's state still there (parking
/// and rebuilding it costs CPU on every request), short beside idle keep-alive times.
const PARK_AFTER: std::time::Duration = std::time::Duration::from_millis(250);

/// The client's TLS stream, boxed: rustls's connection state is over a kilobyte, and the
/// connection task moves the stream between its states.
type ClientTls = Box<tokio_rustls::server::TlsStream<TcpStream>>;
type ClientIo = WatchedIo<ClientTls>;

/// Serves HTTP/1.1 on `io`, parking it between requests (see the module documentation).
async fn serve_http1<S>(
    listener: &str,
    mut io: ClientIo,
    service: S,
    limits: &Limits,
    activity: &Activity,
    mut shutdown: watch::Receiver<bool>,
) where
    S: hyper::service::HttpService<
            hyper::body::Incoming,
            ResBody = ExchangeBody<super::proxy_body::ProxyBody>,
        > + Clone
        + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = http1_builder(limits);
    loop {
        activity.http1_state_started();
        // Boxed, so the task holds hyper's state only while this loop is not parked.
        let mut conn = Box::new(builder.serve_connection(TokioIo::new(io), service.clone()));
        let (mut closing, mut parking) = (false, false);
        // The exchange count when hyper was last seen between requests: the park timer runs.
        let mut between: Option<usize> = None;
        let ended = loop {
            tokio::select! {
                polled = poll_fn(|cx| match conn.poll_without_shutdown(cx) {
                    Poll::Ready(result) => Poll::Ready(Some(result)),
                    Poll::Pending if between.is_none() && activity.between_requests() => {
                        Poll::Ready(None)
                    }
                    Poll::Pending => Poll::Pending,
                }) => match polled {
                    Some(result) => break result,
                    None => between = Some(activity.exchanges()),
                },
                _ = tokio::time::sleep(PARK_AFTER), if between.is_some() && !parking && !closing => {
                    if activity.between_requests() && between == Some(activity.exchanges()) {
                        parking = true;
                        std::pin::Pin::new(&mut *conn).graceful_shutdown();
                    } else {
                        between = None;
                    }
                }
                _ = shutdown.wait_for(|stop| *stop), if !closing => {
                    closing = true;
                    std::pin::Pin::new(&mut *conn).graceful_shutdown();
                }
                _ = activity.idle_for(limits.idle_timeout), if !closing => {
                    closing = true;
                    std::pin::Pin::new(&mut *conn).graceful_shutdown();
                }
                _ = activity.head_overdue(limits.header_read_timeout) => {
                    tracing::debug!(%listener, "request head not received in time; closing");
                    return;
                }
            }
        };
        if let Err(e) = ended {
            tracing::debug!(%listener, error = %e, "connection ended with error");
            return;
        }
        // hyper's parts are taken apart at once: a binding held across the awaits below
        // would keep their room in this task's future, which a parked connection holds.
        let read_ahead = {
            let parts = conn.into_parts();
            io = parts.io.into_inner();
            parts.read_buf
        };
        if !parking || closing {
            // Ended by hyper (the client closed, or keep-alive ended) or by us: close as
            // hyper would have, with a TLS close_notify.
            let _ = io.shutdown().await;
            return;
        }
        io.replay_first(read_ahead);
        if io.has_replay() {
            continue;
        }
        // Parked: wait for the next request's bytes on the socket itself. rustls holds no
        // unread plaintext here: hyper's last read found none before it was stopped.
        tokio::select! {
            readable = io.get_ref().get_ref().0.readable() => {
                if readable.is_err() {
                    return;
                }
            }
            _ = async { drop(shutdown.wait_for(|stop| *stop).await) } => {
                let _ = io.shutdown().await;
                return;
            }
            _ = activity.idle_for(limits.idle_timeout) => {
                let _ = io.shutdown().await;
                return;
            }
            _ = activity.head_overdue(limits.header_read_timeout) => {
                tracing::debug!(%listener, "request head not received in time; closing");
                return;
            }
        }
    }
}

/// The per-connection service: each request runs the proxy pipeline, bracketed for the
/// connection's clocks. The listener's HSTS header goes on every response, refusals too,
/// since a browser learns the policy from whatever answer it gets first.
fn proxy_service(
    shared: Arc<Shared>,
    info: Arc<ConnectionInfo>,
    activity: Arc<Activity>,
    hsts: Option<HeaderValue>,
    is_h2: bool,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<ExchangeBody<super::proxy_body::ProxyBody>>,
    Error = Infallible,
    Future = impl Future<
        Output = Result<http::Response<ExchangeBody<super::proxy_body::ProxyBody>>, Infallible>,
    > + Send
                 + Unpin,
> + Clone
       + Unpin {
    service_fn(move |req| {
        let (shared, info, activity) = (shared.clone(), info.clone(), activity.clone());
        let hsts = hsts.clone();
        // Boxed: hyper's HTTP/1 dispatcher allocates a slot the size of the service's future
        // once per connection and keeps it while the connection lives. The pipeline's future
        // is kilobytes, so unboxed every idle keep-alive connection would hold (and, once it
        // served a request, keep resident) that much; boxed, the slot is a pointer and the
        // pipeline's state exists only while a request runs.
        Box::pin(async move {
            activity.begin();
            let mut response = proxy::handle(&shared, &info, req).await;
            if let Some(hsts) = hsts {
                response
                    .headers_mut()
                    .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts);
            }
            // The exchange ends when hyper drops the body, i.e. after the response was sent.
            Ok::<_, Infallible>(response.map(|body| ExchangeBody::new(body, activity, is_h2)))
        })
    })
}

/// HTTP/1.1 server settings from the limits.
fn http1_builder(limits: &Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper's head timer would also cut idle keep-alive connections: see `activity`.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
}

/// Streams a client may open and reset before the gateway has taken them up, after which
/// the connection ends with GOAWAY (ENHANCE_YOUR_CALM): the rapid-reset bound
/// (CVE-2023-44487). h2's own default, set here so that it cannot change under us.
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// Streams the gateway may reset for a client's protocol errors before it ends the
/// connection (a client that provokes resets costs the gateway as much as one that sends
/// them). hyper's default.
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// HTTP/2 server settings from the limits (the client chose h2 by ALPN). The header list
/// bound also bounds CONTINUATION frames per header block (h2 ends the connection past it).
fn http2_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS);
    builder
}

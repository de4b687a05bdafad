//! One client connection: TLS handshake under the header-read timeout, HTTP/1.1 or HTTP/2
//! with the configured limits, idle close, and graceful close on shutdown.

use super::activity::{Activity, WatchedIo};
use super::proxy;
use super::state::{ConnectionInfo, Shared};
use crate::certs::PeerCertificate;
use crate::config::Limits;
use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
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
    // much a slowloris as one that trickles headers.
    let tls = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
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
        peer_certificate,
    });
    let activity = Arc::new(Activity::new());
    let service = proxy_service(shared, info, activity.clone(), hsts);
    let builder = http_builder(&limits);
    let conn =
        builder.serve_connection(TokioIo::new(WatchedIo::new(tls, activity.clone())), service);
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
            _ = activity.head_overdue(limits.header_read_timeout), if !is_h2 => {
                tracing::debug!(%listener, "request head not received in time; closing");
                break;
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
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<super::proxy_body::ProxyBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<super::proxy_body::ProxyBody>, Infallible>>
                 + Send,
> + Clone {
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
            activity.end();
            Ok::<_, Infallible>(response)
        })
    })
}

/// HTTP/1.1 and HTTP/2 server settings from the limits.
fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's head timer would also cut idle keep-alive connections: see `activity`.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

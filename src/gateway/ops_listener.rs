//! The operations listener (configured as `[admin] address`): health, readiness and
//! metrics for the platform running the gateway, over plain HTTP, loopback by default. Not
//! to be confused with the admin API ([`super::admin_api`], a served route on the TLS
//! listeners) or approval-gated operations ([`crate::approval`]).
//!
//! - `/healthz`: the process is alive (200).
//! - `/readyz`: the gateway accepts traffic (200); 503 while draining for shutdown (so a
//!   load balancer stops sending before connections close) or once the audit trail failed.
//! - `/metrics`: Prometheus text.

use super::rescue::listener::ListenerAnswer;
use super::scrape;
use super::state::Shared;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves the operations listener until shutdown.
pub(crate) async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, &req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(crate::config::defaults::HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn respond(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let answer = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => ListenerAnswer::Alive,
        (&Method::GET, "/readyz") if shared.draining.load(Ordering::SeqCst) => {
            ListenerAnswer::Draining
        }
        (&Method::GET, "/readyz") if shared.audit.as_ref().is_some_and(|a| !a.is_healthy()) => {
            ListenerAnswer::AuditFailed
        }
        (&Method::GET, "/readyz") => ListenerAnswer::Ready,
        (&Method::GET, "/metrics") => {
            scrape::refresh(shared).await;
            ListenerAnswer::Metrics(shared.metrics.encode())
        }
        _ => ListenerAnswer::NotFound,
    };
    answer.into_response()
}

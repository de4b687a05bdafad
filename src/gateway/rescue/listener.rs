//! The operations listener's answers (`/healthz`, `/readyz`, `/metrics`): plain text for
//! probes and Prometheus, not the JSON error form of the request path. The listener decides
//! which answer applies; its status and body are set here.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// What the operations listener answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenerAnswer {
    /// `/healthz`: the process is alive.
    Alive,
    /// `/readyz`: the gateway accepts traffic.
    Ready,
    /// `/readyz` while draining for shutdown: load balancers stop sending.
    Draining,
    /// `/readyz` once the audit trail failed: requests would be refused.
    AuditFailed,
    /// `/metrics`: the Prometheus text.
    Metrics(String),
    /// Any other path or method.
    NotFound,
}

impl ListenerAnswer {
    /// The response: status, content type and body.
    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        const TEXT: &str = "text/plain";
        let (status, content_type, body) = match self {
            Self::Alive => (StatusCode::OK, TEXT, "ok\n".to_owned()),
            Self::Ready => (StatusCode::OK, TEXT, "ready\n".to_owned()),
            Self::Draining => (
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                "draining\n".to_owned(),
            ),
            Self::AuditFailed => (
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                "audit trail failed\n".to_owned(),
            ),
            Self::Metrics(text) => (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, TEXT, "not found\n".to_owned()),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

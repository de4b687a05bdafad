//! The refusal: what a client is told when the gateway does not answer its request as
//! asked. A status, a stable machine-readable code, a fixed human message, and the headers
//! that belong to them (`Allow`, `WWW-Authenticate`, `Retry-After`).
//!
//! Refusals are made only through the named constructors below, one per status the gateway
//! answers with, so the whole vocabulary of statuses a client can see is this list. The
//! codes and messages are chosen by the rescue step's per-area maps beside this file.

use super::super::headers::REQUEST_ID;
use crate::gateway::proxy_body::ProxyBody;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::borrow::Cow;

/// A refusal of one request, ready to be written as the JSON error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    /// `Allow`: the methods the route accepts (405 only).
    allow: Vec<Method>,
    /// `WWW-Authenticate`: how to authenticate (identify-phase refusals only).
    challenge: Option<String>,
    /// `Retry-After` in seconds: when a limit or lockout ends, or soon for a safe retry.
    retry_after_s: Option<u64>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code,
            message: Cow::Borrowed(message),
            allow: Vec::new(),
            challenge: None,
            retry_after_s: None,
        }
    }

    /// 400: the request is malformed (its body, path, parameters or credentials' form).
    pub(crate) fn bad_request(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 408: the client did not send its whole request body in time.
    pub(crate) fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The request body did not arrive in time.",
        )
    }

    /// 401: the caller is not (sufficiently) authenticated.
    pub(crate) fn unauthorized(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403: the caller is known and not allowed.
    pub(crate) fn forbidden(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404: nothing of that name (a route, a record, a dataset, an aggregate).
    pub(crate) fn not_found(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 405: the path is served, not with this method.
    pub(crate) fn method_not_allowed(allowed: &[Method]) -> Self {
        Self {
            allow: allowed.to_vec(),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This method is not allowed on this route.",
            )
        }
    }

    /// 409: the request contradicts the state of what it names.
    pub(crate) fn conflict(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 413: the request body is over `limits.max_body_bytes`.
    pub(crate) fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "The request body is larger than the gateway accepts.",
        )
    }

    /// 406: the call's `Accept` admits none of the formats the API answers in.
    pub(crate) fn not_acceptable() -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "This API answers in application/json or text/csv; the Accept header admits neither.",
        )
    }

    /// 415: a body the gateway cannot examine as JSON.
    pub(crate) fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "The request body must be whole JSON (Content-Type application/json, no content coding) on this route.",
        )
    }

    /// 422: the body is well formed but carries what the route may not accept.
    pub(crate) fn unprocessable(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 429: a limit, lockout or budget is exhausted for this caller until `Retry-After`.
    pub(crate) fn rate_limited(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
    }

    /// 500: a bug or failed component inside the gateway; nothing more is said.
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "The gateway failed to handle this request.",
        )
    }

    /// 502: the service behind the gateway answered with something that cannot be passed on.
    pub(crate) fn bad_gateway(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, code, message)
    }

    /// 502 `bad_gateway`: the upstream's answer is unusable, whatever the reason.
    pub(crate) fn unusable_upstream_answer() -> Self {
        Self::bad_gateway(
            "bad_gateway",
            "The service behind the gateway gave no usable response.",
        )
    }

    /// 503: something the gateway needs is down; it fails closed rather than serve.
    pub(crate) fn unavailable(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// 503 `store_unavailable`: the gateway's own store failed.
    pub(crate) fn store_unavailable() -> Self {
        Self::unavailable(
            "store_unavailable",
            "The gateway's store is unavailable; try again later.",
        )
    }

    /// 504: the upstream did not answer within its response timeout.
    pub(crate) fn gateway_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "The service behind the gateway did not answer in time.",
        )
    }

    /// The same refusal with a message made for this request (analytics refusals that say
    /// what is allowed or what ran out; never data values).
    pub(crate) fn with_message(self, message: String) -> Self {
        Self {
            message: Cow::Owned(message),
            ..self
        }
    }

    /// The same refusal with a `WWW-Authenticate` challenge.
    pub(crate) fn with_challenge(self, challenge: Option<String>) -> Self {
        Self { challenge, ..self }
    }

    /// The same refusal with a `Retry-After`.
    pub(crate) fn with_retry_after(self, retry_after_s: Option<u64>) -> Self {
        Self {
            retry_after_s,
            ..self
        }
    }

    /// The HTTP status (the rescue tables and the console's refusal page read it).
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable machine-readable code (the access log records it).
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }

    /// The client-facing message (the console shows it on its refusal page).
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The JSON error response: `{"error": {code, message, request_id}}`, never cached.
    pub(crate) fn into_response(self, request_id: &str) -> Response<ProxyBody> {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message, "request_id": request_id }
        });
        let mut response = Response::new(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(id) = super::super::headers::request_id_value(request_id) {
            headers.insert(REQUEST_ID, id);
        }
        if !self.allow.is_empty() {
            let list: Vec<&str> = self.allow.iter().map(Method::as_str).collect();
            if let Ok(value) = HeaderValue::from_str(&list.join(", ")) {
                headers.insert(header::ALLOW, value);
            }
        }
        if let Some(value) = self.challenge.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

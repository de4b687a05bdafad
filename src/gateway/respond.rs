//! Successful answers of the APIs the gateway serves itself (admin API, analytics, FHE,
//! TOTP enrolment): JSON (or CSV where the analytics API negotiated it), never cached by
//! intermediaries. Refusals are the rescue step's
//! ([`super::rescue`]); between them, these are every status the gateway itself answers with.

use super::body::full;
use super::error::GatewayError;
use super::proxy_body::ProxyBody;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

/// 200 with `value` as JSON.
pub(super) fn ok(value: &impl serde::Serialize) -> Result<Response<ProxyBody>, GatewayError> {
    json(StatusCode::OK, value)
}

/// 201 with `value` (what was created) as JSON.
pub(super) fn created(value: &impl serde::Serialize) -> Result<Response<ProxyBody>, GatewayError> {
    json(StatusCode::CREATED, value)
}

/// 202 with `value` as JSON: the request is recorded and waits (for approvals).
pub(super) fn accepted(value: &impl serde::Serialize) -> Result<Response<ProxyBody>, GatewayError> {
    json(StatusCode::ACCEPTED, value)
}

/// 200 with a JSON document already encoded (one built once at start: the FHE public key).
#[cfg(feature = "fhe")]
pub(super) fn ok_encoded(bytes: Bytes) -> Response<ProxyBody> {
    encoded(StatusCode::OK, JSON, bytes)
}

/// 200 with `csv` as `text/csv` (UTF-8, a header row), and `extra` headers beside it
/// (what the answer's JSON would have carried outside its rows). An extra header whose
/// value is not a valid header value is left out.
pub(super) fn ok_csv<'h>(
    csv: Bytes,
    extra: impl IntoIterator<Item = (&'h str, String)>,
) -> Response<ProxyBody> {
    let mut response = encoded(
        StatusCode::OK,
        "text/csv; charset=utf-8; header=present",
        csv,
    );
    let headers = response.headers_mut();
    for (name, value) in extra {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    response
}

fn json(
    status: StatusCode,
    value: &impl serde::Serialize,
) -> Result<Response<ProxyBody>, GatewayError> {
    let bytes = serde_json::to_vec(value).map_err(GatewayError::Encode)?;
    Ok(encoded(status, JSON, Bytes::from(bytes)))
}

const JSON: &str = "application/json";

fn encoded(status: StatusCode, content_type: &'static str, bytes: Bytes) -> Response<ProxyBody> {
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

//! Request and response bodies under the route's body mode.
//!
//! Stream routes pass bodies through as they arrive, still bounded by the size limit.
//! Buffered routes (those the field-protection phase rewrites) hold the whole body under the
//! limit and refuse anything that is not JSON within the depth limit: a body the gateway
//! cannot examine is never passed on.

use super::error::GatewayError;
use super::ProxyBody;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

/// Refuses a declared `Content-Length` over the limit before reading any of the body.
pub fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), GatewayError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit => Err(GatewayError::BodyTooLarge),
        _ => Ok(()),
    }
}

/// Wraps a client body so that it streams upstream but stops at `limit` bytes.
pub fn stream_limited(body: Incoming, limit: u64) -> ProxyBody {
    Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).boxed_unsync()
}

/// True when an error (from the upstream client) was caused by the size limit on the
/// streamed request body.
pub fn is_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<LengthLimitError>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Reads a whole client body under `limit` and checks it is JSON no deeper than `max_depth`.
/// An empty body is allowed (e.g. GET).
pub async fn buffer_request(
    body: Incoming,
    limit: u64,
    max_depth: usize,
) -> Result<Bytes, GatewayError> {
    let bytes = collect_limited(body, limit).await.map_err(|e| {
        if is_length_limit(e.as_ref()) {
            GatewayError::BodyTooLarge
        } else {
            GatewayError::ClientBody(e.to_string())
        }
    })?;
    if !bytes.is_empty() {
        check_json(&bytes, max_depth)?;
    }
    Ok(bytes)
}

/// The JSON body of a call to an API the gateway serves itself, under the configured limits:
/// a declared length over the limit is refused before anything is read.
pub async fn buffer_served(
    headers: &HeaderMap,
    body: Incoming,
    limits: &crate::config::Limits,
) -> Result<Bytes, GatewayError> {
    check_declared_length(headers, limits.max_body_bytes)?;
    buffer_request(body, limits.max_body_bytes, limits.max_json_depth).await
}

/// Reads a whole upstream response body under `limit`.
pub async fn buffer_response(
    body: Incoming,
    limit: u64,
    upstream: &str,
) -> Result<Bytes, GatewayError> {
    collect_limited(body, limit).await.map_err(|e| {
        if is_length_limit(e.as_ref()) {
            GatewayError::UpstreamResponseTooLarge {
                upstream: upstream.to_owned(),
            }
        } else {
            GatewayError::UpstreamFailed {
                upstream: upstream.to_owned(),
                cause: e.to_string(),
            }
        }
    })
}

async fn collect_limited(
    body: Incoming,
    limit: u64,
) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(limited.collect().await?.to_bytes())
}

/// The amount at `path` in a (checked) JSON body: exactly one integer, else refused.
pub fn amount(path: &serde_json_path::JsonPath, bytes: &[u8]) -> Result<i64, GatewayError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| GatewayError::InvalidAmount)?;
    let node = path
        .query(&value)
        .exactly_one()
        .map_err(|_| GatewayError::InvalidAmount)?;
    node.as_i64().ok_or(GatewayError::InvalidAmount)
}

/// A JSON answer of the APIs the gateway serves itself; never cached by intermediaries.
pub fn json(
    status: http::StatusCode,
    value: &impl serde::Serialize,
) -> Result<http::Response<ProxyBody>, GatewayError> {
    let bytes = serde_json::to_vec(value).map_err(|e| GatewayError::Internal(e.to_string()))?;
    Ok(json_bytes(status, Bytes::from(bytes)))
}

/// [`json`] for a document already encoded (one built once at start).
pub fn json_bytes(status: http::StatusCode, bytes: Bytes) -> http::Response<ProxyBody> {
    let mut response = http::Response::new(full(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

/// A buffered body as a proxy body.
pub fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Checks nesting depth first (a cheap linear scan that stops deep inputs before any tree is
/// built), then validity with serde_json.
fn check_json(bytes: &[u8], max_depth: usize) -> Result<(), GatewayError> {
    if nesting_depth_exceeds(bytes, max_depth) {
        return Err(GatewayError::JsonTooDeep);
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|_| GatewayError::InvalidJson)?;
    Ok(())
}

/// True if brackets outside strings nest deeper than `max_depth`. Not a validator: malformed
/// input is left to serde_json; this only bounds its work.
fn nesting_depth_exceeds(bytes: &[u8], max_depth: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_checks_at_the_depth_limit() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        // (body, max depth, expected)
        let cases: Vec<(String, usize, Result<(), &str>)> = vec![
            (nested(4), 4, Ok(())),
            (nested(5), 4, Err("json_too_deep")),
            (r#"{"a":"[[[[[[[["}"#.into(), 2, Ok(())),
            (r#"{"a":"\"[[[["}"#.into(), 1, Ok(())),
            (r#"{"a":[{"b":[1]}]}"#.into(), 4, Ok(())),
            (r#"{"a":[{"b":[1]}]}"#.into(), 3, Err("json_too_deep")),
            ("{\"a\":".into(), 4, Err("invalid_json")),
            ("not json".into(), 4, Err("invalid_json")),
            ("{} {}".into(), 4, Err("invalid_json")),
        ];
        for (body, depth, expected) in cases {
            let got = check_json(body.as_bytes(), depth)
                .map_err(|e| crate::gateway::rescue::status_and_code(&e).1);
            assert_eq!(got, expected, "{body} at depth {depth}");
        }
    }

    #[test]
    fn declared_length_over_limit_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_LENGTH, "11".parse().unwrap());
        assert!(check_declared_length(&h, 10).is_err());
        assert!(check_declared_length(&h, 11).is_ok());
    }
}

//! Header hygiene on both directions of the proxy.
//!
//! - Hop-by-hop headers (RFC 9110 section 7.6.1) belong to one connection and are removed
//!   both ways, including any header the `Connection` header names.
//! - Gateway-internal request headers (one-time codes, purpose, identity headers the gateway
//!   sets itself) are removed from what the client sent, so a client can never speak for the
//!   gateway to an upstream.
//! - `X-Forwarded-For`/`-Proto`/`-Host` are set by the gateway; a request id is kept when the
//!   client's is well-formed and generated otherwise.

use crate::config::defaults::MAX_REQUEST_ID_LEN;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// Request id header, carried upstream and returned to the client.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that describe one connection, never the message.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers only the gateway may set. `x-privgate-` is the prefix of every identity
/// header the gateway forwards; `x-otp` carries a one-time code for the gateway alone;
/// `x-purpose` is the caller's chosen purpose, which the gateway validates and re-sets.
const INTERNAL_PREFIX: &str = "x-privgate-";
const INTERNAL: &[&str] = &["x-otp", "x-purpose"];

/// Removes hop-by-hop headers, including those listed in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in &named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Removes every gateway-internal header (built in, plus `extra` from config) the client sent.
pub fn strip_internal(headers: &mut HeaderMap, extra: &[HeaderName]) {
    let prefixed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(INTERNAL_PREFIX))
        .cloned()
        .collect();
    for name in prefixed.iter().chain(extra) {
        headers.remove(name);
    }
    for name in INTERNAL {
        headers.remove(*name);
    }
}

/// Sets `X-Forwarded-For` (replacing or appending to the client's), `X-Forwarded-Proto`
/// and `X-Forwarded-Host`.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client_ip: IpAddr,
    original_host: Option<&str>,
    trust_incoming: bool,
) {
    let previous = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let value = if trust_incoming && !previous.is_empty() {
        format!("{previous}, {client_ip}")
    } else {
        client_ip.to_string()
    };
    headers.remove(&X_FORWARDED_FOR);
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    headers.remove(&X_FORWARDED_HOST);
    if let Some(v) = original_host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(X_FORWARDED_HOST, v);
    }
}

/// Returns the client's request id if it is short and made of safe characters, otherwise a
/// fresh random one; either way the value is written back into `headers`.
pub fn ensure_request_id(headers: &mut HeaderMap) -> String {
    let given = headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
    let id = match given {
        Some(id) => id.to_owned(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    headers.insert(
        REQUEST_ID,
        HeaderValue::from_str(&id).expect("request id is visible ASCII"),
    );
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("upgrade", "websocket"),
            ("accept", "application/json"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["accept"]);
    }

    #[test]
    fn internal_headers_are_removed() {
        let mut h = map(&[
            ("x-otp", "123456"),
            ("x-purpose", "marketing"),
            ("x-privgate-subject", "admin"),
            ("x-tenant", "t1"),
            ("accept", "*/*"),
        ]);
        strip_internal(&mut h, &[HeaderName::from_static("x-tenant")]);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["accept"]);
    }

    #[test]
    fn forwarded_for_is_replaced_unless_trusted() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut h = map(&[("x-forwarded-for", "10.0.0.1")]);
        set_forwarded(&mut h, ip, Some("api.example"), false);
        assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.7");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        let mut h = map(&[("x-forwarded-for", "10.0.0.1")]);
        set_forwarded(&mut h, ip, None, true);
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 192.0.2.7");
    }

    #[test]
    fn request_ids_are_kept_only_when_well_formed() {
        let cases = [
            ("abc-123", true),
            ("", false),
            ("has space", false),
            ("new\u{7f}line", false),
            (&"x".repeat(MAX_REQUEST_ID_LEN + 1), false),
        ];
        for (given, kept) in cases {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(given) {
                h.insert(REQUEST_ID, v);
            }
            let id = ensure_request_id(&mut h);
            assert_eq!(id == given, kept, "{given:?}");
            assert_eq!(h[&REQUEST_ID], id.as_str());
        }
    }
}

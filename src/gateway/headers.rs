//! Header hygiene on both directions of the proxy.
//!
//! - Hop-by-hop headers (RFC 9110 section 7.6.1) belong to one connection and are removed
//!   both ways, including any header the `Connection` header names.
//! - Gateway-internal request headers (one-time codes, purpose, identity headers the gateway
//!   sets itself) are removed from what the client sent, so a client can never speak for the
//!   gateway to an upstream.
//! - Client-asserted headers (`crate::client_asserted`) are removed
//!   from what the client sent: headers that upstreams commonly trust because a proxy in
//!   front of them is supposed to set them (who the caller is, which client certificate it
//!   showed, which address it connects from, which URL or method it "really" asked for). A
//!   deployment lets one through by naming it in `forwarding.pass_client_headers`.
//! - `Authorization` is removed unless the route says `forward_authorization = true` (only
//!   routes that do not identify callers may: a credential the gateway checked is consumed
//!   here and never replayed upstream).
//! - `Forwarded` (RFC 7239) and `X-Forwarded-For`/`-Proto`/`-Host` are set by the gateway
//!   (appended to the client's chain only with `trust_incoming_forwarded_for`); a request id
//!   is kept when the client's is well-formed and generated otherwise.

use crate::client_asserted::{dashed, is_client_asserted};
use crate::config::defaults::MAX_REQUEST_ID_LEN;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// Request id header, carried upstream and returned to the client.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

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

/// Framing and routing headers that stay on the message but that no other spelling may
/// imitate.
const FRAMING: &[&str] = &["content-length", "host"];

/// Removes hop-by-hop headers, including those listed in `Connection`, and any header that
/// spells a hop-by-hop or framing header with `_` for `-` (`Transfer_Encoding`): an upstream
/// that reads `_` as `-` (CGI and the frameworks on it) would take it for the framing the
/// gateway set, and read the body another way.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the message's own names (a handful), not a removal per listed name:
    // most messages carry none of them, and each removal by name hashes it.
    let mut hop_by_hop: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let name = dashed(k.as_str());
            HOP_BY_HOP.contains(&&*name) || (name != k.as_str() && FRAMING.contains(&&*name))
        })
        .cloned()
        .collect();
    hop_by_hop.extend(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok()),
    );
    for name in &hop_by_hop {
        headers.remove(name);
    }
}

/// Removes every gateway-internal header (built in, plus `extra` from config) the client sent,
/// in either spelling (see `crate::client_asserted::dashed`).
pub(crate) fn strip_internal(headers: &mut HeaderMap, extra: &[HeaderName]) {
    let internal: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let name = dashed(k.as_str());
            name.starts_with(INTERNAL_PREFIX)
                || INTERNAL.contains(&&*name)
                || extra.iter().any(|e| dashed(e.as_str()) == name)
        })
        .cloned()
        .collect();
    for name in &internal {
        headers.remove(name);
    }
}

/// Removes every client-asserted header (`crate::client_asserted`)
/// except those in `pass`, and `Authorization` unless `keep_authorization`. Runs before
/// [`set_forwarded`], which then sets the gateway's own forwarding headers.
pub(crate) fn strip_client_asserted(
    headers: &mut HeaderMap,
    pass: &[HeaderName],
    keep_authorization: bool,
) {
    let asserted: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let asserted = is_client_asserted(name.as_str())
                && !pass.iter().any(|p| p.as_str() == name.as_str());
            let authorization = dashed(name.as_str()) == header::AUTHORIZATION.as_str()
                && (!keep_authorization || *name != header::AUTHORIZATION);
            asserted || authorization
        })
        .cloned()
        .collect();
    for name in &asserted {
        headers.remove(name);
    }
}

/// The client's address as this hop writes it into `X-Forwarded-For` and `Forwarded`, made
/// once per connection: formatting the address was the largest part of setting these
/// headers on every request.
#[derive(Debug, Clone)]
pub(crate) struct ClientHop {
    /// The address alone (`X-Forwarded-For`).
    address: HeaderValue,
    /// This hop's `Forwarded` element up to its `host`: `for` (IPv6 quoted in brackets)
    /// and `proto`.
    element: String,
}

impl ClientHop {
    pub(crate) fn new(client_ip: IpAddr) -> Self {
        let client = client_ip.to_string();
        let mut element = String::with_capacity(client.len() + 20);
        element.push_str("for=");
        match client_ip.is_ipv6() {
            true => {
                element.push_str("\"[");
                element.push_str(&client);
                element.push_str("]\"");
            }
            false => element.push_str(&client),
        }
        element.push_str(";proto=https");
        Self {
            address: HeaderValue::from_str(&client).expect("an IP address is a valid header value"),
            element,
        }
    }

    /// One RFC 7239 element for this hop: the connection's part, and `host` as a quoted
    /// string when the client named one.
    fn forwarded_element(&self, host: Option<&str>) -> String {
        let mut element = String::with_capacity(self.element.len() + 64);
        element.push_str(&self.element);
        // A host reaches here parsed as a URI authority: no quote or backslash to escape.
        if let Some(host) = host.filter(|h| !h.contains(['"', '\\'])) {
            element.push_str(";host=\"");
            element.push_str(host);
            element.push('"');
        }
        element
    }
}

/// Sets `Forwarded` and `X-Forwarded-For` (replacing the client's, or appending to them when
/// `trust_incoming`), `X-Forwarded-Proto` and `X-Forwarded-Host`.
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    client: &ClientHop,
    original_host: Option<&str>,
    trust_incoming: bool,
) {
    if trust_incoming {
        let ours = client.address.to_str().unwrap_or_default();
        let value = appended(headers, &X_FORWARDED_FOR, ours, true);
        replace(headers, X_FORWARDED_FOR, &value);
    } else {
        headers.insert(X_FORWARDED_FOR, client.address.clone());
    }
    let element = client.forwarded_element(original_host);
    let value = appended(headers, &FORWARDED, &element, trust_incoming);
    replace(headers, FORWARDED, &value);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    match original_host {
        Some(host) => replace(headers, X_FORWARDED_HOST, host),
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// `ours` after the client's values of `name` (joined with `, `) when they are trusted,
/// else `ours` alone.
fn appended(headers: &HeaderMap, name: &HeaderName, ours: &str, trust_incoming: bool) -> String {
    let mut value = String::new();
    if trust_incoming {
        for (i, previous) in headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .enumerate()
        {
            if i > 0 {
                value.push_str(", ");
            }
            value.push_str(previous);
        }
        if !value.is_empty() {
            value.push_str(", ");
        }
    }
    value.push_str(ours);
    value
}

/// Sets `name` to `value` alone, or removes it when `value` cannot be a header value.
fn replace(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(name, v);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

/// The request id as the response's `x-request-id`. Marked never-indexed for HTTP/2's
/// header compression: every response carries a new one, which the encoder would otherwise
/// add to the connection's table (evicting the entries that do repeat, such as
/// `content-type`) and search it for first, a tenth of hpack's work per response.
pub(crate) fn request_id_value(request_id: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(request_id).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Returns the client's request id if it is short and made of safe characters, otherwise a
/// fresh random one; either way the value is written back into `headers`.
pub(crate) fn ensure_request_id(headers: &mut HeaderMap) -> String {
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
        // A version 4 UUID from the thread's CSPRNG (`Uuid::new_v4` asks the kernel for
        // its bytes: a system call on every request).
        None => uuid::Builder::from_random_bytes(rand::random())
            .into_uuid()
            .to_string(),
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
            ("transfer_encoding", "chunked"),
            ("content_length", "50"),
            ("x_custom", "kept"),
            ("content-length", "5"),
            ("proxy_connection", "close"),
            ("trailer", "x-sum"),
            ("connection", "X-Other-Hop"),
            ("x-other-hop", "2"),
            ("host_", "kept"),
            ("ho_st", "kept"),
            ("host", "example.com"),
            ("Upgrade_", "kept"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(
            kept(&h),
            [
                "accept",
                "content-length",
                "ho_st",
                "host",
                "host_",
                "upgrade_",
                "x_custom"
            ]
        );
        // A message with none of them keeps every header.
        let mut h = map(&[("accept", "*/*"), ("x-request-id", "r-1")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(kept(&h), ["accept", "x-request-id"]);
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
        // CGI-style upstreams read `_` as `-`: the other spelling is internal too.
        let mut h = map(&[
            ("x_otp", "123456"),
            ("x_privgate_subject", "admin"),
            ("X_Tenant", "t1"),
            ("accept", "*/*"),
        ]);
        strip_internal(&mut h, &[HeaderName::from_static("x-tenant")]);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["accept"]);
    }

    fn kept(h: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        names
    }

    /// Item 9: identity, client-certificate, address, URL-rewrite and method-override
    /// headers, in several spellings and families, never pass as the client sent them;
    /// `Authorization` only where the route opts in; named exceptions pass.
    #[test]
    fn client_asserted_headers_are_removed() {
        let asserted = [
            ("Forwarded", "for=10.0.0.1;by=attacker"),
            ("X-Real-IP", "10.0.0.1"),
            ("True-Client-IP", "10.0.0.1"),
            ("CF-Connecting-IP", "10.0.0.1"),
            ("X-Forwarded-Host", "admin.internal"),
            ("X-Forwarded-Port", "443"),
            ("X-Forwarded-Prefix", "/admin"),
            ("X-Forwarded-User", "root"),
            ("X-Forwarded-Client-Cert", "Hash=abc;Subject=\"CN=admin\""),
            ("X-Original-URL", "/admin/keys"),
            ("X-Original-Method", "DELETE"),
            ("X-Rewrite-URL", "/admin"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-HTTP-Method", "PUT"),
            ("X-Method-Override", "PATCH"),
            ("X-SSL-Client-Cert", "-----BEGIN CERTIFICATE-----"),
            ("X-SSL-Client-Verify", "SUCCESS"),
            ("X-SSL-Client-S-DN", "CN=admin"),
            ("X-Client-Cert", "MIIB"),
            ("SSL-Client-Verify", "SUCCESS"),
            ("Client-Cert", ":MIIB:"),
            ("X-ARR-ClientCert", "MIIB"),
            ("X-Remote-User", "admin"),
            ("Remote-User", "admin"),
            ("X-User-Id", "1"),
            ("X-Authenticated-Userid", "admin"),
            ("X-Auth-Request-Email", "admin@bank.example"),
            ("X-Amzn-Oidc-Identity", "admin"),
            ("X-Goog-Authenticated-User-Email", "admin@bank.example"),
            ("X-MS-Client-Principal-Name", "admin"),
            ("X-Consumer-Username", "admin"),
            ("X-Envoy-Original-Path", "/admin"),
            ("X_Remote_User", "admin"),
            ("X-Forwarded", "for=10.0.0.1"),
            ("WL-Proxy-Client-IP", "10.0.0.1"),
            ("X-WebAuth-User", "admin"),
            ("X-TLS-Client-Cert", "MIIB"),
            ("X_Forwarded_For", "10.0.0.1"),
            ("X_HTTP_Method_Override", "DELETE"),
            ("Authorization", "Bearer stolen"),
            // Families, not only their best-known members.
            ("CF-Connecting-IPv6", "2001:db8::1"),
            ("Cf-Access-Authenticated-User-Email", "admin@bank.example"),
            ("X-Azure-ClientIP", "10.0.0.1"),
            ("X-ARR-SSL", "2048|256|CN=admin"),
            ("X-Amzn-Mtls-Clientcert-Subject", "CN=admin"),
            ("X-Remote-Group", "system:masters"),
            ("X-Remote-Extra-Scopes", "admin"),
            ("Remote-Groups", "admins"),
            ("Remote-Email", "admin@bank.example"),
            ("Impersonate-User", "admin"),
            ("X-User-Roles", "admin"),
            ("X-User-Name", "admin"),
            ("X-Consumer-Groups", "admins"),
            ("X-Auth-Roles", "admin"),
            ("X-Jwt-Payload", "eyJzdWIiOiJhZG1pbiJ9"),
            ("X-Pomerium-Claim-Email", "admin@bank.example"),
            ("X-Endpoint-API-UserInfo", "eyJzdWIiOiJhZG1pbiJ9"),
            ("X-AppEngine-User-Email", "admin@bank.example"),
            ("Fly-Client-IP", "10.0.0.1"),
            ("X-Scheme", "https"),
            ("X-Script-Name", "/admin"),
            ("Remote_Groups", "admins"),
            ("X-Authorization", "Bearer stolen"),
            ("X-Auth-Token", "stolen"),
        ];
        let mut pairs: Vec<(&str, &str)> = asserted.to_vec();
        pairs.extend([("accept", "application/json"), ("x-tenant-hint", "t1")]);
        let mut h = map(&pairs);
        strip_client_asserted(&mut h, &[], false);
        assert_eq!(kept(&h), ["accept", "x-tenant-hint"]);
        let mut h = map(&pairs);
        let pass = [HeaderName::from_static("x-forwarded-prefix")];
        strip_client_asserted(&mut h, &pass, true);
        assert_eq!(
            kept(&h),
            [
                "accept",
                "authorization",
                "x-forwarded-prefix",
                "x-tenant-hint"
            ]
        );
        for (name, _) in asserted.iter().filter(|(n, _)| *n != "Authorization") {
            assert!(is_client_asserted(&name.to_ascii_lowercase()), "{name}");
        }
        for name in [
            "accept",
            "content-type",
            "x-request-id",
            "x-correlation-id",
            "cookie",
        ] {
            assert!(!is_client_asserted(name), "{name}");
        }
    }

    #[test]
    fn forwarded_is_the_gateways_own() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut h = map(&[("forwarded", "for=10.0.0.1")]);
        set_forwarded(&mut h, &ClientHop::new(v4), Some("api.example"), false);
        assert_eq!(
            h[&FORWARDED],
            "for=192.0.2.7;proto=https;host=\"api.example\""
        );
        let mut h = map(&[("forwarded", "for=10.0.0.1")]);
        set_forwarded(&mut h, &ClientHop::new(v6), None, true);
        assert_eq!(
            h[&FORWARDED],
            "for=10.0.0.1, for=\"[2001:db8::1]\";proto=https"
        );
        let mut h = HeaderMap::new();
        set_forwarded(&mut h, &ClientHop::new(v6), None, true);
        assert_eq!(h[&FORWARDED], "for=\"[2001:db8::1]\";proto=https");
    }

    #[test]
    fn request_ids_are_never_indexed_and_kept_as_written() {
        let id = request_id_value("fd8b4aca-00c6-4db5-ad4b-56ec8babf358").unwrap();
        assert!(id.is_sensitive());
        assert_eq!(id, "fd8b4aca-00c6-4db5-ad4b-56ec8babf358");
        assert!(request_id_value("bad\nid").is_none());
    }

    #[test]
    fn the_client_hop_is_written_once_per_address_family() {
        let v4 = ClientHop::new("192.0.2.7".parse().unwrap());
        assert_eq!(v4.address, "192.0.2.7");
        assert_eq!(v4.forwarded_element(None), "for=192.0.2.7;proto=https");
        let v6 = ClientHop::new("::ffff:192.0.2.7".parse().unwrap());
        assert_eq!(v6.address, "::ffff:192.0.2.7");
        assert_eq!(
            v6.forwarded_element(Some("a\"b")),
            "for=\"[::ffff:192.0.2.7]\";proto=https"
        );
    }

    #[test]
    fn forwarded_for_is_replaced_unless_trusted() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut h = map(&[("x-forwarded-for", "10.0.0.1")]);
        set_forwarded(&mut h, &ClientHop::new(ip), Some("api.example"), false);
        assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.7");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        let mut h = map(&[("x-forwarded-for", "10.0.0.1")]);
        set_forwarded(&mut h, &ClientHop::new(ip), None, true);
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
            if !kept {
                // A fresh id is a random (version 4) UUID, a new one each time.
                let uuid = uuid::Uuid::parse_str(&id).unwrap();
                assert_eq!(uuid.get_version(), Some(uuid::Version::Random));
                assert_ne!(ensure_request_id(&mut HeaderMap::new()), id);
            }
        }
    }
}

//! The request head must mean one thing to every party: the gateway, the upstream, and any
//! component that reads the same bytes. Runs first in the route phase, before anything is
//! decided on the head.
//!
//! hyper already refuses what HTTP/1.1 cannot parse (invalid names, NUL or bare CR in
//! values, obs-fold, conflicting lengths, a coding list not ending in `chunked`) and lets
//! `Transfer-Encoding` win over `Content-Length` (closing the connection after). What it
//! accepts and this module refuses:
//!
//! - a transfer coding other than one `chunked` (`gzip, chunked`, `x, chunked`, `chunked`
//!   twice, across lines or in one list), since the gateway would forward the decoded
//!   chunks as if the other codings were not there (400, not RFC 9112's suggested 501: a
//!   5xx is never the client's fault here);
//! - a target that is not origin-form or absolute-form (`*`, `host:port`): the gateway routes
//!   paths, and a prefix must not match something that is not one;
//! - an HTTP/1.1 request without exactly one `Host`, a `Host` that is not a plain
//!   `host[:port]` (userinfo, spaces, empty), and a target authority (absolute-form, or
//!   HTTP/2's `:authority`) that names another host than `Host` (RFC 9112 section 3.2,
//!   RFC 9113 section 8.3.1): the route is chosen by one host, the one forwarded upstream.

use super::error::GatewayError;
use http::request::Parts;
use http::uri::Authority;
use http::{header, Version};

/// Refuses a head whose framing or target could be read more than one way (400).
pub(crate) fn check(parts: &Parts) -> Result<(), GatewayError> {
    check_transfer_coding(parts)?;
    if !parts.uri.path().starts_with('/') {
        return Err(GatewayError::MalformedHead("request target"));
    }
    Ok(())
}

/// Only `chunked`, once: the one coding the gateway removes and the upstream client re-applies.
fn check_transfer_coding(parts: &Parts) -> Result<(), GatewayError> {
    let mut codings = parts
        .headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|c| c.trim_ascii())
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (None, _) => Ok(()),
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ => Err(GatewayError::MalformedHead("transfer coding")),
    }
}

/// The host the client addressed, lower-case and without port: the target's authority
/// (HTTP/2's `:authority`, HTTP/1.1's absolute form) or `Host`, which must agree when both
/// are present. `None` only for HTTP/1.0 (and HTTP/2) requests that name no host.
pub(crate) fn request_host(parts: &Parts) -> Result<Option<String>, GatewayError> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host_header = match (hosts.next(), hosts.next()) {
        (Some(value), None) => Some(plain_authority(value.as_bytes())?),
        (None, _) if parts.version != Version::HTTP_11 => None,
        _ => return Err(GatewayError::MalformedHead("host")),
    };
    let target = match parts.uri.authority() {
        Some(authority) => Some(plain_authority(authority.as_str().as_bytes())?),
        None => None,
    };
    let chosen = match (target, host_header) {
        (Some(target), Some(host)) if !same_host(&target, &host) => {
            return Err(GatewayError::MalformedHead("host"))
        }
        (Some(target), _) => Some(target),
        (None, host) => host,
    };
    Ok(chosen.map(|a| {
        a.host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase()
    }))
}

/// `host[:port]` and nothing else.
fn plain_authority(value: &[u8]) -> Result<Authority, GatewayError> {
    let malformed = GatewayError::MalformedHead("host");
    if value.is_empty() || value.contains(&b'@') {
        return Err(malformed);
    }
    Authority::try_from(value).map_err(|_| malformed)
}

/// Same host name (case-insensitive), and the same port where both say one.
fn same_host(a: &Authority, b: &Authority) -> bool {
    let ports = match (a.port_u16(), b.port_u16()) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    a.host().eq_ignore_ascii_case(b.host()) && ports
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(version: Version, target: &str, pairs: &[(&str, &str)]) -> Parts {
        let mut req = http::Request::builder().version(version).uri(target);
        for (k, v) in pairs {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn one_chunked_coding_only() {
        let te = |values: &[&str]| {
            let pairs: Vec<_> = values.iter().map(|v| ("transfer-encoding", *v)).collect();
            check(&head(Version::HTTP_11, "/", &pairs)).is_ok()
        };
        assert!(te(&[]));
        assert!(te(&["chunked"]));
        assert!(te(&["Chunked "]));
        for refused in [
            &["gzip, chunked"][..],
            &["x,chunked"],
            &["chunked, chunked"],
            &["identity", "chunked"],
            &["chunked", "chunked"],
            &[",chunked,x"],
        ] {
            assert!(!te(refused), "{refused:?}");
        }
    }

    #[test]
    fn targets_are_paths() {
        assert!(check(&head(Version::HTTP_11, "https://a.example/x", &[])).is_ok());
        for target in ["*", "a.example:443"] {
            assert!(
                check(&head(Version::HTTP_11, target, &[])).is_err(),
                "{target}"
            );
        }
    }

    #[test]
    fn one_host_that_agrees_with_the_target() {
        let host = |version, target: &str, hosts: &[&str]| {
            let pairs: Vec<_> = hosts.iter().map(|h| ("host", *h)).collect();
            request_host(&head(version, target, &pairs)).map_err(|_| ())
        };
        let h11 = Version::HTTP_11;
        let some = |h: &str| Ok(Some(h.to_owned()));
        assert_eq!(host(h11, "/", &["API.example:8443"]), some("api.example"));
        assert_eq!(host(h11, "/", &["[::1]:8443"]), some("::1"));
        assert_eq!(
            host(h11, "https://a.example/", &["A.example"]),
            some("a.example")
        );
        assert_eq!(
            host(h11, "https://a.example:1/", &["a.example"]),
            some("a.example")
        );
        assert_eq!(host(Version::HTTP_10, "/", &[]), Ok(None));
        assert_eq!(
            host(Version::HTTP_2, "https://a.example/", &[]),
            some("a.example")
        );
        for (target, hosts) in [
            ("/", &[][..]),
            ("/", &["a.example", "b.example"]),
            ("/", &["a.example", "a.example"]),
            ("/", &[""]),
            ("/", &["me@a.example"]),
            ("/", &["a b"]),
            ("https://b.example/", &["a.example"]),
            ("https://a.example:1/", &["a.example:2"]),
            ("https://me@a.example/", &["a.example"]),
        ] {
            assert_eq!(host(h11, target, hosts), Err(()), "{target} {hosts:?}");
        }
        assert_eq!(
            host(Version::HTTP_2, "https://a.example/", &["b.example"]),
            Err(())
        );
    }
}

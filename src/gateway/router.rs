//! Routing: (host, path, method) to a [`Route`].
//!
//! The most specific match wins: an exact host beats a wildcard host beats no host, then the
//! longest path prefix; ties go to the route listed first. The TOTP route's prefix is
//! reserved (no other route may be under it), so it wins whatever the other's host. Prefixes match whole segments.
//! Paths with dot-segments or percent-encoded separators are refused before matching, since
//! an upstream that normalises them could be reached through a prefix that does not cover it.

use super::error::GatewayError;
use crate::config::subject::RouteSubject;
use crate::config::{BodyMode, Direction, GatewayService, RouteConfig};
use crate::identity::RouteRequirements;
use http::Method;
use serde_json_path::JsonPath;
use std::sync::Arc;

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Route name (logs, metrics, policies).
    pub name: String,
    /// Upstream name.
    pub upstream: String,
    /// Path prefix matched (without a trailing slash, except for `/`).
    pub path_prefix: String,
    /// Remove the prefix before forwarding.
    pub strip_prefix: bool,
    /// Body handling.
    pub body: BodyMode,
    /// Policy action, when the route is policy-decided.
    pub action: Option<String>,
    /// Where the data subject's id is, and its one accepted spelling.
    pub subject: Option<RouteSubject>,
    /// Where the amount is, for routes decided after their body.
    pub amount: Option<Arc<JsonPath>>,
    /// Which way personal data crosses the gateway (which body field rules protect).
    pub direction: Direction,
    /// What the identify phase asks of callers here.
    pub identity: RouteRequirements,
    /// The service the gateway answers itself here, instead of forwarding.
    pub serve: Option<GatewayService>,
    /// The client's `Authorization` goes upstream (validation allows it only on routes
    /// that do not identify callers).
    pub forward_authorization: bool,
    host: HostMatch,
    methods: Option<Vec<Method>>,
}

impl Route {
    /// How specific a match on this route is: reserved first, then host, then prefix length.
    fn rank(&self) -> (bool, u8, usize) {
        let reserved = self.serve == Some(GatewayService::Totp);
        (reserved, self.host.rank(), self.path_prefix.len())
    }

    /// The segments of `path` after this route's prefix, for the APIs the gateway serves
    /// itself: `/fhe/v1/aggregates/7/release` under `/fhe/v1` gives
    /// `["aggregates", "7", "release"]` (`[""]` for the prefix itself).
    pub(crate) fn served_segments<'a>(&self, path: &'a str) -> Vec<&'a str> {
        path.get(self.path_prefix.len()..)
            .unwrap_or("")
            .trim_matches('/')
            .split('/')
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
    Exact(String),
}

impl HostMatch {
    fn rank(&self) -> u8 {
        match self {
            HostMatch::Any => 0,
            HostMatch::Suffix(_) => 1,
            HostMatch::Exact(_) => 2,
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h),
            HostMatch::Suffix(s) => {
                host.len() > s.len() && host.to_ascii_lowercase().ends_with(s.as_str())
            }
        }
    }
}

/// The routing table of one configuration generation.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Compiles routes from (validated) configuration.
    pub fn new(configs: &[RouteConfig]) -> Result<Self, String> {
        let routes = configs
            .iter()
            .map(compile)
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self { routes })
    }

    /// Finds the route for a request. `host` has no port.
    pub fn route(&self, host: &str, path: &str, method: &Method) -> Result<&Route, GatewayError> {
        if is_ambiguous(path) {
            return Err(GatewayError::AmbiguousPath);
        }
        let mut best: Option<&Route> = None;
        let mut allowed = Vec::new();
        for route in &self.routes {
            if !route.host.matches(host) || !prefix_matches(&route.path_prefix, path) {
                continue;
            }
            if let Some(methods) = &route.methods {
                if !methods.contains(method) {
                    allowed.extend(methods.iter().cloned());
                    continue;
                }
            }
            let better = best.is_none_or(|b| route.rank() > b.rank());
            if better {
                best = Some(route);
            }
        }
        match best {
            Some(route) => Ok(route),
            None if !allowed.is_empty() => {
                allowed.dedup();
                Err(GatewayError::MethodNotAllowed { allowed })
            }
            None => Err(GatewayError::NoRoute),
        }
    }
}

fn compile(c: &RouteConfig) -> Result<Route, String> {
    let amount = match &c.amount {
        Some(p) => Some(Arc::new(
            crate::jsonpath::parse(p).map_err(|e| format!("route `{}`: amount: {e}", c.name))?,
        )),
        None => None,
    };
    let subject = match &c.subject {
        Some(s) => Some(RouteSubject::compile(s).map_err(|e| format!("route `{}`: {e}", c.name))?),
        None => None,
    };
    Ok(Route {
        name: c.name.clone(),
        upstream: c.upstream.clone(),
        path_prefix: normalise_prefix(&c.path_prefix),
        strip_prefix: c.strip_prefix,
        body: c.body,
        action: c.action.clone(),
        subject,
        amount,
        direction: c.direction,
        identity: RouteRequirements::from_config(c),
        serve: c.serve,
        forward_authorization: c.forward_authorization,
        host: match &c.host {
            None => HostMatch::Any,
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => HostMatch::Suffix(suffix.to_ascii_lowercase()),
                None => HostMatch::Exact(h.to_ascii_lowercase()),
            },
        },
        methods: c.methods.as_ref().map(|ms| {
            ms.iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect()
        }),
    })
}

fn normalise_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// True when a path has `.`/`..` segments or encodes `/`, `\`, `.` or `%` itself.
/// Every request's path goes through here: one pass over its bytes, no lower-cased copy.
fn is_ambiguous(path: &str) -> bool {
    let bytes = path.as_bytes();
    let encodes = |at: usize| match (bytes.get(at + 1), bytes.get(at + 2)) {
        (Some(b'2'), Some(c)) => matches!(c.to_ascii_lowercase(), b'f' | b'e' | b'5'),
        (Some(b'5'), Some(c)) => c.eq_ignore_ascii_case(&b'c'),
        _ => false,
    };
    bytes
        .iter()
        .enumerate()
        .any(|(at, &b)| b == b'\\' || (b == b'%' && encodes(at)))
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(
        name: &str,
        host: Option<&str>,
        prefix: &str,
        methods: Option<&[&str]>,
    ) -> RouteConfig {
        RouteConfig {
            host: host.map(Into::into),
            methods: methods.map(|ms| ms.iter().map(|m| m.to_string()).collect()),
            ..RouteConfig::new(name, prefix, "u")
        }
    }

    fn router() -> Router {
        Router::new(&[
            route("root", None, "/", None),
            route("accounts", None, "/accounts", None),
            route(
                "accounts-partner",
                Some("*.partner.example"),
                "/accounts",
                None,
            ),
            route("accounts-api", Some("api.bank.example"), "/accounts/", None),
            route("payments", None, "/payments", Some(&["POST"])),
            route("statements", None, "/accounts/statements", Some(&["GET"])),
        ])
        .unwrap()
    }

    #[test]
    fn most_specific_route_wins() {
        // (host, path, method, expected route or error code)
        let cases = [
            ("x", "/accounts", "GET", "accounts"),
            ("x", "/accounts/7", "GET", "accounts"),
            ("x", "/accountsx", "GET", "root"),
            ("API.bank.example", "/accounts/7", "GET", "accounts-api"),
            (
                "eu.partner.example",
                "/accounts/7",
                "GET",
                "accounts-partner",
            ),
            ("partner.example", "/accounts/7", "GET", "accounts"),
            ("x", "/accounts/statements/1", "GET", "statements"),
            ("x", "/accounts/statements/1", "POST", "accounts"),
            ("x", "/payments", "POST", "payments"),
            ("x", "/payments", "GET", "root"),
            ("x", "/", "GET", "root"),
        ];
        let r = router();
        for (host, path, method, expected) in cases {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(
                r.route(host, path, &m).unwrap().name,
                expected,
                "{host} {method} {path}"
            );
        }
    }

    #[test]
    fn the_reserved_totp_route_wins_over_any_host() {
        let totp = RouteConfig {
            serve: Some(GatewayService::Totp),
            upstream: String::new(),
            ..route("totp", None, "/mfa/v1/totp", None)
        };
        let r = Router::new(&[route("api", Some("api.bank.example"), "/", None), totp]).unwrap();
        // (host, path, expected route)
        let cases = [
            ("api.bank.example", "/mfa/v1/totp/enroll", "totp"),
            ("other.example", "/mfa/v1/totp", "totp"),
            ("api.bank.example", "/mfa/v1/totpx", "api"),
            ("api.bank.example", "/mfa/v1", "api"),
        ];
        for (host, path, expected) in cases {
            let got = r.route(host, path, &Method::POST).unwrap();
            assert_eq!(got.name, expected, "{host} {path}");
        }
    }

    #[test]
    fn method_mismatch_without_fallback_is_405_with_allowed_methods() {
        let r =
            Router::new(&[route("payments", None, "/payments", Some(&["POST", "PUT"]))]).unwrap();
        match r.route("x", "/payments/1", &Method::GET) {
            Err(GatewayError::MethodNotAllowed { allowed }) => {
                assert_eq!(allowed, [Method::POST, Method::PUT])
            }
            other => panic!("expected 405, got {other:?}"),
        }
        assert!(matches!(
            r.route("x", "/other", &Method::GET),
            Err(GatewayError::NoRoute)
        ));
    }

    /// The one-pass check against the rule written out (lower-case the path, look for each
    /// encoding, a backslash, a dot segment), on every path of up to five characters from
    /// an alphabet of the characters involved.
    #[test]
    fn ambiguity_is_the_rule_written_out() {
        let rule = |path: &str| {
            let lower = path.to_ascii_lowercase();
            ["%2f", "%5c", "%2e", "%25"]
                .iter()
                .any(|enc| lower.contains(enc))
                || path.contains('\\')
                || path
                    .split('/')
                    .any(|segment| segment == "." || segment == "..")
        };
        let alphabet = [
            '%', '2', '5', 'f', 'F', 'e', 'E', 'c', 'C', '/', '.', '\\', 'a',
        ];
        let mut paths = vec![String::new()];
        let mut ambiguous = 0;
        for _ in 0..5 {
            paths = paths
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            for path in &paths {
                assert_eq!(is_ambiguous(path), rule(path), "{path:?}");
                ambiguous += usize::from(rule(path));
            }
        }
        assert!(ambiguous > 10_000, "{ambiguous}");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        let r = router();
        for path in [
            "/public/../admin",
            "/a/./b",
            "/a%2fb",
            "/a%2Fb",
            "/%2e%2e/x",
            "/a\\b",
            "/a%252f",
        ] {
            assert!(
                matches!(
                    r.route("x", path, &Method::GET),
                    Err(GatewayError::AmbiguousPath)
                ),
                "{path}"
            );
        }
    }
}

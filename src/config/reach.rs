//! Which upstream paths each route can reach, and the rule that keeps plain routes away from
//! the data that decided routes guard.
//!
//! The rule: a route that reaches any upstream path a policy-decided route reaches must be
//! decided itself, and must have field rules if that route has them. Otherwise the plain
//! route is a second door to the same records, without the Cedar decision, the consent
//! check, the field views, the PII guard or the audit subject (a `/review` prefix that
//! strips itself and forwards to the whole core bank, say).
//!
//! Reach is compared on the upstream's side, conservatively: the same service (scheme-less
//! authority, every spelling of an address as one, every name and address of this machine
//! as one) and overlapping path subtrees, compared as the most lenient upstream reads a path
//! (without case, percent-decoded, slashes merged, dot-segments resolved, `;params` cut),
//! whatever the routes' hosts and methods. The router's most-specific-match does not count
//! as separation: upstreams that ignore case, merge slashes or drop `;params` would let a
//! request meant for the plain route land on the guarded records.

use super::{Config, RouteConfig};

/// The upstream paths a route can reach: a service and a path subtree on it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reach {
    /// `host:port`, the host as [`canonical_host`] spells it.
    service: String,
    /// The path as [`canonical_path`] spells it; empty for the whole service.
    subtree: String,
}

impl Reach {
    fn of(config: &Config, route: &RouteConfig) -> Option<Self> {
        if route.serve.is_some() {
            return None;
        }
        let url: http::Uri = config.upstreams.get(&route.upstream)?.url.parse().ok()?;
        let port = url
            .port_u16()
            .unwrap_or(if url.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let host = canonical_host(url.host()?);
        // Stripping the prefix forwards whatever follows it: the whole base path.
        let path = if route.strip_prefix {
            url.path().to_owned()
        } else {
            format!("{}/{}", url.path(), route.path_prefix)
        };
        Some(Self {
            service: format!("{host}:{port}"),
            subtree: canonical_path(&path),
        })
    }

    fn overlaps(&self, other: &Self) -> bool {
        let under = |a: &str, b: &str| a.is_empty() || a == b || b.starts_with(&format!("{a}/"));
        self.service == other.service
            && (under(&self.subtree, &other.subtree) || under(&other.subtree, &self.subtree))
    }

    fn describe(&self) -> String {
        format!(
            "{}{}",
            self.service,
            if self.subtree.is_empty() {
                "/"
            } else {
                &self.subtree
            }
        )
    }
}

/// The names distributions' `/etc/hosts` give this machine's loopback addresses.
const LOOPBACK_NAMES: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "localhost4",
    "localhost4.localdomain4",
    "localhost6",
    "localhost6.localdomain6",
    "ip6-localhost",
    "ip6-loopback",
];

/// A host as the connection reaches it: lower-case, without brackets or a trailing dot;
/// an address in its one spelling (the legacy IPv4 forms `127.1`, `2130706433`,
/// `0x7f.0.0.1` that resolvers accept, an IPv4-mapped IPv6 address as IPv4); every name or
/// address that connects to this machine ([`LOOPBACK_NAMES`], `*.localhost`, `127.0.0.0/8`, `::1`,
/// and the unspecified `0.0.0.0` and `::`) as `loopback`. Other names are compared as
/// written: two names for one address are not found here.
fn canonical_host(host: &str) -> String {
    let host = host
        .trim_matches(['[', ']'])
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if LOOPBACK_NAMES.contains(&host.as_str()) || host.ends_with(".localhost") {
        return "loopback".to_owned();
    }
    let ip = host
        .parse::<std::net::IpAddr>()
        .ok()
        .or_else(|| legacy_ipv4(&host).map(std::net::IpAddr::V4))
        .map(|ip| ip.to_canonical());
    match ip {
        Some(ip) if ip.is_loopback() || ip.is_unspecified() => "loopback".to_owned(),
        Some(ip) => ip.to_string(),
        None => host,
    }
}

/// An IPv4 address in the forms `inet_aton` (and so most resolvers) accept: one to four
/// dot-separated parts, each decimal, octal (leading `0`) or hex (`0x`), the last filling
/// the remaining bytes.
fn legacy_ipv4(host: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<u32> = host
        .split('.')
        .map(|part| {
            let (digits, radix) = match part.strip_prefix("0x") {
                Some(hex) => (hex, 16),
                None if part.len() > 1 && part.starts_with('0') => (&part[1..], 8),
                None => (part, 10),
            };
            match digits.is_empty() && radix != 16 {
                true => None,
                false => u32::from_str_radix(digits, radix).ok(),
            }
        })
        .collect::<Option<_>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|p| *p > 255) {
        return None;
    }
    let room = 8 * (4 - u32::try_from(leading.len()).ok()?);
    if room < 32 && *last >> room != 0 {
        return None;
    }
    let high = leading
        .iter()
        .enumerate()
        .fold(0u32, |acc, (i, p)| acc | (p << (24 - 8 * i)));
    Some(std::net::Ipv4Addr::from(high | last))
}

/// An upstream path as the most lenient upstream reads it: percent-decoded, lower-case,
/// `;params` cut from each segment, empty and `.` segments dropped, `..` resolved; `""` for
/// the root. `/%63ustomers`, `//Customers;v=1/` and `/api/../customers` are `/customers`.
fn canonical_path(path: &str) -> String {
    let decoded = percent_decoded(path).to_lowercase();
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment.split(';').next().unwrap_or("") {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    segments.iter().map(|s| format!("/{s}")).collect()
}

/// `%XX` escapes decoded (an invalid escape is kept as written).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every route that reaches a decided route's upstream paths without the same guards, as
/// messages naming both routes and what would be skipped. `has_field_rules` says whether a
/// route has field rules or a PII guard (`routes.toml`).
pub(crate) fn check(config: &Config, has_field_rules: &dyn Fn(&str) -> bool) -> Vec<String> {
    let reaches: Vec<(&RouteConfig, Reach)> = config
        .routes
        .iter()
        .filter_map(|r| Some((r, Reach::of(config, r)?)))
        .collect();
    let mut problems = Vec::new();
    for (route, reach) in &reaches {
        for (guarded, guarded_reach) in &reaches {
            if route.name == guarded.name
                || guarded.action.is_none()
                || !reach.overlaps(guarded_reach)
            {
                continue;
            }
            let rules = has_field_rules(&guarded.name);
            if route.action.is_none() {
                problems.push(format!(
                    "route `{}` has no action but reaches upstream paths ({}) that the \
                     policy-decided route `{}` guards ({}): requests through `{}` would skip \
                     the policy decision, consent{} and the audit subject. Give it an action{}, \
                     or point it at paths no decided route reaches",
                    route.name,
                    reach.describe(),
                    guarded.name,
                    guarded_reach.describe(),
                    route.name,
                    if rules {
                        ", field views, the PII guard"
                    } else {
                        ""
                    },
                    if rules {
                        " and field rules in routes.toml"
                    } else {
                        ""
                    },
                ));
                break;
            }
            if rules && !has_field_rules(&route.name) {
                problems.push(format!(
                    "route `{}` reaches upstream paths ({}) that route `{}` protects with \
                     field rules ({}), but has no field rules of its own in routes.toml: its \
                     responses would pass without field views or the PII guard",
                    route.name,
                    reach.describe(),
                    guarded.name,
                    guarded_reach.describe(),
                ));
                break;
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(upstreams: &str, routes: &str) -> Config {
        let text = format!(
            r#"
[[listener]]
name = "l"
address = "127.0.0.1:0"
cert = "c.pem"
key = "k.pem"
{upstreams}
{routes}
"#
        );
        toml::from_str(&text).unwrap()
    }

    const CORE: &str = "[upstream.core]\nurl = \"http://127.0.0.1:9080\"";

    const DECIDED: &str = r#"
[[route]]
name = "customers"
path_prefix = "/customers"
methods = ["GET"]
upstream = "core"
body = "buffered"
action = "customers:read"
"#;

    fn problems(upstreams: &str, routes: &str) -> Vec<String> {
        check(&config(upstreams, routes), &|r| r == "customers")
    }

    #[test]
    fn plain_routes_reaching_decided_paths_are_refused() {
        // (extra upstreams, the plain route, refused)
        let cases = [
            // The demo's fraud review: strips its prefix, so it reaches the whole core bank.
            (
                "",
                "path_prefix = \"/review\"\nstrip_prefix = true\nupstream = \"core\"",
                true,
            ),
            // A catch-all, whatever its methods.
            (
                "",
                "path_prefix = \"/\"\nupstream = \"core\"\nmethods = [\"PUT\"]",
                true,
            ),
            // A deeper prefix under the decided one.
            (
                "",
                "path_prefix = \"/customers/export\"\nupstream = \"core\"",
                true,
            ),
            // Case: an upstream that ignores it serves the same records.
            (
                "",
                "path_prefix = \"/Customers\"\nupstream = \"core\"",
                true,
            ),
            // Another upstream name, the same service (loopback spelled otherwise).
            (
                "[upstream.raw]\nurl = \"http://localhost:9080/\"",
                "path_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            (
                "[upstream.raw]\nurl = \"http://[::1]:9080\"",
                "path_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            (
                "[upstream.raw]\nurl = \"http://LOCALHOST.:9080\"",
                "path_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            // Every spelling of this machine's address reaches the same service.
            (
                "[upstream.raw]\nurl = \"http://0.0.0.0:9080\"",
                "path_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            (
                "[upstream.raw]\nurl = \"http://[::]:9080\"",
                "path_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            (
                "[upstream.raw]\nurl = \"http://[::ffff:127.0.0.1]:9080\"",
                "path_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            (
                "[upstream.raw]\nurl = \"http://127.1:9080\"",
                "path_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            (
                "[upstream.raw]\nurl = \"http://2130706433:9080\"",
                "path_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            (
                "[upstream.raw]\nurl = \"http://0x7f.0.0.2:9080\"",
                "path_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            (
                "[upstream.raw]\nurl = \"http://ip6-localhost:9080\"",
                "path_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            (
                "[upstream.raw]\nurl = \"http://localhost.localdomain:9080\"",
                "path_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            (
                "[upstream.raw]\nurl = \"http://core.localhost:9080\"",
                "path_prefix = \"/raw\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            // Paths an upstream decodes, merges or resolves onto the guarded subtree.
            (
                "",
                "path_prefix = \"/%63ustomers\"\nupstream = \"core\"",
                true,
            ),
            (
                "",
                "path_prefix = \"//customers\"\nupstream = \"core\"",
                true,
            ),
            (
                "",
                "path_prefix = \"/customers;v=2\"\nupstream = \"core\"",
                true,
            ),
            (
                "",
                "path_prefix = \"/x/../customers\"\nupstream = \"core\"",
                true,
            ),
            (
                "[upstream.raw]\nurl = \"http://127.0.0.1:9080/api/..//Customers/\"",
                "path_prefix = \"/people\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            // An upstream whose base path is the guarded subtree.
            (
                "[upstream.raw]\nurl = \"http://127.0.0.1:9080/customers\"",
                "path_prefix = \"/people\"\nstrip_prefix = true\nupstream = \"raw\"",
                true,
            ),
            // Authenticated or stepped-up, still not decided.
            (
                "",
                "path_prefix = \"/customers/audit\"\nupstream = \"core\"\nauthenticate = true",
                true,
            ),
            // Separate paths on the same service.
            (
                "",
                "path_prefix = \"/payments\"\nupstream = \"core\"",
                false,
            ),
            (
                "",
                "path_prefix = \"/customersx\"\nupstream = \"core\"",
                false,
            ),
            (
                "",
                "path_prefix = \"/%63ustomersx\"\nupstream = \"core\"",
                false,
            ),
            // Another service (another port, another address).
            (
                "[upstream.other]\nurl = \"http://10.0.0.7:9080\"",
                "path_prefix = \"/\"\nupstream = \"other\"",
                false,
            ),
            (
                "[upstream.other]\nurl = \"http://127.0.0.1:9081\"",
                "path_prefix = \"/\"\nupstream = \"other\"",
                false,
            ),
        ];
        for (upstreams, plain, refused) in cases {
            let routes = format!("{DECIDED}\n[[route]]\nname = \"plain\"\n{plain}\n");
            let found = problems(&format!("{CORE}\n{upstreams}"), &routes);
            assert_eq!(!found.is_empty(), refused, "{plain}: {found:?}");
            if refused {
                assert!(
                    found[0].contains("route `plain` has no action")
                        && found[0].contains("`customers`")
                        && found[0].contains("field rules"),
                    "{found:?}"
                );
            }
        }
    }

    #[test]
    fn a_decided_route_without_field_rules_cannot_reach_protected_paths() {
        let routes = format!(
            "{DECIDED}\n[[route]]\nname = \"review\"\npath_prefix = \"/review\"\n\
             strip_prefix = true\nupstream = \"core\"\naction = \"customers:read\"\n"
        );
        let found = problems(CORE, &routes);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("route `review`") && found[0].contains("no field rules"));
        // With field rules of its own it may: both routes are decided and protected.
        let found = check(&config(CORE, &routes), &|_| true);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn plain_routes_beside_decided_routes_without_rules_are_refused_too() {
        let routes = "[[route]]\nname = \"accounts\"\npath_prefix = \"/accounts\"\n\
                      upstream = \"core\"\naction = \"accounts:read\"\n\
                      [[route]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"core\"\n";
        let found = check(&config(CORE, routes), &|_| false);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("consent") && !found[0].contains("field views"));
    }
}

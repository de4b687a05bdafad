use super::*;
use crate::config::defaults;

const MINIMAL: &str = r#"
[[listener]]
name = "public"
address = "127.0.0.1:8443"
cert = "server.pem"
key = "server.key.pem"

[upstream.core]
url = "http://127.0.0.1:9000"

[[route]]
name = "customers"
path_prefix = "/customers"
upstream = "core"
"#;

fn messages(text: &str) -> Vec<String> {
    match parse(Path::new("/etc/privgate/privgate.toml"), text) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems.into_iter().map(|p| p.message).collect(),
    }
}

#[test]
fn minimal_config_gets_defaults_and_resolved_paths() {
    let config = parse(Path::new("/etc/privgate/privgate.toml"), MINIMAL).unwrap();
    assert_eq!(config.limits.max_body_bytes, defaults::MAX_BODY_BYTES);
    assert_eq!(config.admin.address.to_string(), defaults::ADMIN_ADDRESS);
    assert_eq!(
        (config.admin.approvals_required, config.admin.approval_ttl),
        (
            defaults::ADMIN_APPROVALS_REQUIRED,
            defaults::ADMIN_APPROVAL_TTL
        )
    );
    assert_eq!(
        config.listeners[0].cert,
        Path::new("/etc/privgate/server.pem")
    );
    assert_eq!(
        config.upstreams["core"].connect_timeout,
        defaults::UPSTREAM_CONNECT_TIMEOUT
    );
}

#[test]
fn each_problem_is_reported_with_its_file() {
    // (edit applied to MINIMAL, expected message fragment)
    let cases: &[(&str, &str, &str)] = &[
        (
            "upstream = \"core\"",
            "upstream = \"nowhere\"",
            "upstream `nowhere` is not defined",
        ),
        (
            "path_prefix = \"/customers\"",
            "path_prefix = \"customers\"",
            "must start with /",
        ),
        (
            "[upstream.core]",
            "[admin]\napprovals_required = 0\n[upstream.core]",
            "admin.approvals_required must be 1 to 5",
        ),
        (
            "[upstream.core]",
            "[admin]\napprovals_required = 6\n[upstream.core]",
            "admin.approvals_required must be 1 to 5",
        ),
        (
            "[upstream.core]",
            "[admin]\nconsent_revocation_approvals = 0\n[upstream.core]",
            "admin.consent_revocation_approvals must be 1 to 5",
        ),
        (
            "[upstream.core]",
            "[admin]\nconsent_revocation_approvals = 9\n[upstream.core]",
            "admin.consent_revocation_approvals must be 1 to 5",
        ),
        (
            "upstream = \"core\"",
            "serve = \"admin_api\"",
            "serve needs a [policy] section",
        ),
        (
            "upstream = \"core\"",
            "upstream = \"core\"\nserve = \"admin_api\"",
            "a route the gateway serves has no upstream",
        ),
        (
            "url = \"http://127.0.0.1:9000\"",
            "url = \"ftp://x\"",
            "must start with http://",
        ),
        (
            "url = \"http://127.0.0.1:9000\"",
            "url = \"https://x\"",
            "https needs `ca`",
        ),
        (
            "upstream = \"core\"",
            "upstream = \"core\"\nmethods = [\"get\"]",
            "upper-case HTTP method",
        ),
        (
            "key = \"server.key.pem\"",
            "key = \"k\"\nclient_auth = \"required\"",
            "needs client_ca",
        ),
        (
            "[upstream.core]",
            "[limits]\nmax_json_depth = 500\n[upstream.core]",
            "at most 128",
        ),
        (
            "[upstream.core]",
            "[limits]\nmax_body_bytes = 0\n[upstream.core]",
            "max_body_bytes must be",
        ),
        (
            "name = \"customers\"",
            "name = \"customers\"\nbogus = 1",
            "unknown field `bogus`",
        ),
        (
            "[upstream.core]",
            "[store]\nurl = \"postgres://u:secret@db/p\"\n[upstream.core]",
            "must not contain a password",
        ),
        (
            "[upstream.core]",
            "[store]\nurl = \"mysql://db/p\"\n[upstream.core]",
            "store.url must be",
        ),
        (
            "upstream = \"core\"",
            "upstream = \"core\"\namount = \"$.amount\"",
            "amount needs an action",
        ),
        (
            "upstream = \"core\"",
            "upstream = \"core\"\naction = \"x\"\nbody = \"buffered\"\namount = \"$[\"",
            "is not a JSONPath",
        ),
        // Nested past the bound: refused before serde_json_path's backtracking parser.
        (
            "upstream = \"core\"",
            "upstream = \"core\"\naction = \"x\"\nbody = \"buffered\"\namount = \"$[?@.a[?@.a[?@.a[?@.a[?@.a[?@.a[?@.a[?@.a[?@.a]]]]]]]]]\"",
            "nested more than 8 brackets deep",
        ),
        (
            "upstream = \"core\"",
            "upstream = \"core\"\naction = \"x\"",
            "action needs a [policy]",
        ),
        (
            "[upstream.core]",
            "[[client]]\nid = \"a\"\ncertificate_sha256 = \"abc\"\n[upstream.core]",
            "64 hex digits",
        ),
        (
            "[upstream.core]",
            "[keys]\nkek = { source = \"passphrase_file\", path = \"p\" }\nargon2 = { memory_kib = 32768, iterations = 3, parallelism = 1 }\n[upstream.core]",
            "keys.argon2.memory_kib must be between 65536",
        ),
        (
            "[upstream.core]",
            "[keys]\nkek = { source = \"passphrase_file\", path = \"p\" }\nargon2 = { memory_kib = 65536, iterations = 2, parallelism = 1 }\n[upstream.core]",
            "keys.argon2.iterations must be between 3",
        ),
        (
            "[upstream.core]",
            "[keys]\nkek = { source = \"hsm\" }\n[upstream.core]",
            "unknown variant `hsm`",
        ),
        (
            "[upstream.core]",
            "[keys]\nkek = { source = \"key_file\", path = \"k\", mode = 1 }\n[upstream.core]",
            "unknown field `mode`",
        ),
        (
            "[upstream.core]",
            "[keys]\nkek = { source = \"key_file\", path = \"k\" }\naead_max_uses = 0\n[upstream.core]",
            "keys.aead_max_uses must be between 1",
        ),
        (
            "[upstream.core]",
            "[keys]\nkek = { source = \"key_file\", path = \"k\" }\naead_max_uses = 4294967297\n[upstream.core]",
            "keys.aead_max_uses must be between 1",
        ),
        (
            "[upstream.core]",
            "[keys]\nkek = { source = \"passphrase_env\", var = \"\" }\nrefresh_interval = \"5m\"\n[upstream.core]",
            "keys.refresh_interval must be at most 60s",
        ),
        (
            "[upstream.core]",
            "[keys]\nkek = { source = \"key_file\", path = \"k\" }\nbogus = 1\n[upstream.core]",
            "unknown field `bogus`",
        ),
    ];
    for (from, to, expected) in cases {
        let text = MINIMAL.replacen(from, to, 1);
        let found = messages(&text);
        assert!(
            found.iter().any(|m| m.contains(expected)),
            "expected `{expected}` for edit `{to}`, got {found:?}"
        );
    }
}

#[test]
fn keys_section_gets_defaults_and_resolved_paths() {
    let text = MINIMAL.replace(
        "[upstream.core]",
        "[keys]\nkek = { source = \"key_file\", path = \"kek.key\" }\n[upstream.core]",
    );
    let keys = parse(Path::new("/etc/privgate/privgate.toml"), &text)
        .unwrap()
        .keys
        .unwrap();
    assert_eq!(
        keys.kek,
        crate::config::KekSource::KeyFile {
            path: "/etc/privgate/kek.key".into()
        }
    );
    assert_eq!(keys.argon2.memory_kib, 65536);
    assert_eq!(keys.aead_max_uses, 1 << 30);
    for source in [
        "{ source = \"passphrase_fd\", fd = 3 }",
        "{ source = \"passphrase_prompt\" }",
        "{ source = \"passphrase_env\", var = \"KEK\" }",
    ] {
        let text = MINIMAL.replace(
            "[upstream.core]",
            &format!("[keys]\nkek = {source}\n[upstream.core]"),
        );
        assert!(
            messages(&text).is_empty(),
            "{source}: {:?}",
            messages(&text)
        );
    }
}

#[test]
fn all_problems_are_collected_not_just_the_first() {
    let text = MINIMAL
        .replace("upstream = \"core\"", "upstream = \"nowhere\"")
        .replace("path_prefix = \"/customers\"", "path_prefix = \"x\"");
    assert_eq!(messages(&text).len(), 2);
}

#[test]
fn error_display_names_the_file() {
    let err = parse(Path::new("/srv/gw.toml"), "listener = 3").unwrap_err();
    assert!(
        err.to_string().starts_with("/srv/gw.toml: invalid TOML"),
        "{err}"
    );
}

#[test]
fn totp_and_rate_limit_settings_are_checked() {
    const KEYS: &str = "[keys]\nkek = { source = \"key_file\", path = \"kek.hex\" }\n";
    const TOTP_ROUTE: &str =
        "[[route]]\nname = \"enrolment\"\nserve = \"totp\"\npath_prefix = \"/otp\"\n";

    // (extra configuration, expected problem fragment; empty: valid)
    let cases = [
        (format!("{KEYS}[totp]\n"), ""),
        ("[totp]\n".to_owned(), "[totp] needs [keys]"),
        (
            format!("{KEYS}[totp]\ndigits = 7\n"),
            "totp.digits must be 6 or 8",
        ),
        (
            format!("{KEYS}[totp]\nalgorithm = \"MD5\"\n"),
            "unknown variant",
        ),
        (
            format!("{KEYS}[totp]\nmax_failures = 0\n"),
            "greater than 0",
        ),
        (
            format!("{KEYS}[totp]\npath_prefix = \"/mfa/\"\n"),
            "path_prefix",
        ),
        (format!("{KEYS}[totp]\nissuer = \"a:b\"\n"), "totp.issuer"),
        (
            "[rate_limit]\nper_address = \"5/s\"\nburst = 0\n".to_owned(),
            "burst must be at least 1",
        ),
        (
            "[rate_limit]\nper_principal = \"5/d\"\n".to_owned(),
            "must look like 100/s",
        ),
        (
            "[route.rate_limit]\nper_principal = \"5/m\"\n".to_owned(),
            "",
        ),
        (
            format!("{KEYS}[totp]\npath_prefix = \"/customers/x\"\n"),
            "",
        ),
        (
            format!("{KEYS}[totp]\npath_prefix = \"/customers\"\n"),
            "under totp.path_prefix",
        ),
        // The TOTP endpoints on a route of their own: its prefix is the reserved one.
        (format!("{KEYS}[totp]\n{TOTP_ROUTE}"), ""),
        (
            format!("{KEYS}[totp]\npath_prefix = \"/otp\"\n{TOTP_ROUTE}"),
            "remove totp.path_prefix",
        ),
        (TOTP_ROUTE.to_owned(), "serve = \"totp\" needs [totp]"),
        (
            format!("{KEYS}[totp]\n{TOTP_ROUTE}{TOTP_ROUTE}"),
            "only one route may have serve = \"totp\"",
        ),
        (
            format!("{KEYS}[totp]\n{TOTP_ROUTE}step_up = {{ amr_any = [\"hwk\"] }}\n"),
            "takes no step_up",
        ),
        (
            format!("{KEYS}[totp]\n{TOTP_ROUTE}[[route]]\nname = \"under\"\npath_prefix = \"/otp/v2\"\nupstream = \"core\"\n"),
            "under totp.path_prefix `/otp`",
        ),
        (
            format!("{KEYS}[totp]\n[[route]]\nname = \"totp\"\npath_prefix = \"/t\"\nupstream = \"core\"\n"),
            "the name is the TOTP endpoints' route",
        ),
    ];
    for (extra, expected) in cases {
        let found = messages(&format!("{MINIMAL}{extra}"));
        match expected {
            "" => assert!(found.is_empty(), "{extra}: {found:?}"),
            fragment => assert!(
                found.iter().any(|m| m.contains(fragment)),
                "{extra}: {found:?}"
            ),
        }
    }
}

#[test]
fn hsts_is_checked_before_any_browser_sees_it() {
    let with = |hsts: &str| {
        MINIMAL.replace(
            "key = \"server.key.pem\"",
            &format!("key = \"server.key.pem\"\nhsts = {hsts}"),
        )
    };
    let config = parse(
        Path::new("/etc/privgate/privgate.toml"),
        &with(r#"{ max_age = "2y", include_subdomains = true, preload = true }"#),
    )
    .unwrap();
    assert_eq!(
        config.listeners[0].hsts.as_ref().unwrap().header_value(),
        "max-age=63115200; includeSubDomains; preload"
    );
    for (hsts, fragment) in [
        (
            r#"{ max_age = "2y", preload = true }"#,
            "hsts preload needs include_subdomains",
        ),
        (
            r#"{ max_age = "30d", include_subdomains = true, preload = true }"#,
            "at least 365 days",
        ),
        (
            r#"{ max_age = "1y", subdomains = true }"#,
            "unknown field `subdomains`",
        ),
        (
            r#"{ include_subdomains = true }"#,
            "missing field `max_age`",
        ),
    ] {
        let found = messages(&with(hsts));
        assert!(
            found.iter().any(|m| m.contains(fragment)),
            "{hsts}: expected `{fragment}` in {found:?}"
        );
    }
}

/// MINIMAL with a policy set and the customers route decided, `route_extra` added to it.
fn decided(route_extra: &str) -> String {
    MINIMAL.replace(
        "upstream = \"core\"\n",
        &format!("upstream = \"core\"\naction = \"customers:read\"\n{route_extra}\n[policy]\n"),
    )
}

#[test]
fn subjects_must_say_where_the_id_is_and_its_one_spelling() {
    // (route lines, expected message fragment; "" for a configuration that passes)
    let cases = [
        ("subject = { from = \"path\", id = \"integer\" }", ""),
        ("subject = { id = \"uuid\" }", ""),
        (
            "subject = { from = \"path\", id = \"pattern\", pattern = \"c-[0-9]+\" }",
            "",
        ),
        (
            "methods = [\"GET\"]\nbody = \"buffered\"\nsubject = { from = \"response\", selector = \"$.customer_id\", id = \"integer\" }",
            "",
        ),
        (
            "body = \"buffered\"\nsubject = { from = \"request\", selector = \"$.id\", id = \"integer\" }",
            "",
        ),
        // The old form, whatever the path names, is refused with the way out.
        ("subject = \"after_prefix\"", "is no longer accepted"),
        ("subject = \"path\"", "is no longer accepted"),
        // No declared spelling: ids could not be canonical.
        ("subject = { from = \"path\" }", "missing field `id`"),
        ("subject = { from = \"path\", id = \"string\" }", "unknown variant"),
        ("subject = { from = \"path\", id = \"integer\", kind = \"x\" }", "unknown field"),
        ("subject = { from = \"body\", id = \"integer\" }", "unknown variant"),
        (
            "subject = { from = \"path\", id = \"pattern\" }",
            "needs `pattern`",
        ),
        (
            "subject = { from = \"path\", id = \"pattern\", pattern = \".*\" }",
            "matches the empty id",
        ),
        (
            "subject = { from = \"path\", id = \"integer\", selector = \"$.id\" }",
            "selector is for from",
        ),
        (
            "body = \"buffered\"\nmethods = [\"GET\"]\nsubject = { from = \"response\", id = \"integer\" }",
            "needs `selector`",
        ),
        (
            "body = \"buffered\"\nmethods = [\"GET\"]\nsubject = { from = \"response\", selector = \"$[\", id = \"integer\" }",
            "is not a JSONPath",
        ),
        (
            "body = \"buffered\"\nmethods = [\"GET\"]\nsubject = { from = \"response\", selector = \"$[?@.a[?@.a[?@.a[?@.a[?@.a[?@.a[?@.a[?@.a[?@.a]]]]]]]]]\", id = \"integer\" }",
            "nested more than 8 brackets deep",
        ),
        (
            "methods = [\"GET\"]\nsubject = { from = \"response\", selector = \"$.customer_id\", id = \"integer\" }",
            "needs body = \"buffered\"",
        ),
        (
            "subject = { from = \"request\", selector = \"$.id\", id = \"integer\" }",
            "needs body = \"buffered\"",
        ),
        // Decided after the upstream answered: only methods that change nothing.
        (
            "body = \"buffered\"\nsubject = { from = \"response\", selector = \"$.customer_id\", id = \"integer\" }",
            "only methods that change nothing",
        ),
        (
            "body = \"buffered\"\nmethods = [\"GET\", \"POST\"]\nsubject = { from = \"response\", selector = \"$.customer_id\", id = \"integer\" }",
            "only methods that change nothing",
        ),
        (
            "body = \"buffered\"\nmethods = [\"DELETE\"]\nsubject = { from = \"response\", selector = \"$.customer_id\", id = \"integer\" }",
            "only methods that change nothing",
        ),
        (
            "body = \"buffered\"\nmethods = [\"GET\"]\ndirection = \"outbound\"\nsubject = { from = \"response\", selector = \"$.customer_id\", id = \"integer\" }",
            "outbound route's response",
        ),
    ];
    for (lines, fragment) in cases {
        let found = messages(&decided(lines));
        if fragment.is_empty() {
            assert!(found.is_empty(), "{lines}: {found:?}");
        } else {
            assert!(
                found.iter().any(|m| m.contains(fragment)),
                "{lines}: {found:?}"
            );
        }
    }
    // A subject still needs an action.
    let found = messages(&MINIMAL.replace(
        "upstream = \"core\"\n",
        "upstream = \"core\"\nsubject = { from = \"path\", id = \"integer\" }\n",
    ));
    assert!(found
        .iter()
        .any(|m| m.contains("subject is only used with an action")));
}

/// Item 9: the exceptions to header hygiene must be meant: only client-asserted headers
/// may be passed, and only routes that do not identify callers forward `Authorization`.
#[test]
fn header_hygiene_exceptions_are_checked() {
    let with = |extra: &str| messages(&format!("{MINIMAL}{extra}"));
    assert!(with("forward_authorization = true\n").is_empty());
    for identifying in [
        "authenticate = true",
        "action = \"customers:read\"",
        "require_bound_token = true",
    ] {
        let problems = with(&format!("forward_authorization = true\n{identifying}\n"));
        assert!(
            problems.iter().any(|p| p.contains("forward_authorization")),
            "{identifying}: {problems:?}"
        );
    }
    let forwarding = |names: &str| {
        messages(&format!(
            "[forwarding]\npass_client_headers = [{names}]\n{MINIMAL}"
        ))
    };
    assert!(forwarding("\"X-Forwarded-Prefix\", \"x-ssl-client-verify\"").is_empty());
    for bad in ["\"authorization\"", "\"accept\"", "\"bad header\""] {
        let problems = forwarding(bad);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("forwarding.pass_client_headers")),
            "{bad}: {problems:?}"
        );
    }
}

#[test]
fn a_new_route_is_what_a_table_with_only_its_name_prefix_and_upstream_parses_to() {
    let parsed: crate::config::RouteConfig =
        toml::from_str("name = \"r\"\npath_prefix = \"/p\"\nupstream = \"u\"\n").unwrap();
    assert_eq!(crate::config::RouteConfig::new("r", "/p", "u"), parsed);
}

#[test]
fn tracing_needs_a_usable_endpoint_and_trusts_only_what_it_can_match() {
    let tracing = |section: &str| messages(&format!("{MINIMAL}\n[tracing]\n{section}\n"));
    let ok = "endpoint = \"http://127.0.0.1:4318/v1/traces\"";
    assert!(tracing(ok).is_empty(), "{:?}", tracing(ok));
    let config = parse(
        Path::new("/etc/privgate/privgate.toml"),
        &format!("{MINIMAL}\n[tracing]\n{ok}\nca = \"ca.pem\"\ntrusted_networks = [\"10.1.0.0/16\", \"::1/128\"]\n"),
    )
    .unwrap();
    let section = config.tracing.unwrap();
    assert_eq!(section.sample_ratio, defaults::TRACE_SAMPLE_RATIO);
    assert_eq!(section.batch_delay, defaults::TRACE_BATCH_DELAY);
    assert_eq!(section.ca.unwrap(), Path::new("/etc/privgate/ca.pem"));
    assert_eq!(section.trusted_networks.len(), 2);
    // (section, what the problem names)
    let cases: [(&str, &str); 8] = [
        ("endpoint = \"127.0.0.1:4318\"", "tracing.endpoint"),
        (
            "endpoint = \"ftp://collector/v1/traces\"",
            "tracing.endpoint",
        ),
        (
            "endpoint = \"https://collector/v1/traces\"",
            "https needs tracing.ca",
        ),
        (&format!("{ok}\nsample_ratio = 1.5"), "tracing.sample_ratio"),
        (&format!("{ok}\nbatch_delay = \"0s\""), "greater than 0"),
        (
            &format!("{ok}\nservice_name = \"\""),
            "tracing.service_name",
        ),
        (
            &format!("{ok}\ntrusted_networks = [\"10.1.0.0/33\"]"),
            "trusted_networks",
        ),
        (
            &format!("{ok}\ntrusted_clients = [\"nobody\"]"),
            "`nobody` is not a registered",
        ),
    ];
    for (section, expected) in cases {
        let problems = tracing(section);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{section}: {problems:?}"
        );
    }
}

/// A console route and its `[console]` naming `issuer`, with `extra` appended to it.
fn console_config(issuer: &str, extra: &str) -> String {
    format!(
        r#"{MINIMAL}
[policy]
dir = "policies"

[[issuer]]
issuer = "https://idp.example"
audiences = ["gw"]
jwks_url = "https://idp.example/jwks"

[[route]]
name = "console"
path_prefix = "/console"
serve = "console"

[console]
issuer = "{issuer}"
client_id = "privgate-console"
authorization_endpoint = "https://idp.example/authorize"
token_endpoint = "https://idp.example/token"
{extra}"#
    )
}

#[test]
fn a_console_needs_its_section_a_known_issuer_and_a_fixed_https_callback() {
    let ok = r#"redirect_uri = "https://gw.example/console/callback""#;
    let console = |m: &Vec<String>| -> Vec<String> {
        m.iter()
            .filter(|m| m.contains("console"))
            .cloned()
            .collect()
    };
    let idp = "https://idp.example";
    assert_eq!(
        console(&messages(&console_config(idp, ok))),
        Vec::<String>::new()
    );
    assert!(messages(&console_config("https://other", ok))
        .iter()
        .any(|m| m.contains("console.issuer `https://other` is not a configured [[issuer]]")));
    let cases: [(&str, &str); 3] = [
        (
            r#"redirect_uri = "https://gw.example/elsewhere""#,
            "must end in the console route's `/console/callback`",
        ),
        (
            r#"redirect_uri = "http://gw.example/console/callback""#,
            "console.redirect_uri must be an https:// URL",
        ),
        (
            "redirect_uri = \"https://gw.example/console/callback\"\nidle_timeout = \"9h\"",
            "idle_timeout must be greater than 0 and at most absolute_timeout",
        ),
    ];
    for (extra, expected) in cases {
        let found = messages(&console_config(idp, extra));
        assert!(
            found.iter().any(|m| m.contains(expected)),
            "{extra}: {found:?}"
        );
    }
    let without = MINIMAL.to_owned() + "\n[policy]\ndir = \"p\"\n\n[[route]]\nname = \"c\"\npath_prefix = \"/c\"\nserve = \"console\"\n";
    assert!(
        messages(&without)
            .iter()
            .any(|m| m.contains("serve = \"console\" needs [console]")),
        "{:?}",
        messages(&without)
    );
}

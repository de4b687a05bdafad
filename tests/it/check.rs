//! `privgate check`: a good config passes; each problem names its file and exits non-zero.

use crate::harness::*;

fn check(path: &std::path::Path) -> (bool, String) {
    let run = privgate(["check".as_ref(), "--config".as_ref(), path.as_os_str()]);
    (run.ok, run.all())
}

#[test]
fn valid_config_passes() {
    let ws = Workspace::new();
    let path = ws.write(
        "privgate.toml",
        &config(&ws, "127.0.0.1:9".parse().unwrap(), "", ""),
    );
    let (ok, out) = check(&path);
    assert!(ok, "{out}");
    assert!(
        out.contains("ok (1 listener(s), 1 upstream(s), 2 route(s))"),
        "{out}"
    );
}

#[test]
fn problems_name_the_file_and_fail() {
    let ws = Workspace::new();
    let dir = ws.dir.path().display().to_string();
    let base = config(&ws, "127.0.0.1:9".parse().unwrap(), "", "");
    // (edit, file the message must name, message fragment)
    let cases = [
        (base.replace("certs/server.pem", "certs/missing.pem"), format!("{dir}/certs/missing.pem"), "cannot read"),
        (base.replace("certs/server.key.pem", "certs/client-a.key.pem"), format!("{dir}/certs/server.pem"), "does not match the key"),
        (base.replace("certs/server.pem", "certs/server.key.pem"), format!("{dir}/certs/server.key.pem"), "no PEM certificate"),
        (base.replacen("upstream = \"main\"", "upstream = \"ledger\"", 1), format!("{dir}/privgate.toml"), "upstream `ledger` is not defined"),
        (base.replace("[admin]", "[admin\n"), format!("{dir}/privgate.toml"), "invalid TOML"),
        (
            format!("{base}\n[upstream.tls]\nurl = \"https://localhost:1\"\nca = \"{dir}/nope/ca.pem\"\n"),
            format!("{dir}/nope/ca.pem"),
            "cannot read",
        ),
    ];
    for (text, file, fragment) in cases {
        let path = ws.write("privgate.toml", &text);
        let (ok, out) = check(&path);
        assert!(!ok, "check passed for a config with `{fragment}`");
        assert!(
            out.contains(&format!("{file}:")) && out.contains(fragment),
            "expected `{file}:...{fragment}` in:\n{out}"
        );
    }
}

/// Problems found after parsing point at the key they are about, `file:line:column:`,
/// counted in the file as written (comments and blank lines included).
#[test]
fn semantic_problems_name_the_line_and_column_of_their_key() {
    let ws = Workspace::new();
    let dir = ws.dir.path().display().to_string();
    let text = "# a comment first, so that lines are counted from the file's top\n\
        [[listener]]\n\
        name = \"public\"\n\
        address = \"127.0.0.1:0\"\n\
        cert = \"certs/server.pem\"\n\
        key = \"certs/server.key.pem\"\n\
        client_auth = \"required\"\n\
        \n\
        [limits]\n\
        max_json_depth = 500\n\
        \n\
        [store]\n\
        url = \"mysql://db/privgate\"\n\
        \n\
        [upstream.core]\n\
        url = \"http://127.0.0.1:9\"\n\
        \n\
        [[route]]\n\
        name = \"ok\"\n\
        path_prefix = \"/\"\n\
        upstream = \"core\"\n\
        \n\
        [[route]]\n\
        name = \"broken\"\n\
        path_prefix = \"/b\"\n\
        \x20\x20upstream = \"ledger\"\n\
        \n\
        [[issuer]]\n\
        issuer = \"https://idp.example\"\n\
        audiences = [\"api\"]\n\
        jwks_file = \"jwks.json\"\n\
        algorithms = [\"ES256\", \"none\"]\n\
        \n\
        [tracing]\n\
        endpoint = \"http://127.0.0.1:4318\"\n\
        sample_ratio = 2.0\n\
        \n\
        [[dataset]]\n\
        name = \"tx\"\n\
        source = { table = \"tx\" }\n\
        privacy_unit = \"customer_id\"\n\
        max_rows_per_unit = 0\n\
        truncate_order = \"id\"\n\
        analyst_epsilon = 1.0\n\
        global_epsilon = 1.0\n\
        \n\
        [[route]]\n\
        name = \"otp\"\n\
        path_prefix = \"/otp\"\n\
        serve = \"totp\"\n";
    let path = ws.write("privgate.toml", text);
    let (ok, out) = check(&path);
    assert!(!ok, "{out}");
    let file = format!("{dir}/privgate.toml");
    for expected in [
        format!("{file}:7:1: listener `public`: client_auth needs client_ca"),
        format!("{file}:10:1: limits.max_json_depth must be at most 128"),
        format!("{file}:13:1: store.url must be sqlite://PATH"),
        format!("{file}:26:3: route `broken`: upstream `ledger` is not defined"),
        format!("{file}:32:1: issuer `https://idp.example`: algorithm `none` is not accepted"),
        // Placed by the key the message starts with, and by the dataset's table.
        format!("{file}:36:1: tracing.sample_ratio must be between 0 and 1"),
        format!("{file}:38:1: dataset `tx`: max_rows_per_unit must be 1 to 10000"),
        // Placed by the table the message names.
        format!("{file}:47:1: route `otp`: serve = \"totp\" needs [totp]"),
    ] {
        assert!(out.contains(&expected), "expected `{expected}` in:\n{out}");
    }
}

#[test]
fn missing_config_file_is_named() {
    let (ok, out) = check(std::path::Path::new("/nonexistent/privgate.toml"));
    assert!(!ok);
    assert!(
        out.contains("/nonexistent/privgate.toml: cannot read"),
        "{out}"
    );
}

/// Every configuration `serve` refuses, `check` refuses first, with the same words: each
/// case is a rule start-up depends on, and both commands must stop at the same gate.
#[test]
fn check_refuses_everything_serve_refuses_with_the_same_message() {
    let ws = Workspace::new();
    let base = config(&ws, "127.0.0.1:9".parse().unwrap(), "", "");
    let keys = "\n[keys]\nkek = { source = \"key_file\", path = \"kek.hex\" }\n";
    audit_keys(&ws, &["keys-k", "keys-p"]);
    ws.write("short.key", "too short");
    let audit = |checkpoint: &str, pseudonym: &str| {
        format!(
            "{base}\n[audit]\ndir = \"audit\"\ncheckpoint_sink = \"sink/c.jsonl\"\n\
             checkpoint_key_file = \"{checkpoint}\"\npseudonym_key_file = \"{pseudonym}\"\n"
        )
    };
    let webhook = |secret: &str| {
        format!(
            "{base}\n[risk]\n[risk.webhook]\nurl = \"https://siem.example/events\"\n\
             secret_file = \"{secret}\"\n"
        )
    };
    // (config text, what the refusal says)
    let cases = [
        (format!("{base}{keys}"), "[keys] needs [policy]"),
        (
            format!("{base}\n[fhe]\n"),
            "[fhe] needs [policy] and [keys]",
        ),
        (
            format!("{base}{keys}\n[fhe]\n"),
            "[fhe] needs [policy] and [keys]",
        ),
        (audit("missing.key", "keys-p"), "cannot read audit key"),
        (audit("short.key", "keys-p"), "audit key must be at least"),
        (audit("keys-k", "short.key"), "audit key must be at least"),
        (
            webhook("missing-webhook.key"),
            "missing-webhook.key: cannot read",
        ),
        (
            webhook("short.key"),
            "webhook secret must be at least 32 bytes",
        ),
    ];
    for (text, fragment) in cases {
        let path = ws.write("privgate.toml", &text);
        let (ok, out) = check(&path);
        assert!(!ok, "check passed a config `serve` refuses ({fragment})");
        let refusal = out
            .lines()
            .find(|line| line.contains(fragment))
            .unwrap_or_else(|| panic!("expected `{fragment}` in:\n{out}"));
        let serve = privgate(["serve".as_ref(), "--config".as_ref(), path.as_os_str()]);
        assert!(
            !serve.ok && serve.all().contains(refusal),
            "serve did not refuse with `{refusal}`:\n{}",
            serve.all()
        );
    }
}

/// `check --print-effective` prints the configuration as the gateway runs it (defaults
/// filled in) and never a secret: not the contents of any secret file, not an environment
/// variable's passphrase, not credentials or queries in any URL.
#[test]
fn the_effective_configuration_shows_defaults_and_no_secret() {
    let ws = Workspace::new();
    let es = crate::identity::ec_key("es-1");
    let jwks = ws.write("jwks.json", &crate::identity::jwks(&[&es]));
    let secrets = [
        "hmac-secret-0123456789abcdef0123456789abcdef",
        "introspection-secret-Zq9",
        "webhook-secret-0123456789abcdef0123456789abcdef",
        "pg-password-Kx7",
        "url-password-Pw3",
        "query-token-Qt5",
        "env-passphrase-Ev8-long-enough-for-argon",
    ];
    let hmac = ws.write("hmac.secret", secrets[0]);
    let introspection = ws.write("introspection.secret", secrets[1]);
    let webhook = ws.write("webhook.secret", secrets[2]);
    let password = ws.write("pg.password", secrets[3]);
    let ca = ws.path("certs/ca.pem");
    let extra = format!(
        r#"
[store]
url = "postgres://privgate@db.internal/privgate"
password_file = "{password}"

[keys]
kek = {{ source = "passphrase_env", var = "PRIVGATE_TEST_KEK" }}

[[issuer]]
issuer = "{ISS}"
audiences = ["{AUD}"]
jwks_file = "{jwks}"
algorithms = ["ES256", "HS256"]
shared_secret_file = "{hmac}"
introspection_url = "https://introspector:{u}@idp.internal/introspect?token={q}"
introspection_client_id = "privgate"
introspection_secret_file = "{introspection}"
ca = "{ca}"

[tracing]
endpoint = "https://otel:{u}@collector.internal:4318/v1/traces"
ca = "{ca}"

[risk.webhook]
url = "https://siem.internal/events?api_key={q}"
secret_file = "{webhook}"
ca = "{ca}"
"#,
        password = password.display(),
        jwks = jwks.display(),
        hmac = hmac.display(),
        introspection = introspection.display(),
        webhook = webhook.display(),
        ca = ca.display(),
        u = secrets[4],
        q = secrets[5],
    );
    let path = ws.write(
        "privgate.toml",
        &config(&ws, "127.0.0.1:9".parse().unwrap(), "", &extra),
    );
    let run = privgate_with_env(
        [
            "check",
            "--print-effective",
            "--config",
            path.to_str().unwrap(),
        ],
        &[("PRIVGATE_TEST_KEK", secrets[6])],
    );
    let (stdout, stderr) = (&run.stdout, &run.stderr);
    assert!(run.ok, "{stdout}{stderr}");
    assert!(stderr.contains(": ok ("), "{stderr}");
    for secret in secrets {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "`{secret}` printed:\n{stdout}{stderr}"
        );
    }
    // It is TOML, with defaults the file left out and the credentials' places marked.
    let effective: toml::Value = toml::from_str(stdout).unwrap();
    assert_eq!(
        effective["limits"]["max_json_depth"].as_integer(),
        Some(64),
        "{stdout}"
    );
    assert_eq!(
        effective["tracing"]["endpoint"].as_str(),
        Some("https://<redacted>@collector.internal:4318/v1/traces")
    );
    assert_eq!(
        effective["risk"]["webhook"]["url"].as_str(),
        Some("https://siem.internal/events?<redacted>")
    );
    assert_eq!(
        effective["keys"]["kek"]["var"].as_str(),
        Some("PRIVGATE_TEST_KEK")
    );
}

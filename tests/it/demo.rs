//! `privgate demo` from an empty directory: certificates, config, sample upstream, gateway.

use crate::harness::*;
use http::StatusCode;
use std::process::Command;

/// Requests the test makes through the demo gateway, each one audit record (the last
/// three: analytics queries; seven for the decided account, subject and payment checks;
/// one for the refused second-factor enrolment).
#[cfg(feature = "fhe")]
const AUDITED: usize = 17 + FHE_AUDITED + RISK_AUDITED;
#[cfg(not(feature = "fhe"))]
const AUDITED: usize = 17 + RISK_AUDITED;

/// Audit records of the printed early-warning steps: 30 reads, the challenged read and the
/// stepped-up one.
const RISK_AUDITED: usize = 30 + 2;

/// The printed early-warning steps, run as printed: one token reads customers until the
/// bulk-reading threshold asks for a second factor, `risk show` lists the climb, and the
/// same user with a second factor reads on.
fn risk_steps_run_as_printed(printed: &str, ws: &Workspace) {
    let (out, _) = run_printed_steps(printed, ws, "# early warning", 5);
    // Within the threshold, then challenged: the climb is the caller's own reads.
    assert!(out.contains("customer 1000: 200"), "{out}");
    assert!(out.contains("customer 1029: 401"), "{out}");
    assert!(
        out.contains("insufficient_user_authentication")
            && out.contains("with a second factor: 200"),
        "{out}"
    );
    // `risk show`'s table: window, indicator, value; the shortest window comes first.
    let climbed = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.get(1) == Some(&"distinct_subjects"))
        .and_then(|words| words.get(2)?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(climbed > 25.0, "{out}");
}

/// Audit records of the printed FHE steps: two creations, six contributions (each after
/// `privgate fhe contribute` read the public key and the aggregate's status), three
/// releases, one status read.
#[cfg(feature = "fhe")]
const FHE_AUDITED: usize = 2 + 6 * 3 + 3 + 1;

/// The printed encrypted-sum steps, run as printed (bash, curl and this binary): the
/// release is refused below the threshold, then answers exactly the total, and a DP-noised
/// release answers.
/// Runs the printed block of steps that starts with the comment `marker` (up to the next
/// blank line) as printed, in bash; asserts it succeeded and has at least `min` lines.
fn run_printed_steps(printed: &str, ws: &Workspace, marker: &str, min: usize) -> (String, String) {
    let steps: Vec<&str> = printed
        .lines()
        .skip_while(|l| !l.contains(marker))
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(steps.len() > min, "{printed}");
    let run = tokio::task::block_in_place(|| {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &steps.join("\n")])
            .current_dir(ws.path("demo-data").parent().unwrap())
            .output()
            .unwrap()
    });
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{out}\n{err}");
    (out, err)
}

#[cfg(feature = "fhe")]
fn fhe_steps_run_as_printed(printed: &str, ws: &Workspace) {
    let (out, err) = run_printed_steps(printed, ws, "# encrypted sums", 10);
    assert!(out.contains("threshold_not_met"), "{out}");
    assert!(out.contains(r#""mode":"exact","total":"5160""#), "{out}");
    assert!(out.contains(r#""mode":"dp","total":""#), "{out}");
    assert_eq!(
        err.matches("encrypted and proved 16 bits").count(),
        6,
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_from_an_empty_directory_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin, upstream) = (free_port(), free_port(), free_port());
    let (port_s, admin_s, upstream_s) = (port.to_string(), admin.to_string(), upstream.to_string());
    let (mut child, mut stdout, printed) = spawn_demo(
        dir.path(),
        &[
            "--port",
            &port_s,
            "--admin-port",
            &admin_s,
            "--upstream-port",
            &upstream_s,
        ],
    );
    assert!(
        printed.contains(&format!("https://localhost:{port}/customers/42")),
        "{printed}"
    );

    let ws = Workspace { dir };
    assert!(
        ws.path("demo-data/privgate.toml").exists(),
        "no demo config written"
    );
    secrets_are_owner_only(&ws.path("demo-data"));
    let anonymous = https_client_trusting(&ws, "demo-data/certs/ca.pem");
    let reply = get(
        &anonymous,
        &format!("https://localhost:{port}/customers/42"),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "customer routes are policy-decided"
    );
    let teller = https_client_with(
        &ws,
        "demo-data/certs/ca.pem",
        Some("demo-data/certs/client-b"),
    );
    let reply = get(&teller, &format!("https://localhost:{port}/customers/42")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let customer = reply.json();
    assert_eq!(customer["id"], 42);
    // Tellers see customer data masked (the shipped policies and field rules).
    let email = customer["email"].as_str().unwrap();
    assert!(
        email.ends_with(".com") && email.contains("@*******."),
        "{email}"
    );
    assert!(customer["iban"].as_str().unwrap().starts_with("GB**"));
    let reply = get(
        &teller,
        &format!("https://localhost:{port}/customers/42/accounts"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.json()["accounts"][0]["customer_id"] == 42);
    let partner = https_client_with(
        &ws,
        "demo-data/certs/ca.pem",
        Some("demo-data/certs/client-a"),
    );
    let reply = get(
        &partner,
        &format!("https://localhost:{port}/accounts/7/transactions"),
    )
    .await;
    assert_eq!(reply.error_code(), "consent_required");
    // Account 7 is not customer 7's: the subject is the owner the core bank names, so
    // customer 7's consent does not open it and the owner's does (the printed steps).
    let owner = privgate::demo::data::Bank::generate().accounts[6].customer_id;
    assert_ne!(owner, 7);
    assert!(
        printed.contains(&format!("grant --subject {owner} ")),
        "{printed}"
    );
    let config = ws.path("demo-data/privgate.toml");
    for (subject, status) in [
        ("7", StatusCode::FORBIDDEN),
        (&*owner.to_string(), StatusCode::OK),
    ] {
        grant_account_information(&config, subject);
        // Account 7's owner was read just above and may be cached for the revocation
        // window: the CLI's grant holds here once it has passed.
        after_revocation_window().await;
        let reply = get(
            &partner,
            &format!("https://localhost:{port}/accounts/7/transactions"),
        )
        .await;
        assert_eq!(reply.status, status, "consent of customer {subject}");
    }
    // A customer id has one spelling: the upstream would read 042 as 42, the gateway refuses.
    let reply = get(&teller, &format!("https://localhost:{port}/customers/042")).await;
    assert_eq!(reply.error_code(), "invalid_subject");

    // Payments are decided on their amount: nothing without credentials, a second factor
    // above 1,000.00 (the printed steps).
    assert!(printed.contains("tokens/payments.jwt"), "{printed}");
    let payments = format!("https://localhost:{port}/payments");
    for (token, amount, status) in [
        (None, 1250, StatusCode::UNAUTHORIZED),
        (Some("payments"), 1250, StatusCode::CREATED),
        (Some("payments"), 1_000_000_000, StatusCode::UNAUTHORIZED),
        (Some("payments-mfa"), 1_000_000_000, StatusCode::CREATED),
    ] {
        let mut req = http::Request::post(&payments).header("content-type", "application/json");
        if let Some(token) = token {
            let jwt =
                std::fs::read_to_string(ws.path(&format!("demo-data/tokens/{token}.jwt"))).unwrap();
            req = req.header("authorization", format!("Bearer {jwt}"));
        }
        let body = format!(
            r#"{{"from_account":7,"to_iban":"GB33BUKB20201555555555","amount_minor":{amount},"currency":"GBP"}}"#
        );
        let reply = send(
            &anonymous,
            req.body(http_body_util::Full::new(body.into())).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, status, "{token:?} {amount}");
        if token.is_some() && status == StatusCode::UNAUTHORIZED {
            assert_eq!(reply.error_code(), "step_up_required");
            assert!(reply.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("insufficient_user_authentication"));
        }
    }

    // Token identity: the printed step-up example answers as printed.
    assert!(printed.contains("tokens/with-mfa.jwt"), "{printed}");
    let review = format!("https://localhost:{port}/review/customers/42");
    for (token, status) in [
        ("password-only", StatusCode::UNAUTHORIZED),
        ("with-mfa", StatusCode::OK),
    ] {
        let jwt =
            std::fs::read_to_string(ws.path(&format!("demo-data/tokens/{token}.jwt"))).unwrap();
        let req = http::Request::get(&review)
            .header("authorization", format!("Bearer {jwt}"))
            .body(http_body_util::Full::default())
            .unwrap();
        let reply = send(&anonymous, req).await.unwrap();
        assert_eq!(reply.status, status, "{token}");
        if status == StatusCode::OK {
            // Decided like /customers: the fraud analyst with a fresh second factor sees the
            // card number in clear, through the route's own field rules.
            let record = reply.json();
            assert_eq!(record["id"], 42);
            let pan = record["card_number"].as_str().unwrap();
            assert!(
                pan.len() == 16 && pan.bytes().all(|b| b.is_ascii_digit()),
                "{pan}"
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(
                reply.headers["www-authenticate"],
                "Bearer error=\"insufficient_user_authentication\", error_description=\"A \
                 different authentication level is required\", max_age=300"
            );
        }
    }

    // The password-only token cannot enroll a second factor for itself; the printed
    // dev-enroll then works at once (the gateway finds the new keyring key).
    let enroll = format!("https://localhost:{port}/mfa/v1/totp/enroll");
    assert!(printed.contains("/mfa/v1/totp/enroll"), "{printed}");
    let jwt = std::fs::read_to_string(ws.path("demo-data/tokens/password-only.jwt")).unwrap();
    let req = http::Request::post(&enroll)
        .header("authorization", format!("Bearer {jwt}"))
        .body(http_body_util::Full::default())
        .unwrap();
    let reply = send(&anonymous, req).await.unwrap();
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::UNAUTHORIZED, "step_up_required")
    );

    // Analytics: the printed count by city answers with intervals, through `privgate query`.
    let count = "SELECT city, COUNT(*) FROM transactions GROUP BY city";
    let keyed = "SELECT merchant, COUNT(*) FROM transactions GROUP BY merchant";
    let median = "SELECT MEDIAN(balance_minor) FROM accounts";
    for sql in [count, keyed, median] {
        assert!(printed.contains(sql), "{sql}: {printed}");
    }
    // The Python client's example and the discovery calls are among the printed steps.
    for step in [
        "from privgate_client import Client",
        "docs/analytics_example.py",
        "/analytics/v1/datasets",
        "--output csv",
        // Where to see the dashboard, the alert rules and a trace (README, "Operations").
        "docs/grafana-dashboard.json",
        "docs/alerts.yml",
        "[tracing]",
        "/v1/traces",
    ] {
        assert!(printed.contains(step), "{step}: {printed}");
    }
    let d = ws.path("demo-data");
    let query = |token: &str, args: &[&str]| {
        let mut all = vec![
            "query".to_owned(),
            "--url".to_owned(),
            format!("https://localhost:{port}/analytics/v1"),
            "--ca".to_owned(),
            d.join("certs/ca.pem").display().to_string(),
            "--token-file".to_owned(),
            d.join(token).display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let out = tokio::task::block_in_place(|| privgate(all));
        assert!(out.ok, "{}", out.all());
        out.stdout
    };
    let out = query(
        "tokens/analyst.jwt",
        &["--dataset", "transactions", "--epsilon", "0.5", count],
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("London") && l.contains("+/-")),
        "{out}"
    );
    // Merchants (a key column): the common ones pass OpenDP's threshold, the market stalls
    // one customer each used never do.
    let out = query(
        "tokens/analyst.jwt",
        &[
            "--dataset",
            "transactions",
            "--epsilon",
            "1",
            "--delta",
            "1e-6",
            keyed,
        ],
    );
    assert!(
        out.contains("keys released")
            && out.contains("Grocer Ltd")
            && !out.contains("Market stall"),
        "{out}"
    );
    // Accounts come from a CSV file; the senior analyst's tier leaves epsilon 5.5 of 6.
    let out = query(
        "tokens/senior-analyst.jwt",
        &["--dataset", "accounts", "--epsilon", "0.5", median],
    );
    assert!(out.contains("budget left: epsilon 5.5"), "{out}");

    #[cfg(feature = "fhe")]
    fhe_steps_run_as_printed(&printed, &ws);
    risk_steps_run_as_printed(&printed, &ws);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
    let status = child.wait().unwrap();
    assert!(status.success(), "demo exit status {status}");
    assert!(rest.contains("demo stopped"), "{rest}");

    // Every request went into the audit chain, which verifies.
    let verified = privgate([
        "audit".as_ref(),
        "verify".as_ref(),
        "--config".as_ref(),
        ws.path("demo-data/privgate.toml").as_os_str(),
    ]);
    assert!(
        verified.ok && verified.stdout.contains(&format!("ok, {AUDITED} records")),
        "{}",
        verified.all()
    );
}

/// Every secret the demo writes (keys, signed tokens, certificate private keys, FHE client
/// keys) is owner-only, and so are the directories that hold them.
fn secrets_are_owner_only(demo: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut secrets = 0;
    for dir in ["keys", "tokens"] {
        assert_eq!(mode(&demo.join(dir)), 0o700, "{dir}/");
        for entry in std::fs::read_dir(demo.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                secrets += 1;
            }
        }
    }
    for entry in std::fs::read_dir(demo.join("certs")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".key.pem") {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            secrets += 1;
        }
    }
    // The issuer key, the KEK, two audit keys, at least the three login tokens, TLS keys.
    assert!(secrets >= 10, "only {secrets} secret files found");
}

//! The web console in a real browser: `privgate demo` (gateway, demo identity provider and
//! sample bank) driven through Debian's `chromium` by `chromedriver` over WebDriver
//! (fantoccini), plus the protocol checks a browser hides (cookies, headers, the OIDC
//! callback's refusals) with a plain HTTPS client.
//!
//! Without chromium and chromedriver the browser test is skipped with a message, unless
//! `PRIVGATE_REQUIRE_BROWSER=1` (as in CI): then their absence fails it. Screenshots of
//! each page go to `target/console-screenshots/` (docs/console.md shows copies).

mod approvals;
mod browser;
mod oversight;
mod protocol;
mod replicas;
mod steps;
#[cfg(feature = "fhe")]
mod sums;

use crate::harness::*;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout};

/// A running `privgate demo` in a temporary directory; interrupted when dropped.
pub struct Demo {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    pub ws: Workspace,
    pub port: u16,
    /// What the demo printed before it was ready (its instructions).
    pub printed: String,
}

impl Demo {
    /// Starts the demo without encrypted sums (their key set takes a minute to make).
    pub fn start() -> Self {
        Self::start_with(&["--no-fhe"])
    }

    /// Starts the demo with encrypted sums (makes their key set first).
    #[cfg(feature = "fhe")]
    pub fn start_with_fhe() -> Self {
        Self::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let ports = [free_port(), free_port(), free_port()].map(|p| p.to_string());
        let port_s = port.to_string();
        let mut args = vec![
            "--port",
            &port_s,
            "--admin-port",
            &ports[0],
            "--upstream-port",
            &ports[1],
            "--idp-port",
            &ports[2],
        ];
        args.extend_from_slice(extra);
        let (child, stdout, printed) = spawn_demo(dir.path(), &args);
        Demo {
            child,
            _stdout: stdout,
            ws: Workspace { dir },
            port,
            printed,
        }
    }

    /// An address of the console.
    pub fn console(&self, path: &str) -> String {
        format!("https://localhost:{}/console{path}", self.port)
    }

    /// `privgate ARGS... --config demo-data/privgate.toml`-style commands run here.
    pub fn config(&self) -> PathBuf {
        self.ws.path("demo-data/privgate.toml")
    }

    /// Asks the demo to reload its configuration (SIGHUP), and waits for it to apply.
    pub fn reload(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.child.wait();
    }
}

/// Where screenshots go: `target/console-screenshots` beside the test binary's target.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every browser scenario against one demo (starting one takes seconds; each scenario
/// signs in afresh, so none depends on another's session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_browser() {
    let Some(driver) = browser::Driver::start() else {
        return;
    };
    // With encrypted sums where the build has them: a release officer releases a total.
    #[cfg(feature = "fhe")]
    let demo = Demo::start_with_fhe();
    #[cfg(not(feature = "fhe"))]
    let demo = Demo::start();
    let browser = driver.session().await;
    steps::each_role_sees_exactly_what_policy_allows(&demo, &browser).await;
    steps::a_revoked_consent_refuses_the_next_api_call(&demo, &browser).await;
    steps::the_budget_meter_moves_after_spending(&demo, &browser).await;
    steps::a_form_without_the_csrf_token_is_refused(&demo, &browser).await;
    steps::a_security_officer_reviews_decisions(&demo, &browser).await;
    steps::a_custodian_approves_after_stepping_up(&demo, &browser).await;
    #[cfg(feature = "fhe")]
    steps::a_release_officer_releases_a_total(&demo, &browser).await;
    steps::an_expired_session_is_sent_to_sign_in(&demo, &browser).await;
    browser.close().await.unwrap();
}

/// The same demo through a plain HTTPS client: cookie attributes, headers, the sign-in
/// flow's refusals and the pages' decisions without a browser in the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_protocol() {
    let demo = Demo::start();
    protocol::pages_need_a_session_and_carry_strict_headers(&demo).await;
    protocol::sign_in_uses_pkce_and_a_one_time_lax_cookie(&demo).await;
    protocol::a_callback_not_started_here_is_refused(&demo).await;
    protocol::a_made_up_session_cookie_is_not_a_session(&demo).await;
}

/// Two replicas on the demo's store: a session opened on one works on the other, a
/// sign-out on either ends it on both, and a callback may land on either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sessions_across_replicas() {
    let demo = Demo::start();
    replicas::a_session_works_on_every_replica_and_ends_on_all(&demo).await;
}

/// The security officer's pages through a plain HTTPS client: filters, explanations,
/// verification, who-saw, and the refusals of other roles and forged posts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_oversight() {
    let demo = Demo::start();
    let owner = steps::account_owner(&demo);
    // The partner reads the owner's account without consent (refused), then with it.
    assert_eq!(
        steps::partner_reads_account_7(&demo).await,
        http::StatusCode::FORBIDDEN
    );
    grant_account_information(&demo.config(), &owner);
    assert_eq!(
        steps::partner_reads_account_7(&demo).await,
        http::StatusCode::OK
    );
    oversight::decisions_filter_the_trail_and_explain_one_record(&demo).await;
    oversight::policies_show_the_set_its_cases_and_a_hypothetical(&demo).await;
    oversight::audit_verifies_replicas_and_tells_who_saw(&demo, &owner).await;
    oversight::overview_shows_traffic_and_reloads(&demo).await;
}

/// The Keys page's approval queue and the console's step-up through a plain HTTPS client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_approvals_and_step_up() {
    let demo = Demo::start();
    approvals::a_custodian_approves_after_stepping_up_and_denies(&demo).await;
    approvals::consent_revocations_wait_for_a_second_approver(&demo).await;
}

/// The Encrypted sums page against a demo with FHE keys: threshold progress, the release
/// button only for a release officer once the threshold is met, a forged release refused,
/// and a release through the FHE API's own path.
#[cfg(feature = "fhe")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_encrypted_sums() {
    let demo = Demo::start_with_fhe();
    sums::a_release_officer_releases_once_the_threshold_is_met(&demo).await;
}

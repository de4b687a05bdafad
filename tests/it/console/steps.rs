//! The browser scenarios: each signs in afresh at the demo identity provider as one demo
//! person and checks what the pages show and do.

use super::Demo;
use crate::harness::*;
use fantoccini::{Client, Locator};
use http::StatusCode;
use std::time::Duration;

/// The pages of the console: (path, `<h1>` title).
const PAGES: [(&str, &str); 8] = [
    ("/overview", "Overview"),
    ("/decisions", "Decisions"),
    ("/policies", "Policies"),
    ("/consent", "Consent"),
    ("/keys", "Keys"),
    ("/audit", "Audit"),
    ("/analytics", "Analytics"),
    ("/sums", "Encrypted sums"),
];

/// Signs in as `person` (an id on the demo identity provider's page) from a browser with
/// no session, and waits until the console's first page for them has loaded.
async fn sign_in(demo: &Demo, browser: &Client, person: &str, screenshots: bool) {
    browser.goto(&demo.console("/overview")).await.unwrap();
    browser.delete_all_cookies().await.unwrap();
    browser.goto(&demo.console("/overview")).await.unwrap();
    let url = browser.current_url().await.unwrap();
    assert!(url.path().ends_with("/console/sign-in"), "{url}");
    if screenshots {
        screenshot(browser, "sign-in").await;
    }
    click(browser, Locator::Id("sign-in")).await;
    let button = browser
        .wait()
        .for_element(Locator::Id(&format!("person-{person}")))
        .await
        .unwrap();
    if screenshots {
        screenshot(browser, "identity-provider").await;
    }
    button.click().await.unwrap();
    // The callback's page refreshes to the console; wait for a console page's menu.
    for _ in 0..100 {
        let url = browser.current_url().await.unwrap();
        let on_console = !url.path().ends_with("/callback") && url.path().starts_with("/console/");
        if on_console && browser.find(Locator::Css("nav")).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{person}: never landed on a console page: {}",
        browser.source().await.unwrap()
    );
}

/// Waits until the browser is on `path` (a form's answer or redirect has loaded).
async fn wait_for_path(browser: &Client, path: &str) {
    for _ in 0..100 {
        if browser.current_url().await.unwrap().path() == path {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "never reached {path}: {}",
        browser.current_url().await.unwrap()
    );
}

/// Waits until the element `css` says `expected` (the next page has loaded); returns its
/// text.
async fn wait_for_text(browser: &Client, css: &str, expected: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(element) = browser.find(Locator::Css(css)).await {
            last = element.text().await.unwrap_or_default();
            if last.contains(expected) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = browser.source().await.unwrap_or_default();
    panic!("{css} never said {expected:?} (last: {last:?}): {page}");
}

async fn click(browser: &Client, locator: Locator<'_>) {
    browser.find(locator).await.unwrap().click().await.unwrap();
}

async fn menu(browser: &Client) -> Vec<String> {
    let mut titles = Vec::new();
    for link in browser.find_all(Locator::Css("nav a")).await.unwrap() {
        titles.push(link.text().await.unwrap());
    }
    titles
}

async fn text(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("no {css} on the page"))
        .text()
        .await
        .unwrap()
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(super::screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// A teller sees the overview only (no keys page), an analyst only analytics, and every
/// page the menu leaves out is refused by its URL too.
pub async fn each_role_sees_exactly_what_policy_allows(demo: &Demo, browser: &Client) {
    let people: [(&str, &[&str]); 6] = [
        ("teller", &["Overview"]),
        ("consent_admin", &["Overview", "Consent"]),
        ("key_custodian", &["Overview", "Keys"]),
        ("analyst", &["Analytics"]),
        (
            "security_officer",
            &[
                "Overview",
                "Decisions",
                "Policies",
                "Audit",
                "Encrypted sums",
            ],
        ),
        ("release_officer", &["Encrypted sums"]),
    ];
    for (i, (person, allowed)) in people.into_iter().enumerate() {
        sign_in(demo, browser, person, i == 0).await;
        // A build without the `fhe` feature serves no Encrypted sums page.
        let allowed: Vec<&str> = allowed
            .iter()
            .copied()
            .filter(|t| *t != "Encrypted sums" || cfg!(feature = "fhe"))
            .collect();
        assert_eq!(menu(browser).await, allowed, "{person}'s menu");
        if allowed.is_empty() {
            continue;
        }
        for (path, title) in PAGES {
            if path == "/sums" && !cfg!(feature = "fhe") {
                continue;
            }
            browser.goto(&demo.console(path)).await.unwrap();
            let heading = text(browser, "h1").await;
            if allowed.contains(&title) {
                assert_eq!(heading, title, "{person} on {path}");
            } else {
                assert_eq!(heading, "Not available (403)", "{person} on {path}");
                assert_eq!(
                    text(browser, "#refusal-code").await,
                    "forbidden",
                    "{person} on {path}"
                );
            }
        }
        if person == "key_custodian" {
            browser.goto(&demo.console("/overview")).await.unwrap();
            assert_eq!(text(browser, "#readiness").await, "ready");
            screenshot(browser, "overview").await;
            browser.goto(&demo.console("/keys")).await.unwrap();
            assert!(text(browser, "#keys")
                .await
                .contains("Uses against the bound"));
            screenshot(browser, "keys").await;
        }
    }
    // Signing out ends the session: the next page asks to sign in.
    browser.goto(&demo.console("/overview")).await.unwrap();
    if text(browser, "h1").await != "Overview" {
        browser.goto(&demo.console("/sums")).await.unwrap();
    }
    click(browser, Locator::Css(".who button")).await;
    wait_for_path(browser, "/console/sign-in").await;
    browser.goto(&demo.console("/analytics")).await.unwrap();
    let url = browser.current_url().await.unwrap();
    assert!(url.path().ends_with("/console/sign-in"), "{url}");
}

/// The account owner the demo's printed consent steps grant for (`grant --subject N`,
/// the second such line: the first is the wrong customer on purpose).
pub(super) fn account_owner(demo: &Demo) -> String {
    let line = demo
        .printed
        .lines()
        .filter(|l| l.contains("grant --subject"))
        .nth(1)
        .unwrap_or_else(|| panic!("{}", demo.printed));
    line.split_whitespace()
        .skip_while(|w| *w != "--subject")
        .nth(1)
        .unwrap()
        .to_owned()
}

pub(super) async fn partner_reads_account_7(demo: &Demo) -> StatusCode {
    after_revocation_window().await;
    let partner = https_client_with(
        &demo.ws,
        "demo-data/certs/ca.pem",
        Some("demo-data/certs/client-a"),
    );
    let url = format!("https://localhost:{}/accounts/7/transactions", demo.port);
    get(&partner, &url).await.status
}

/// A consent administrator revokes the owner's consent in the console; the partner's very
/// next call is refused.
pub async fn a_revoked_consent_refuses_the_next_api_call(demo: &Demo, browser: &Client) {
    let owner = account_owner(demo);
    grant_account_information(&demo.config(), &owner);
    assert_eq!(partner_reads_account_7(demo).await, StatusCode::OK);

    sign_in(demo, browser, "consent_admin", false).await;
    browser
        .goto(&demo.console(&format!("/consent?subject={owner}")))
        .await
        .unwrap();
    assert_eq!(text(browser, "#consents td.status").await, "Authorised");
    screenshot(browser, "consent").await;
    click(browser, Locator::Css("#consents button.danger")).await;
    assert!(wait_for_text(browser, "#notice", "Consent revoked")
        .await
        .starts_with("Consent revoked"));
    assert_eq!(text(browser, "#consents td.status").await, "Revoked");
    assert!(browser
        .find(Locator::Css("#consents button.danger"))
        .await
        .is_err());

    assert_eq!(partner_reads_account_7(demo).await, StatusCode::FORBIDDEN);
}

/// The analyst's meter: a dry run costs nothing, a query moves it by its epsilon.
pub async fn the_budget_meter_moves_after_spending(demo: &Demo, browser: &Client) {
    sign_in(demo, browser, "analyst", false).await;
    assert_eq!(
        text(browser, "h1").await,
        "Analytics",
        "an analyst lands on analytics"
    );
    let left = |text: String| -> f64 {
        text.trim_start_matches("ε left ")
            .parse()
            .unwrap_or_else(|_| panic!("{text}"))
    };
    let meter = "#budget-transactions .epsilon-left";
    let before = left(text(browser, meter).await);
    let ask = |button: &'static str, outcome: &'static str| async move {
        let dataset = browser.find(Locator::Id("dataset")).await.unwrap();
        dataset.select_by_value("transactions").await.unwrap();
        let sql = browser.find(Locator::Id("sql")).await.unwrap();
        sql.clear().await.unwrap();
        sql.send_keys("SELECT COUNT(*) FROM transactions")
            .await
            .unwrap();
        let epsilon = browser.find(Locator::Id("epsilon")).await.unwrap();
        epsilon.clear().await.unwrap();
        epsilon.send_keys("0.5").await.unwrap();
        click(browser, Locator::Id(button)).await;
        wait_for_text(browser, "#outcome", outcome).await;
    };
    ask("dry-run", "Dry run").await;
    assert!(text(browser, "#answer").await.contains("dry_run"));
    assert_eq!(
        left(text(browser, meter).await),
        before,
        "a dry run spends nothing"
    );
    ask("run", "Answer").await;
    let after = left(text(browser, meter).await);
    assert!((before - after - 0.5).abs() < 1e-9, "{before} -> {after}");
    screenshot(browser, "analytics").await;
}

/// A revoke form whose CSRF token is not the session's is refused, and nothing changes.
pub async fn a_form_without_the_csrf_token_is_refused(demo: &Demo, browser: &Client) {
    let owner = account_owner(demo);
    grant_account_information(&demo.config(), &owner);
    sign_in(demo, browser, "consent_admin", false).await;
    browser
        .goto(&demo.console(&format!("/consent?subject={owner}")))
        .await
        .unwrap();
    browser
        .execute(
            "document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged')",
            vec![],
        )
        .await
        .unwrap();
    click(browser, Locator::Css("#consents button.danger")).await;
    wait_for_text(browser, "#refusal-code", "form_refused").await;
    // Still in force: the partner reads on.
    assert_eq!(partner_reads_account_7(demo).await, StatusCode::OK);
}

/// With a 2-second idle timeout (the config reloaded), a session left alone is sent to
/// sign in, told why.
pub async fn an_expired_session_is_sent_to_sign_in(demo: &Demo, browser: &Client) {
    let config = std::fs::read_to_string(demo.config()).unwrap();
    let short = config.replacen("[console]\n", "[console]\nidle_timeout = \"2s\"\n", 1);
    assert_ne!(config, short);
    std::fs::write(demo.config(), short).unwrap();
    demo.reload();
    sign_in(demo, browser, "teller", false).await;
    assert_eq!(text(browser, "h1").await, "Overview");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    browser.goto(&demo.console("/overview")).await.unwrap();
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/console/sign-in", "{url}");
    assert_eq!(url.query(), Some("ended=1"));
    assert!(text(browser, "#session-ended")
        .await
        .contains("session has ended"));
}

/// A security officer filters the decisions to refusals and explains one, explains a
/// hypothetical request on the Policies page, and asks who saw the account owner on the
/// Audit page (after the partner read their account).
pub async fn a_security_officer_reviews_decisions(demo: &Demo, browser: &Client) {
    let owner = account_owner(demo);
    partner_reads_account_7(demo).await;
    sign_in(demo, browser, "security_officer", false).await;
    browser.goto(&demo.console("/decisions")).await.unwrap();
    browser
        .find(Locator::Id("decision"))
        .await
        .unwrap()
        .select_by_value("deny")
        .await
        .unwrap();
    click(browser, Locator::Id("filter")).await;
    // The filtered page has loaded once the address carries the filter.
    for _ in 0..100 {
        let url = browser.current_url().await.unwrap();
        if url.query().is_some_and(|q| q.contains("decision=deny")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let decisions = text(browser, "#decisions tbody").await;
    assert!(
        decisions.contains("deny") && !decisions.contains("allow"),
        "{decisions}"
    );
    click(browser, Locator::Css("#decisions tbody a")).await;
    assert_eq!(
        wait_for_text(browser, "#explained-decision", "deny").await,
        "deny"
    );
    screenshot(browser, "decisions").await;

    browser.goto(&demo.console("/policies")).await.unwrap();
    assert!(text(browser, "#case-results").await.ends_with("pass"));
    let roles = browser.find(Locator::Id("roles")).await.unwrap();
    roles.clear().await.unwrap();
    roles.send_keys("partner").await.unwrap();
    let consent = browser.find(Locator::Id("consent")).await.unwrap();
    consent.send_keys("ReadAccountsBasic").await.unwrap();
    click(browser, Locator::Id("explain-button")).await;
    let route = wait_for_text(browser, "#explained-route", "by").await;
    assert!(
        route.starts_with("ALLOW") || route.starts_with("DENY"),
        "{route}"
    );
    screenshot(browser, "policies").await;

    browser.goto(&demo.console("/audit")).await.unwrap();
    assert_eq!(text(browser, "#replica-demo .status").await, "verified");
    let subject = browser.find(Locator::Id("subject")).await.unwrap();
    subject.send_keys(&owner).await.unwrap();
    click(browser, Locator::Id("ask-who-saw")).await;
    wait_for_text(browser, "#access-list", "Service:client:fintech-app").await;
    screenshot(browser, "audit").await;
}

/// A shred requested by another person (the CLI's account) is approved by a key custodian
/// in the browser: the first click sends them back through sign-in for a fresh second
/// factor, and they return to the Keys page to approve.
pub async fn a_custodian_approves_after_stepping_up(demo: &Demo, browser: &Client) {
    super::approvals::require_two_approvers(demo);
    let id = super::approvals::request_shred(demo, "44");
    sign_in(demo, browser, "key_custodian", false).await;
    browser.goto(&demo.console("/keys")).await.unwrap();
    let approve = format!("#operation-{id} button.approve");
    click(browser, Locator::Css(&approve)).await;
    wait_for_text(browser, "#step-up-needed", "second factor").await;
    click(browser, Locator::Id("step-up")).await;
    // The identity provider asks for the fresher factor.
    let asked = wait_for_text(browser, "#step-up", "second factor").await;
    assert!(asked.contains("urn:privgate:demo:otp"), "{asked}");
    screenshot(browser, "step-up").await;
    click(browser, Locator::Id("person-key_custodian")).await;
    for _ in 0..100 {
        let url = browser.current_url().await.unwrap();
        if url.path() == "/console/keys" && browser.find(Locator::Css("nav")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(browser, Locator::Css(&approve)).await;
    wait_for_text(browser, "#notice", "it ran").await;
    let status = text(browser, &format!("#operation-{id} .status")).await;
    assert_eq!(status, "executed");
    screenshot(browser, "keys").await;
}

/// Three branches contribute to an aggregate; a release officer follows its progress and
/// releases the total in the browser.
#[cfg(feature = "fhe")]
pub async fn a_release_officer_releases_a_total(demo: &Demo, browser: &Client) {
    let id = super::sums::create_aggregate(demo).await;
    for (branch, value) in [
        ("branch-north", 1200),
        ("branch-south", 3400),
        ("partner-east", 560),
    ] {
        super::sums::contribute(demo, &id, branch, value);
    }
    sign_in(demo, browser, "release_officer", false).await;
    browser.goto(&demo.console("/sums")).await.unwrap();
    let release = format!("#aggregate-{id} button.release");
    click(browser, Locator::Css(&release)).await;
    assert_eq!(
        wait_for_text(browser, "#released-total", "5160").await,
        "5160"
    );
    screenshot(browser, "sums").await;
}

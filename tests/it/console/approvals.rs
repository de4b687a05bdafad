//! The Keys page's approval queue and the console's step-up, through a plain HTTPS client:
//! a shred requested by one person (the CLI's account) is approved in the console by a
//! key custodian, who is first sent back through sign-in for a fresh second factor
//! (RFC 9470 `acr_values` and `max_age`, honoured by the demo identity provider); another
//! is denied; forged posts are refused.

use super::protocol::{
    body, client, cookie_value, get_with, location, pick, post_form, set_cookies, start_with,
};
use super::Demo;
use crate::harness::*;
use http::StatusCode;
use std::collections::HashMap;

/// Requests a shred of `subject` as the account running the CLI (its first approval);
/// returns the operation id.
pub fn request_shred(demo: &Demo, subject: &str) -> String {
    let config = demo.config();
    let run = privgate([
        "admin",
        "--config",
        config.to_str().unwrap(),
        "request",
        "shred",
        "--subject",
        subject,
    ]);
    assert!(run.ok, "{}", run.all());
    let view: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(view["status"], "pending", "{view}");
    view["id"].as_str().unwrap().to_owned()
}

/// Two approvers for destructive key operations, reloaded into the running demo.
pub fn require_two_approvers(demo: &Demo) {
    let config = std::fs::read_to_string(demo.config()).unwrap();
    let two = config.replacen("[admin]\n", "[admin]\napprovals_required = 2\n", 1);
    assert_ne!(config, two);
    std::fs::write(demo.config(), two).unwrap();
    demo.reload();
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("{html}"))
        .to_owned()
}

/// Follows a step-up: the sign-in start asks for the configured acr and max_age; the
/// demo person signs in again; the new session comes back to `/keys`.
async fn step_up(demo: &Demo, client: &HttpsClient, start_url: &str, person: &str) -> String {
    let (authorize, sign_in_cookie) = start_with(client, start_url).await;
    let asked: HashMap<String, String> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(asked["acr_values"], "urn:privgate:demo:otp", "{authorize}");
    assert_eq!(asked["max_age"], "0", "{authorize}");
    // The identity provider's page says a second factor is asked.
    let page = get(client, &authorize).await;
    assert!(body(&page).contains("id=\"step-up\""), "{}", body(&page));
    let callback = pick(client, &authorize, person).await;
    let reply = get_with(client, &callback, Some(&sign_in_cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        body(&reply).contains("/console/keys"),
        "returns to the page: {}",
        body(&reply)
    );
    let set = set_cookies(&reply.headers);
    let session = set
        .iter()
        .find(|c| c.starts_with("__Host-privgate-console="))
        .unwrap();
    let _ = demo;
    format!("__Host-privgate-console={}", cookie_value(session))
}

pub async fn a_custodian_approves_after_stepping_up_and_denies(demo: &Demo) {
    let client = client(demo);
    require_two_approvers(demo);
    let first = request_shred(demo, "42");
    let (custodian, _) = super::protocol::signed_in(demo, &client, "key_custodian").await;
    let page = get_with(&client, &demo.console("/keys"), Some(&custodian)).await;
    let html = body(&page);
    assert!(
        html.contains(&format!("id=\"operation-{first}\"")),
        "{html}"
    );
    assert!(html.contains("1 of 2"), "{html}");
    let shredded_before = shredded(&html);
    let csrf = csrf_of(&html);
    let approve = demo.console("/keys/approve");

    // A forged post (no session token) changes nothing.
    let forged = post_form(
        &client,
        &approve,
        &custodian,
        &[("csrf", "forged"), ("id", &first)],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // A teller cannot approve (no keys page), whatever the form says.
    let (teller, teller_csrf) = super::protocol::signed_in(demo, &client, "teller").await;
    let refused = post_form(
        &client,
        &approve,
        &teller,
        &[("csrf", &teller_csrf), ("id", &first)],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // The custodian's sign-in had no second factor: the console asks for a step-up.
    let asked = post_form(
        &client,
        &approve,
        &custodian,
        &[("csrf", &csrf), ("id", &first)],
    )
    .await;
    assert_eq!(asked.status, StatusCode::UNAUTHORIZED, "{}", body(&asked));
    let start = body(&asked)
        .split("id=\"step-up\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("{}", body(&asked)))
        .replace("&amp;", "&");
    assert_eq!(start, "/console/sign-in/start?step_up=keys");
    let start_url = format!("https://localhost:{}{start}", demo.port);
    let stepped = step_up(demo, &client, &start_url, "key_custodian").await;
    let html = body(&get_with(&client, &demo.console("/keys"), Some(&stepped)).await);
    let csrf = csrf_of(&html);
    let approved = post_form(
        &client,
        &approve,
        &stepped,
        &[("csrf", &csrf), ("id", &first)],
    )
    .await;
    assert_eq!(
        approved.status,
        StatusCode::SEE_OTHER,
        "{}",
        body(&approved)
    );
    assert_eq!(location(&approved), "/console/keys?notice=executed");
    let html = body(&get_with(&client, &demo.console("/keys"), Some(&stepped)).await);
    let row = html
        .split(&format!("id=\"operation-{first}\">"))
        .nth(1)
        .unwrap();
    assert!(row.contains("class=\"status\">executed<"), "{row}");
    assert!(
        row.contains("User:kai.keys"),
        "the custodian is the second approver: {row}"
    );
    assert_eq!(shredded(&html), shredded_before + 1);

    // Another request, denied: it never runs, and cannot be approved after.
    let second = request_shred(demo, "43");
    let deny = demo.console("/keys/deny");
    let denied = post_form(
        &client,
        &deny,
        &stepped,
        &[("csrf", &csrf), ("id", &second)],
    )
    .await;
    assert_eq!(location(&denied), "/console/keys?notice=denied");
    let late = post_form(
        &client,
        &approve,
        &stepped,
        &[("csrf", &csrf), ("id", &second)],
    )
    .await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", body(&late));
    let html = body(&get_with(&client, &demo.console("/keys"), Some(&stepped)).await);
    assert_eq!(
        shredded(&html),
        shredded_before + 1,
        "the denied shred did not run"
    );

    // Every step is in the trail: the step-up refusal, the approval, the denial.
    let audit = std::fs::read_to_string(demo.ws.path("demo-data/audit/demo.jsonl")).unwrap();
    let of = |id: &str| -> Vec<&str> { audit.lines().filter(|l| l.contains(id)).collect() };
    let records = of(&first);
    assert!(
        records
            .iter()
            .any(|l| l.contains("console-approvals-need-fresh-mfa")
                && l.contains(r#""decision":"deny""#)),
        "{records:#?}"
    );
    assert!(of(&first)
        .iter()
        .any(|l| l.contains(r#""action":"keys:shred""#)
            && l.contains(r#""decision":"allow""#)
            && l.contains("User:kai.keys")));
    assert!(of(&second)
        .iter()
        .any(|l| l.contains(r#""decision":"allow""#)));
}

fn shredded(html: &str) -> i64 {
    html.split("id=\"shredded\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or_else(|| panic!("{html}"))
        .parse()
        .unwrap()
}

/// `privgate ARGS` against the demo's configuration; panics with its output if it fails.
fn demo_cli(demo: &Demo, args: &[&str]) -> String {
    let config = demo.config();
    let mut all = vec![args[0], "--config", config.to_str().unwrap()];
    all.extend_from_slice(&args[1..]);
    let run = privgate(all);
    assert!(run.ok, "{}", run.all());
    run.stdout
}

/// The id of `subject`'s only authorised consent.
fn authorised_consent(demo: &Demo, subject: &str) -> String {
    let listed = demo_cli(
        demo,
        &["consent", "list", "--subject", subject, "--output", "json"],
    );
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "Authorised")
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{listed}");
    ids[0].to_owned()
}

/// The operation ids of a page's queue, in order.
fn queued(html: &str) -> Vec<String> {
    html.split("id=\"operation-")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// With `[admin] consent_revocation_approvals = 2`, revoking a consent in the console is a
/// request: the consent holds until a second person approves, a consent administrator
/// approves another's request on the Consent page (and the next API call is refused),
/// denies are final, and the Keys page's custodians can act on none of it.
pub async fn consent_revocations_wait_for_a_second_approver(demo: &Demo) {
    let client = client(demo);
    let config = std::fs::read_to_string(demo.config()).unwrap();
    let four_eyes = config.replacen(
        "[admin]\n",
        "[admin]\nconsent_revocation_approvals = 2\n",
        1,
    );
    assert_ne!(config, four_eyes);
    std::fs::write(demo.config(), four_eyes).unwrap();
    demo.reload();
    let owner = super::steps::account_owner(demo);
    grant_account_information(&demo.config(), &owner);
    let consent = authorised_consent(demo, &owner);
    let partner_reads = || super::steps::partner_reads_account_7(demo);
    assert_eq!(partner_reads().await, StatusCode::OK);

    // The consent administrator's Revoke is a request: recorded, and the consent holds.
    let (cora, csrf) = super::protocol::signed_in(demo, &client, "consent_admin").await;
    let page = demo.console(&format!("/consent?subject={owner}"));
    let requested = post_form(
        &client,
        &demo.console("/consent/revoke"),
        &cora,
        &[("csrf", &csrf), ("id", &consent)],
    )
    .await;
    assert_eq!(
        location(&requested),
        format!("/console/consent?subject={owner}&notice=awaiting_approval"),
        "{}",
        body(&requested)
    );
    let back = format!("https://localhost:{}{}", demo.port, location(&requested));
    let html = body(&get_with(&client, &back, Some(&cora)).await);
    assert!(html.contains("Revocation requested"), "{html}");
    assert!(html.contains("class=\"status\">Authorised<"), "{html}");
    let mine = queued(&html);
    assert_eq!(mine.len(), 1, "{html}");
    let row = html
        .split(&format!("id=\"operation-{}\">", mine[0]))
        .nth(1)
        .unwrap();
    let row = row.split("</tr>").next().unwrap();
    assert!(row.contains("1 of 2"), "{row}");
    assert!(
        !row.contains("approve"),
        "the requester is offered no second approval: {row}"
    );
    assert_eq!(partner_reads().await, StatusCode::OK);
    // Approving one's own request again counts nothing.
    let again = post_form(
        &client,
        &demo.console("/consent/approve"),
        &cora,
        &[("csrf", &csrf), ("id", &mine[0])],
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", body(&again));

    // A key custodian sees no consent revocation, and cannot act on one from either page.
    let (kai, kai_csrf) = super::protocol::signed_in(demo, &client, "key_custodian").await;
    let keys = body(&get_with(&client, &demo.console("/keys"), Some(&kai)).await);
    assert!(!keys.contains(&mine[0]), "{keys}");
    for (path, status) in [
        ("/keys/approve", StatusCode::NOT_FOUND),
        ("/consent/approve", StatusCode::FORBIDDEN),
        ("/consent/deny", StatusCode::FORBIDDEN),
    ] {
        let refused = post_form(
            &client,
            &demo.console(path),
            &kai,
            &[("csrf", &kai_csrf), ("id", &mine[0])],
        )
        .await;
        assert_eq!(refused.status, status, "{path}: {}", body(&refused));
    }
    assert_eq!(partner_reads().await, StatusCode::OK);

    // A second person (the operator's account, through the CLI) denies it: final.
    demo_cli(demo, &["admin", "deny", &mine[0]]);
    assert_eq!(partner_reads().await, StatusCode::OK);

    // Requested by the operator, approved by the consent administrator on the Consent
    // page: it runs, and the partner's next call is refused.
    let view = demo_cli(
        demo,
        &["admin", "request", "consent-revoke", "--consent", &consent],
    );
    let view: serde_json::Value = serde_json::from_str(&view).unwrap();
    assert_eq!(view["status"], "pending", "{view}");
    assert_eq!(view["operation"]["subject"], owner.as_str(), "{view}");
    let theirs = view["id"].as_str().unwrap().to_owned();
    let html = body(&get_with(&client, &page, Some(&cora)).await);
    assert_eq!(queued(&html)[0], theirs, "pending first: {html}");
    let approved = post_form(
        &client,
        &demo.console("/consent/approve"),
        &cora,
        &[("csrf", &csrf), ("id", &theirs)],
    )
    .await;
    assert_eq!(
        location(&approved),
        format!("/console/consent?subject={owner}&notice=executed"),
        "{}",
        body(&approved)
    );
    let html = body(&get_with(&client, &page, Some(&cora)).await);
    assert!(html.contains("class=\"status\">Revoked<"), "{html}");
    assert!(html.contains("done: consent revoked"), "{html}");
    assert_eq!(partner_reads().await, StatusCode::FORBIDDEN);

    // The trail has the request, the refusals and the approval on each operation.
    let audit = std::fs::read_to_string(demo.ws.path("demo-data/audit/demo.jsonl")).unwrap();
    let on = |id: &str| -> Vec<&str> { audit.lines().filter(|l| l.contains(id)).collect() };
    assert!(on(&mine[0])
        .iter()
        .any(|l| l.contains(r#""action":"consent:revoke""#) && l.contains("User:cora.consent")));
    assert!(on(&mine[0])
        .iter()
        .any(|l| l.contains("User:kai.keys") && l.contains(r#""decision":"deny""#)));
    assert!(on(&theirs)
        .iter()
        .any(|l| l.contains(r#""decision":"allow""#) && l.contains("User:cora.consent")));
}

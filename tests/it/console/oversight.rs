//! The security officer's pages (Decisions, Policies, Audit) through a plain HTTPS client:
//! the trail's filters and one record explained, a hypothetical request explained, every
//! replica verified, who-saw by pseudonym without echoing the subject, and the refusals a
//! browser would never show (a forged who-saw post, other roles by URL).

use super::protocol::{body, client, get_with, post_form, signed_in};
use super::Demo;
use http::StatusCode;

/// The rows of the page's `#decisions` table (each `<tr class="allow|deny">...</tr>`).
fn rows(html: &str) -> Vec<&str> {
    let Some(table) = html.split("<table id=\"decisions\">").nth(1) else {
        panic!("no decisions table: {html}")
    };
    let body = table.split("</table>").next().unwrap();
    body.split("<tr class=\"").skip(1).collect()
}

pub async fn decisions_filter_the_trail_and_explain_one_record(demo: &Demo) {
    let client = client(demo);
    // A refusal to find: a teller asking for the Decisions page itself.
    let (teller, _) = signed_in(demo, &client, "teller").await;
    for page in ["/decisions", "/policies", "/audit"] {
        let refused = get_with(&client, &demo.console(page), Some(&teller)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "a teller on {page}");
    }

    let (officer, _) = signed_in(demo, &client, "security_officer").await;
    let url = demo.console("/decisions?principal=User%3Atina.teller&decision=deny&since=1h");
    let page = get_with(&client, &url, Some(&officer)).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = body(&page);
    let denied = rows(&html);
    assert!(denied.len() >= 3, "the teller's three refusals: {html}");
    for row in &denied {
        assert!(
            row.starts_with("deny\"") && row.contains("User:tina.teller"),
            "{row}"
        );
    }
    // The other way round: the teller's allowed views only.
    let url = demo.console("/decisions?principal=User%3Atina.teller&decision=allow");
    let html = body(&get_with(&client, &url, Some(&officer)).await);
    let allowed = rows(&html);
    assert!(!allowed.is_empty(), "{html}");
    assert!(allowed.iter().all(|r| r.starts_with("allow\"")), "{html}");
    // A route no record names matches nothing; a time in the future neither.
    let url = demo.console("/decisions?route=no-such-route");
    assert!(rows(&body(&get_with(&client, &url, Some(&officer)).await)).is_empty());
    let url = demo.console("/decisions?since=2999-01-01T00:00:00Z");
    assert!(rows(&body(&get_with(&client, &url, Some(&officer)).await)).is_empty());
    // A time that is not one is refused, not ignored.
    let url = demo.console("/decisions?since=yesterday-ish");
    let bad = get_with(&client, &url, Some(&officer)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Explain one: the teller's refused keys page names no permitting policy; an allowed
    // overview names the shipped policy, with its text from the active set.
    let explain = allowed[0]
        .split("href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let page = get_with(
        &client,
        &format!("https://localhost:{}{explain}", demo.port),
        Some(&officer),
    )
    .await;
    let html = body(&page);
    assert!(html.contains("id=\"explained\""), "{html}");
    assert!(html.contains("(the active set)"), "{html}");
    assert!(html.contains("console-overview-for-staff"), "{html}");
    assert!(
        html.contains("principal in PrivGate::Role::&#34;teller&#34;"),
        "{html}"
    );
    let unknown = demo.console("/decisions?request=no-such-request");
    assert_eq!(
        get_with(&client, &unknown, Some(&officer)).await.status,
        StatusCode::BAD_REQUEST
    );
}

pub async fn policies_show_the_set_its_cases_and_a_hypothetical(demo: &Demo) {
    let client = client(demo);
    let (officer, _) = signed_in(demo, &client, "security_officer").await;
    let page = get_with(&client, &demo.console("/policies"), Some(&officer)).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = body(&page);
    let results = html
        .split("id=\"case-results\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap();
    let (passed, total) = results.split_once(" of ").unwrap();
    let total = total.trim_end_matches(" pass");
    assert_eq!(passed, total, "the shipped cases all pass: {results}");
    assert!(total.parse::<usize>().unwrap() > 20, "{results}");
    assert!(html.contains("console-who-saw-for-security-officers</td><td>console.cedar"));
    // A teller reading a customer: allowed, each class with its view and policies.
    let ask = "/policies?kind=User&caller=alice&roles=teller&purposes=customer_service\
               &action=customers%3Aread&resource=42&purpose=customer_service&amr=pwd%2Cotp\
               &auth_age=60";
    let html = body(&get_with(&client, &demo.console(ask), Some(&officer)).await);
    let route = html
        .split("id=\"explained-route\" class=\"allow\">")
        .nth(1)
        .unwrap_or_else(|| panic!("{html}"));
    assert!(route.starts_with("ALLOW, by "), "{route}");
    assert!(
        html.contains("id=\"view-pan\""),
        "every class is explained: {html}"
    );
    // The same for a purpose the caller is not registered for: refused, and why.
    let html = body(
        &get_with(
            &client,
            &demo.console(&ask.replace("&purpose=customer_service", "&purpose=marketing")),
            Some(&officer),
        )
        .await,
    );
    assert!(
        html.contains("id=\"explained-route\" class=\"deny\">DENY ("),
        "{html}"
    );
    // A malformed question says so on the page.
    let html = body(
        &get_with(
            &client,
            &demo.console(&ask.replace("auth_age=60", "auth_age=soon")),
            Some(&officer),
        )
        .await,
    );
    assert!(html.contains("id=\"explain-problem\""), "{html}");
}

pub async fn audit_verifies_replicas_and_tells_who_saw(demo: &Demo, owner: &str) {
    let client = client(demo);
    let (officer, csrf) = signed_in(demo, &client, "security_officer").await;
    let page = get_with(&client, &demo.console("/audit"), Some(&officer)).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = body(&page);
    let demo_row = html
        .split("id=\"replica-demo\">")
        .nth(1)
        .unwrap_or_else(|| panic!("{html}"));
    assert!(demo_row.contains("class=\"status\">verified<"), "{html}");

    let who_saw = demo.console("/audit/who-saw");
    // Without the session's token: refused, nothing looked up.
    let forged = post_form(
        &client,
        &who_saw,
        &officer,
        &[("csrf", "forged"), ("subject", owner)],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(body(&forged).contains("form_refused"));
    // A consent administrator (no Audit page) posting the form is refused too.
    let (cora, cora_csrf) = signed_in(demo, &client, "consent_admin").await;
    let refused = post_form(
        &client,
        &who_saw,
        &cora,
        &[("csrf", &cora_csrf), ("subject", owner)],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let reply = post_form(
        &client,
        &who_saw,
        &officer,
        &[("csrf", &csrf), ("subject", owner)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let html = body(&reply);
    let list = html
        .split("id=\"access-list\">")
        .nth(1)
        .unwrap_or_else(|| panic!("{html}"));
    // The partner's refused read (audit-key pseudonym) and its allowed one (the subject's
    // own key) are both found.
    assert!(list.contains("Service:client:fintech-app"), "{list}");
    assert!(list.contains("class=\"decision\">deny<"), "{list}");
    assert!(list.contains("class=\"decision\">allow<"), "{list}");
    // The subject id is not echoed back.
    assert!(!html.contains(&format!("value=\"{owner}\"")), "{html}");
    assert!(!html.contains(&format!(">{owner}<")), "{html}");
    // The lookup is recorded, under the subject's pseudonym, by action.
    let audit = std::fs::read_to_string(demo.ws.path("demo-data/audit/demo.jsonl")).unwrap();
    let lookup = audit
        .lines()
        .rev()
        .find(|l| {
            l.contains(r#""action":"console:who_saw""#) && l.contains(r#""decision":"allow""#)
        })
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(lookup.contains("\"subject_pseudonym\":\""), "{lookup}");
    assert!(
        !audit.contains(&format!("\"{owner}\"")),
        "the id is never written"
    );
}

/// The overview's traffic comes from the metrics (the partner's refusal counted on its
/// route) and its reload history keeps start, a rejected reload and an applied one.
pub async fn overview_shows_traffic_and_reloads(demo: &Demo) {
    let client = client(demo);
    let (custodian, _) = signed_in(demo, &client, "key_custodian").await;
    let html = body(&get_with(&client, &demo.console("/overview"), Some(&custodian)).await);
    let accounts = html
        .split("id=\"traffic-accounts\">")
        .nth(1)
        .unwrap_or_else(|| panic!("{html}"));
    let refusals: u64 = accounts
        .split("class=\"refusals\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(refusals >= 1, "the partner's refused read: {accounts}");
    assert!(html.contains("<tr class=\"started\">"), "{html}");

    let config = std::fs::read_to_string(demo.config()).unwrap();
    std::fs::write(demo.config(), format!("{config}\n[no_such_section]\n")).unwrap();
    demo.reload();
    std::fs::write(demo.config(), &config).unwrap();
    demo.reload();
    let html = body(&get_with(&client, &demo.console("/overview"), Some(&custodian)).await);
    let history = html.split("id=\"reload-history\">").nth(1).unwrap();
    let outcomes: Vec<&str> = history
        .split("<tr class=\"")
        .skip(1)
        .map(|row| row.split('"').next().unwrap())
        .collect();
    assert_eq!(outcomes, ["applied", "rejected", "started"], "{history}");
}

//! The Encrypted sums page through a plain HTTPS client, against the demo with its FHE key
//! set: contributions made as the demo's branches make them (`privgate fhe contribute`,
//! proofs included), progress against the threshold, who gets the Release button, a
//! forged release refused, and a release whose total is exactly the contributions' sum.

use super::protocol::{body, client, get_with, post_form, signed_in};
use super::Demo;
use crate::harness::*;
use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::Full;

/// Creates an exact aggregate needing 3 organisations, as the demo's analyst does.
pub(super) async fn create_aggregate(demo: &Demo) -> String {
    let token =
        std::fs::read_to_string(demo.ws.path("demo-data/tokens/reporting-analyst.jwt")).unwrap();
    let req = Request::post(format!("https://localhost:{}/fhe/v1/aggregates", demo.port))
        .header(header::AUTHORIZATION, format!("Bearer {}", token.trim()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"name":"branch exposures","bits":16,"max_contributors":100,"min_organisations":3,"open_for":"1day","release":{"mode":"exact"}}"#,
        )))
        .unwrap();
    let reply = send(&client(demo), req).await.unwrap();
    assert_eq!(reply.status, StatusCode::CREATED, "{}", body(&reply));
    reply.json()["id"].as_str().unwrap().to_owned()
}

/// One branch's encrypted, proven contribution, as the demo prints it.
pub(super) fn contribute(demo: &Demo, aggregate: &str, branch: &str, value: u32) {
    let run = tokio::task::block_in_place(|| {
        privgate([
            "fhe",
            "contribute",
            "--gateway",
            &format!("https://localhost:{}/fhe/v1", demo.port),
            "--ca",
            demo.ws.path("demo-data/certs/ca.pem").to_str().unwrap(),
            "--token-file",
            demo.ws
                .path(&format!("demo-data/tokens/{branch}.jwt"))
                .to_str()
                .unwrap(),
            "--aggregate",
            aggregate,
            "--value",
            &value.to_string(),
        ])
    });
    assert!(run.ok, "{}", run.all());
}

fn row<'a>(html: &'a str, id: &str) -> &'a str {
    html.split(&format!("id=\"aggregate-{id}\">"))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("{html}"))
}

pub async fn a_release_officer_releases_once_the_threshold_is_met(demo: &Demo) {
    let client = client(demo);
    let id = create_aggregate(demo).await;
    contribute(demo, &id, "branch-north", 1200);
    contribute(demo, &id, "branch-south", 3400);
    let (officer, csrf) = signed_in(demo, &client, "release_officer").await;
    let (security, security_csrf) = signed_in(demo, &client, "security_officer").await;
    let page = get_with(&client, &demo.console("/sums"), Some(&officer)).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = body(&page);
    let before = row(&html, &id);
    assert!(before.contains(">2 of 3<"), "{before}");
    assert!(
        !before.contains("Release</button>"),
        "below the threshold: {before}"
    );

    contribute(demo, &id, "partner-east", 560);
    let html = body(&get_with(&client, &demo.console("/sums"), Some(&officer)).await);
    assert!(row(&html, &id).contains("Release</button>"), "{html}");
    // The security officer follows progress but has no button, and a forged post is
    // refused by the release decision itself.
    let html = body(&get_with(&client, &demo.console("/sums"), Some(&security)).await);
    let seen = row(&html, &id);
    assert!(
        seen.contains(">3 of 3<") && !seen.contains("Release</button>"),
        "{seen}"
    );
    let release = demo.console("/sums/release");
    let forged = post_form(
        &client,
        &release,
        &security,
        &[("csrf", &security_csrf), ("id", &id)],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", body(&forged));
    // Other roles do not see the page at all.
    let (analyst, _) = signed_in(demo, &client, "analyst").await;
    let refused = get_with(&client, &demo.console("/sums"), Some(&analyst)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let released = post_form(&client, &release, &officer, &[("csrf", &csrf), ("id", &id)]).await;
    assert_eq!(released.status, StatusCode::OK, "{}", body(&released));
    let html = body(&released);
    assert!(html.contains("id=\"released-total\">5160<"), "{html}");
    assert!(
        row(&html, &id).contains("class=\"state\">released<"),
        "{html}"
    );
    // Released once: a second release is refused.
    let again = post_form(&client, &release, &officer, &[("csrf", &csrf), ("id", &id)]).await;
    assert!(again.status.is_client_error(), "{}", body(&again));
    let audit = std::fs::read_to_string(demo.ws.path("demo-data/audit/demo.jsonl")).unwrap();
    assert!(audit
        .lines()
        .any(|l| l.contains(r#""action":"aggregate:release""#)
            && l.contains("User:rita.release")
            && l.contains(r#""decision":"allow""#)
            && l.contains(&id)));
}

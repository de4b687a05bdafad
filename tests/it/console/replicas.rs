//! Two console replicas on one store: the demo's gateway (replica A) and a second
//! `privgate serve` (replica B) on the demo's configuration, its own listeners and audit
//! chain, and the demo's SQLite file. Sessions and sign-ins live in the store, so what
//! one replica opens or ends holds on the other.

use super::protocol::{body, client, location, pick, post_form, set_cookies, signed_in, start};
use super::protocol::{cookie_value, get_with};
use super::Demo;
use crate::harness::*;
use http::StatusCode;

/// Replica B: the demo's configuration with its own listener and admin ports and its own
/// audit chain, beside the demo's (same certificates, policies, keys and store).
fn second_replica(demo: &Demo) -> Gateway {
    let text = std::fs::read_to_string(demo.config()).unwrap();
    let text: String = text
        .lines()
        .map(|line| match line {
            l if l.starts_with("address = \"127.0.0.1:") => "address = \"127.0.0.1:0\"",
            "replica = \"demo\"" => "replica = \"demo-b\"",
            l => l,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(text.contains("replica = \"demo-b\""), "{text}");
    let path = demo.ws.path("demo-data/privgate-b.toml");
    std::fs::write(&path, text).unwrap();
    Gateway::start(&path)
}

pub async fn a_session_works_on_every_replica_and_ends_on_all(demo: &Demo) {
    let b = second_replica(demo);
    let client = client(demo);
    let on_b = |path: &str| b.url(&format!("/console{path}"));

    // Signed in through A; B serves the same person with A's cookie.
    let (session, csrf) = signed_in(demo, &client, "consent_admin").await;
    let page = get_with(&client, &on_b("/consent"), Some(&session)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", body(&page));
    assert!(body(&page).contains("<h1>Consent</h1>"));
    // The CSRF token is derived from the cookie, so B's forms carry A's.
    assert!(
        body(&page).contains(&format!("name=\"csrf\" value=\"{csrf}\"")),
        "{}",
        body(&page)
    );

    // Signing out on B ends the session on A too.
    let signed_out = post_form(&client, &on_b("/sign-out"), &session, &[("csrf", &csrf)]).await;
    assert_eq!(
        signed_out.status,
        StatusCode::SEE_OTHER,
        "{}",
        body(&signed_out)
    );
    let after = get_with(&client, &demo.console("/consent"), Some(&session)).await;
    assert_eq!(
        after.status,
        StatusCode::SEE_OTHER,
        "A still knew the session"
    );
    assert_eq!(location(&after), "/console/sign-in");

    // A sign-in begun on A whose callback lands on B: B finishes it, once.
    let (authorize, sign_in_cookie) = start(demo, &client).await;
    let callback = pick(&client, &authorize, "consent_admin").await;
    let callback_on_b = callback.replace(
        &format!("localhost:{}/", demo.port),
        &format!("localhost:{}/", b.addr.port()),
    );
    assert_ne!(callback_on_b, callback);
    let finished = get_with(&client, &callback_on_b, Some(&sign_in_cookie)).await;
    assert_eq!(finished.status, StatusCode::OK, "{}", body(&finished));
    let replayed = get_with(&client, &callback, Some(&sign_in_cookie)).await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert!(body(&replayed).contains("sign_in_failed"));
    let set = set_cookies(&finished.headers);
    let opened = set
        .iter()
        .find(|c| c.starts_with("__Host-privgate-console="))
        .unwrap_or_else(|| panic!("{set:?}"));
    let session = format!("__Host-privgate-console={}", cookie_value(opened));
    let page = get_with(&client, &demo.console("/consent"), Some(&session)).await;
    assert_eq!(page.status, StatusCode::OK, "B's session on A");

    // Neither replica logged a cookie or a CSRF token.
    let logs = serde_json::to_string(&*b.logs.lock().unwrap()).unwrap();
    for secret in [cookie_value(opened), &csrf, cookie_value(&sign_in_cookie)] {
        assert!(!logs.contains(secret), "replica B logged a secret");
    }
}

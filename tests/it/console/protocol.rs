//! The console's sign-in flow and headers through a plain HTTPS client: what a browser
//! hides (cookie attributes, PKCE parameters) and what it would never send (a callback not
//! started here, a replayed code, a cookie chosen by an attacker).

use super::Demo;
use crate::harness::*;
use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::Full;
use std::collections::HashMap;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

pub(super) fn client(demo: &Demo) -> HttpsClient {
    https_client_trusting(&demo.ws, "demo-data/certs/ca.pem")
}

pub(super) async fn get_with(client: &HttpsClient, url: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::get(url);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    send(client, req.body(Full::default()).unwrap())
        .await
        .unwrap()
}

pub(super) fn location(reply: &Reply) -> String {
    reply.headers[header::LOCATION].to_str().unwrap().to_owned()
}

pub(super) fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

pub(super) fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

pub async fn pages_need_a_session_and_carry_strict_headers(demo: &Demo) {
    let client = client(demo);
    for page in ["/", "/overview", "/consent", "/keys", "/analytics"] {
        let reply = get(&client, &demo.console(page)).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(location(&reply), "/console/sign-in", "{page}");
    }
    let reply = get(&client, &demo.console("/sign-in")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CONTENT_SECURITY_POLICY], CSP);
    assert_eq!(reply.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(reply.headers[header::REFERRER_POLICY], "same-origin");
    let page = String::from_utf8_lossy(&reply.body);
    assert!(
        page.contains("<h1>Sign in</h1>") && !page.contains("<script"),
        "{page}"
    );
    let css = get(&client, &demo.console("/static/console.css")).await;
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    // A form post without a session is sent to sign in, never carried out.
    let post = Request::post(demo.console("/consent/revoke"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"id=x&csrf=y")))
        .unwrap();
    assert_eq!(
        send(&client, post).await.unwrap().status,
        StatusCode::SEE_OTHER
    );
}

/// Starts a sign-in; returns the authorization URL and the sign-in cookie.
pub(super) async fn start(demo: &Demo, client: &HttpsClient) -> (String, String) {
    start_with(client, &demo.console("/sign-in/start")).await
}

/// Starts a sign-in at `url` (a step-up's start); returns the authorization URL and the
/// sign-in cookie.
pub(super) async fn start_with(client: &HttpsClient, url: &str) -> (String, String) {
    let reply = get(client, url).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let cookies = set_cookies(&reply.headers);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = &cookies[0];
    for attribute in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=600",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(cookie.starts_with("__Host-privgate-sign-in="), "{cookie}");
    (
        location(&reply),
        format!("__Host-privgate-sign-in={}", cookie_value(cookie)),
    )
}

/// Picks `person` at the demo identity provider; returns the callback URL it sends back to.
pub(super) async fn pick(client: &HttpsClient, authorize: &str, person: &str) -> String {
    let mut form: HashMap<String, String> = query(authorize);
    form.insert("person".into(), person.into());
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    let endpoint = authorize.split('?').next().unwrap();
    let req = Request::post(endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let reply = send(client, req).await.unwrap();
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    location(&reply)
}

pub async fn sign_in_uses_pkce_and_a_one_time_lax_cookie(demo: &Demo) {
    let client = client(demo);
    let (authorize, sign_in_cookie) = start(demo, &client).await;
    let asked = query(&authorize);
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["code_challenge"].len(), 43);
    assert_eq!(asked["state"].len(), 43);
    assert_eq!(asked["redirect_uri"], demo.console("/callback"));
    assert_eq!(asked["response_type"], "code");

    let callback = pick(&client, &authorize, "consent_admin").await;
    assert!(
        callback.starts_with(&demo.console("/callback?")),
        "{callback}"
    );
    // A session cookie planted before sign-in (fixation) is never the session.
    let planted = "__Host-privgate-console=planted-by-attacker";
    let cookies = format!("{sign_in_cookie}; {planted}");
    let reply = get_with(&client, &callback, Some(&cookies)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let set = set_cookies(&reply.headers);
    let session = set
        .iter()
        .find(|c| c.starts_with("__Host-privgate-console="))
        .unwrap_or_else(|| panic!("{set:?}"));
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert_ne!(cookie_value(session), "planted-by-attacker");
    assert!(set
        .iter()
        .any(|c| c.starts_with("__Host-privgate-sign-in=;") && c.contains("Max-Age=0")));
    let session = format!("__Host-privgate-console={}", cookie_value(session));
    let page = get_with(&client, &demo.console("/consent"), Some(&session)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&page.body).contains("<h1>Consent</h1>"));
    // Forms: another origin is refused even with the session's token; then sign-out works.
    let html = String::from_utf8_lossy(&page.body).into_owned();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("{html}"));
    let sign_out = |origin: &str| {
        Request::post(demo.console("/sign-out"))
            .header(header::COOKIE, &session)
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(format!("csrf={csrf}"))))
            .unwrap()
    };
    let refused = send(&client, sign_out("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&refused.body).contains("form_refused"));
    let own = format!("https://localhost:{}", demo.port);
    let signed_out = send(&client, sign_out(&own)).await.unwrap();
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    let after = get_with(&client, &demo.console("/consent"), Some(&session)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "signed out");
    // The planted cookie alone is nobody.
    let planted = get_with(&client, &demo.console("/consent"), Some(planted)).await;
    assert_eq!(planted.status, StatusCode::SEE_OTHER);

    // The same callback again: the sign-in was used once (and the code too).
    let replay = get_with(&client, &callback, Some(&sign_in_cookie)).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&replay.body).contains("sign_in_failed"));

    // Each page view is an audit record with the person, the action and its policies.
    let audit = std::fs::read_to_string(demo.ws.path("demo-data/audit/demo.jsonl")).unwrap();
    let viewed = audit.lines().any(|l| {
        l.contains(r#""action":"console:view""#)
            && l.contains("User:cora.consent")
            && l.contains("console-consent-for-consent-admins")
    });
    assert!(viewed, "{audit}");
}

pub async fn a_callback_not_started_here_is_refused(demo: &Demo) {
    let client = client(demo);
    let (authorize, sign_in_cookie) = start(demo, &client).await;
    let callback = pick(&client, &authorize, "teller").await;
    // Without the sign-in cookie (another browser, or a link an attacker sent).
    let reply = get_with(&client, &callback, None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    // With the cookie but another state: refused, and the sign-in is used up.
    let forged = callback.replace("state=", "state=x");
    let reply = get_with(&client, &forged, Some(&sign_in_cookie)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = get_with(&client, &callback, Some(&sign_in_cookie)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

/// Signs `person` in through the whole flow with a plain client; returns the session's
/// `Cookie` header and the CSRF token its pages carry.
pub(super) async fn signed_in(demo: &Demo, client: &HttpsClient, person: &str) -> (String, String) {
    let (authorize, sign_in_cookie) = start(demo, client).await;
    let callback = pick(client, &authorize, person).await;
    let reply = get_with(client, &callback, Some(&sign_in_cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{person}: {:?}", reply.body);
    let set = set_cookies(&reply.headers);
    let session = set
        .iter()
        .find(|c| c.starts_with("__Host-privgate-console="))
        .unwrap_or_else(|| panic!("{set:?}"));
    let session = format!("__Host-privgate-console={}", cookie_value(session));
    let page = get_with(client, &demo.console("/"), Some(&session)).await;
    let landed = location(&page);
    let page = get_with(
        client,
        &format!("https://localhost:{}{landed}", demo.port),
        Some(&session),
    )
    .await;
    let html = String::from_utf8_lossy(&page.body).into_owned();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("{html}"))
        .to_owned();
    (session, csrf)
}

/// A reply's body as text.
pub(super) fn body(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// Posts a form with the session cookie.
pub(super) async fn post_form(
    client: &HttpsClient,
    url: &str,
    session: &str,
    form: &[(&str, &str)],
) -> Reply {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let req = Request::post(url)
        .header(header::COOKIE, session)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    send(client, req).await.unwrap()
}

pub async fn a_made_up_session_cookie_is_not_a_session(demo: &Demo) {
    let client = client(demo);
    let made_up = "__Host-privgate-console=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let reply = get_with(&client, &demo.console("/overview"), Some(made_up)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&reply), "/console/sign-in");
}

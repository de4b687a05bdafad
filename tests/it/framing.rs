//! Issue 13, items 7 and 9, end to end: the real binary in front of the echo upstream.
//!
//! - Buffered and protected routes own their framing: bodies must say they are JSON both
//!   ways (415 on requests, 502 on responses), requests go without `Range`/`If-Range` and
//!   ask for the identity coding, and a 206 never passes.
//! - Headers upstreams trust (identity, client certificate, address, URL rewrite, method
//!   override, `Authorization`) are the gateway's, never the client's, on every route.

use crate::harness::*;
use http::StatusCode;
use serde_json::Value;

/// A body that is valid JSON (a string) but is a form to an upstream that trusts the
/// client's Content-Type.
const FORM_AS_JSON_STRING: &str = r#""&name=Jane+Example&national_id=AB123456C""#;

/// The echo upstream's record of the request it received.
fn echoed(reply: &Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json()
}

/// A gateway in front of the echo upstream with the harness routes (`/` streamed,
/// `/buffered` buffered) and `extra`.
async fn plain_gateway(extra: &str, forwarding: &str) -> (Workspace, Upstream, Gateway) {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    let text = format!("{forwarding}\n{}", config(&ws, upstream.addr, "", extra));
    let path = ws.write("privgate.toml", &text);
    let gw = Gateway::start(&path);
    (ws, upstream, gw)
}

#[tokio::test]
async fn buffered_routes_take_only_bodies_framed_as_json() {
    let (ws, upstream, gw) = plain_gateway("", "").await;
    let client = https_client(&ws, None, false);
    let url = gw.url("/buffered/echo");
    let refused: &[&[(&str, &str)]] = &[
        &[("content-type", "application/x-www-form-urlencoded")],
        &[("content-type", "multipart/form-data; boundary=x")],
        &[("content-type", "text/plain")],
        &[("content-type", "application/xml")],
        &[],
        &[("content-type", "application/json; charset=utf-16")],
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        &[
            ("content-type", "application/json"),
            ("content-range", "bytes 0-9/99"),
        ],
    ];
    for headers in refused {
        let reply = send_with(&client, "POST", &url, headers, FORM_AS_JSON_STRING).await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{headers:?}"
        );
        assert_eq!(reply.error_code(), "unsupported_media_type");
    }
    assert_eq!(
        upstream.requests(),
        0,
        "nothing refused reached the upstream"
    );
    for content_type in [
        "application/json",
        "application/vnd.bank+json; charset=UTF-8",
    ] {
        let reply = send_with(
            &client,
            "POST",
            &url,
            &[("content-type", content_type)],
            r#"{"a":1}"#,
        )
        .await;
        assert_eq!(echoed(&reply)["body"], r#"{"a":1}"#);
    }
    // A bodiless request needs no media type; a streamed route is not affected.
    assert_eq!(get(&client, &url).await.status, StatusCode::OK);
    let streamed = send_with(
        &client,
        "POST",
        &gw.url("/echo"),
        &[("content-type", "text/plain")],
        "free text",
    )
    .await;
    assert_eq!(echoed(&streamed)["body"], "free text");
}

#[tokio::test]
async fn buffered_routes_ask_for_and_pass_on_only_whole_json() {
    let (ws, _upstream, gw) = plain_gateway("", "").await;
    let client = https_client(&ws, None, false);
    let range = [
        ("range", "bytes=20-60"),
        ("if-range", "\"v1\""),
        ("accept-encoding", "gzip, br"),
    ];
    let seen = echoed(&send_with(&client, "GET", &gw.url("/buffered/echo"), &range, "").await);
    let headers = &seen["headers"];
    assert!(
        headers.get("range").is_none() && headers.get("if-range").is_none(),
        "{seen}"
    );
    assert_eq!(headers["accept-encoding"], "identity");
    // Streamed routes pass ranges as they always did.
    let seen = echoed(&send_with(&client, "GET", &gw.url("/echo"), &range, "").await);
    assert_eq!(seen["headers"]["range"], "bytes=20-60");

    // (upstream answer as /respond's query, status the client gets)
    let cases = [
        (
            "status=206&type=application/json&range=bytes+0-9/99&body=%22AB123456C%22",
            502,
        ),
        ("status=206&type=application/json", 502),
        (
            "status=200&type=text/html&body=%3Cb%3EAB123456C%3C/b%3E",
            502,
        ),
        ("status=200&type=none&body=%7B%7D", 502),
        (
            "status=200&type=application/json&encoding=gzip&body=%7B%7D",
            502,
        ),
        (
            "status=200&type=application/json&body=%7B%22national_id",
            502,
        ),
        ("status=500&type=text/plain&body=AB123456C", 502),
        (
            "status=200&type=application/json&body=%7B%22ok%22:true%7D",
            200,
        ),
        (
            "status=404&type=application/problem%2Bjson&body=%7B%7D",
            404,
        ),
        ("status=200&type=none", 200),
    ];
    for (query, status) in cases {
        let reply = get(&client, &gw.url(&format!("/buffered/respond?{query}"))).await;
        assert_eq!(reply.status.as_u16(), status, "{query}: {:?}", reply.body);
        if status == 502 {
            assert!(!String::from_utf8_lossy(&reply.body).contains("AB123456C"));
        }
    }
}

/// The request headers an upstream might trust, as a client would forge them.
const FORGED: &[(&str, &str)] = &[
    ("authorization", "Bearer stolen-or-forged"),
    ("forwarded", "for=10.1.2.3;host=admin.internal"),
    ("x-real-ip", "10.1.2.3"),
    ("true-client-ip", "10.1.2.3"),
    ("x-forwarded-host", "admin.internal"),
    ("x-forwarded-prefix", "/admin"),
    ("x-original-url", "/admin/keys"),
    ("x-rewrite-url", "/admin/keys"),
    ("x-http-method-override", "DELETE"),
    ("x-method-override", "DELETE"),
    ("x-ssl-client-cert", "-----BEGIN CERTIFICATE-----"),
    ("x-forwarded-client-cert", "Subject=\"CN=admin\""),
    ("client-cert", ":MIIB:"),
    ("x-remote-user", "admin"),
    ("x-auth-request-email", "admin@bank.example"),
    ("x_remote_user", "admin-underscored"),
    ("x_forwarded_for", "10.9.9.9"),
    ("x_privgate_subject", "admin"),
    // Other members of the families, not only the best-known ones.
    ("cf-connecting-ipv6", "2001:db8::66"),
    ("x-user-roles", "admin"),
    ("x-consumer-groups", "admins"),
    ("remote-groups", "admins"),
    ("x-remote-group", "system:masters"),
    ("impersonate-user", "admin"),
    ("x-amzn-mtls-clientcert-subject", "CN=admin"),
    ("x-arr-ssl", "2048|256|CN=admin"),
    ("x-jwt-payload", "eyJzdWIiOiJhZG1pbiJ9"),
    ("cf-access-authenticated-user-email", "admin@bank.example"),
    ("x-script-name", "/admin"),
    ("x-authorization", "Bearer stolen-or-forged"),
    ("x-auth-token", "stolen-or-forged"),
];

fn assert_none_forwarded(seen: &Value, except: &[&str]) {
    let headers = seen["headers"].as_object().unwrap();
    for (name, value) in FORGED {
        if except.contains(name) {
            continue;
        }
        let got = headers.get(*name).and_then(Value::as_str).unwrap_or("");
        assert!(!got.contains(value), "{name} reached the upstream: {seen}");
    }
}

#[tokio::test]
async fn client_asserted_headers_do_not_reach_upstreams() {
    let extra = r#"
[[route]]
name = "partner_passthrough"
path_prefix = "/passthrough"
upstream = "main"
forward_authorization = true
"#;
    let forwarding = "[forwarding]\npass_client_headers = [\"X-Forwarded-Prefix\"]\n";
    let (ws, upstream, gw) = plain_gateway(extra, forwarding).await;
    let client = https_client(&ws, None, false);
    for path in ["/echo", "/buffered/echo"] {
        let seen = echoed(&send_with(&client, "GET", &gw.url(path), FORGED, "").await);
        assert_none_forwarded(&seen, &["x-forwarded-prefix"]);
        let headers = &seen["headers"];
        assert_eq!(
            headers["forwarded"],
            "for=127.0.0.1;proto=https;host=\"localhost\""
        );
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(
            headers["x-forwarded-prefix"], "/admin",
            "named exception passes"
        );
        assert_eq!(seen["method"], "GET");
    }
    // The route that opts in forwards Authorization, and nothing else of the list.
    let seen = echoed(&send_with(&client, "GET", &gw.url("/passthrough/echo"), FORGED, "").await);
    assert_eq!(seen["headers"]["authorization"], "Bearer stolen-or-forged");
    assert_none_forwarded(&seen, &["authorization", "x-forwarded-prefix"]);
    // The same over HTTP/2, where every name arrives lower-case.
    let h2 = https_client(&ws, None, true);
    for path in ["/echo", "/buffered/echo"] {
        let seen = echoed(&send_with(&h2, "GET", &gw.url(path), FORGED, "").await);
        assert_none_forwarded(&seen, &["x-forwarded-prefix"]);
        assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");
    }
    let seen = echoed(&send_with(&h2, "GET", &gw.url("/passthrough/echo"), FORGED, "").await);
    assert_eq!(seen["headers"]["authorization"], "Bearer stolen-or-forged");
    assert_none_forwarded(&seen, &["authorization", "x-forwarded-prefix"]);

    // A token in the URL (RFC 6750 `access_token`) never goes upstream either, on plain,
    // buffered and opted-in routes, in any position and encoding of the name.
    let before = upstream.requests();
    for (client, query) in [
        (&client, "access_token=stolen"),
        (&client, "x=1&access_token=stolen"),
        (&h2, "access%5Ftoken=stolen"),
        (&h2, "a=b;c&access_token="),
    ] {
        for path in ["/echo", "/buffered/echo", "/passthrough/echo"] {
            let reply =
                send_with(client, "GET", &gw.url(&format!("{path}?{query}")), &[], "").await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}?{query}");
            assert_eq!(reply.error_code(), "invalid_request", "{path}?{query}");
        }
    }
    assert_eq!(
        upstream.requests(),
        before,
        "a request with a token in its URL went upstream"
    );
    // A parameter that only contains the name is someone else's.
    let seen =
        echoed(&send_with(&client, "GET", &gw.url("/echo?my_access_token=1"), &[], "").await);
    assert_eq!(seen["method"], "GET");
}

/// A protected, decided route (`customers`, the shipped rules) in front of the echo
/// upstream, tellers identified by client certificate.
async fn protected_echo() -> (Workspace, Upstream, Gateway) {
    let ws = Workspace::new();
    let upstream = Upstream::start().await;
    let extra = protected_customers(&ws, "5a", "[a-z0-9-]+");
    let mtls = optional_mtls(&ws);
    let text = without_plain_routes(config(&ws, upstream.addr, &mtls, &extra));
    let path = ws.write("privgate.toml", &text);
    let init = crate::protect::cli(&path, &["keys", "init"]);
    assert!(init.ok, "{}", init.all());
    let gw = Gateway::start(&path);
    (ws, upstream, gw)
}

#[tokio::test]
async fn protected_routes_own_their_framing_and_headers() {
    let (ws, upstream, gw) = protected_echo().await;
    let teller = https_client(&ws, Some("certs/client-b"), false);

    // Item 7a: PII in a form (or text) body that is also a JSON string never goes upstream.
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain;charset=utf-8",
        "multipart/form-data; boundary=b",
    ] {
        let reply = send_with(
            &teller,
            "POST",
            &gw.url("/customers/echo"),
            &[("content-type", content_type)],
            FORM_AS_JSON_STRING,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
    }
    assert_eq!(upstream.requests(), 0);

    // Item 7b: no range goes upstream, no 206 comes back, on a decided route.
    let reply = send_with(
        &teller,
        "GET",
        &gw.url("/customers/echo"),
        &[("range", "bytes=0-10"), ("if-range", "\"x\"")],
        "",
    )
    .await;
    let seen = echoed(&reply);
    assert!(seen["headers"].get("range").is_none(), "{seen}");
    let partial = get(
        &teller,
        &gw.url("/customers/respond?status=206&type=application/json&body=%22AB123456C%22"),
    )
    .await;
    assert_eq!(partial.status, StatusCode::BAD_GATEWAY);
    assert!(!String::from_utf8_lossy(&partial.body).contains("AB123456C"));

    // Variants over HTTP/1.1 and HTTP/2: other non-JSON types, lists and duplicates of
    // Content-Type, a coding, a part; the range headers in every spelling.
    let refused: &[&[(&str, &str)]] = &[
        &[("content-type", "text/json")],
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        &[(
            "content-type",
            "application/json, application/x-www-form-urlencoded",
        )],
        &[
            ("content-type", "application/json"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &[("content-type", "application/json; charset=iso-8859-1")],
        &[("content-type", "application/jsonp")],
        &[
            ("content-type", "application/json"),
            ("content-encoding", "identity, deflate"),
        ],
        &[
            ("content-type", "application/json"),
            ("content-range", "bytes 0-9/99"),
        ],
    ];
    for h2 in [false, true] {
        let client = https_client(&ws, Some("certs/client-b"), h2);
        for headers in refused {
            let reply = send_with(
                &client,
                "POST",
                &gw.url("/customers/echo"),
                headers,
                FORM_AS_JSON_STRING,
            )
            .await;
            assert_eq!(
                reply.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "h2 {h2}: {headers:?}"
            );
        }
        let ranges = [
            ("range", "bytes=0-10"),
            ("request-range", "bytes=0-10"),
            ("if-range", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ("accept-encoding", "gzip, br"),
        ];
        let seen =
            echoed(&send_with(&client, "GET", &gw.url("/customers/echo"), &ranges, "").await);
        for name in ["range", "request-range", "if-range"] {
            assert!(seen["headers"].get(name).is_none(), "h2 {h2}: {seen}");
        }
        assert_eq!(seen["headers"]["accept-encoding"], "identity");
    }
    assert_eq!(
        upstream.requests(),
        4,
        "nothing refused reached the upstream"
    );

    // Item 9 on a decided route: the upstream gets the gateway's headers only.
    let seen = echoed(&send_with(&teller, "GET", &gw.url("/customers/echo"), FORGED, "").await);
    assert_none_forwarded(&seen, &[]);
    assert_eq!(seen["method"], "GET");

    // Item 8 through the binary: other spellings of bound members are refused.
    for member in [
        "National_Id",
        "NATIONALID",
        "nationalId",
        "Name",
        "NAT\u{130}ONAL_ID",
        "national.id",
        "national-ID",
    ] {
        let body = format!(r#"{{"id":"c-77","{member}":"AB123456C"}}"#);
        let reply = send_with(
            &teller,
            "POST",
            &gw.url("/customers/echo"),
            &[("content-type", "application/json")],
            &body,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{member}: {:?}",
            reply.body
        );
        assert_eq!(reply.error_code(), "ambiguous_member");
    }
    // ... and the guard sees names, every number form and forged envelopes.
    for body in [
        r#"{"id":"c-78","cards":{"4111111111111111":"on file"}}"#,
        r#"{"id":"c-78","limit":4.111111111111111e15}"#,
        r#"{"id":"c-78","limit":-5555555555554444.0}"#,
        r#"{"id":"c-78","limit":0.4111111111111111e16}"#,
        r#"{"id":"c-78","limit":41111111111111110E-1}"#,
        r#"{"id":"c-78","on_file":{"card 4111 1111 1111 1111":true}}"#,
        r#"{"id":"c-78","ref":"PGT1.pan.1.4111111111111111"}"#,
        r#"{"id":"c-78","ref":"pgt1.iban.1.4111111111111111"}"#,
        r#"{"id":"c-78","ref":"pgv1.dob.1.amFuZUBleGFtcGxlLmNvbQ hi jane@example.com"}"#,
    ] {
        let reply = send_with(
            &teller,
            "POST",
            &gw.url("/customers/echo"),
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            reply.body
        );
        assert_eq!(reply.error_code(), "pii_detected");
    }
    assert_eq!(
        upstream.requests(),
        5,
        "only the five accepted requests went upstream"
    );
}

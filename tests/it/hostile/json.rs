//! Item 3: hostile JSON on a protected route (`customer_create`, the shipped field rules),
//! in front of the [`Recorder`]. Each row is a body and the clear 4xx (status and error
//! code) it must get, or 200 when it is acceptable; whatever the row, the upstream never
//! receives any of the PII values below in clear, in any spelling JSON allows.

use super::Recorder;
use crate::harness::*;
use http::Request;
use http_body_util::Full;
use serde_json::Value;

const LIMITS: &str = "\n[limits]\nmax_body_bytes = 4096\nmax_json_depth = 8\n";

/// The PII a customer record carries; none may reach the upstream in clear.
const PII: &[&str] = &[
    "Jane Example",
    "jane@example.com",
    "+44 20 7946 0000",
    "900-12-3456",
    "1987-06-05",
    "1 High Street",
    "LS1 1AA",
    "GB82WEST12345698765432",
    "4000001234567899",
    "900123456",
];

/// A valid customer record with `extra` members (JSON text, each with its leading comma).
fn customer(extra: &str) -> String {
    format!(
        r#"{{"id":"c-1","name":"Jane Example","email":"jane@example.com","phone":"+44 20 7946 0000","national_id":"900-12-3456","date_of_birth":"1987-06-05","address":{{"street":"1 High Street","city":"Leeds","postcode":"LS1 1AA"}},"iban":"GB82WEST12345698765432","card_number":"4000001234567899"{extra}}}"#
    )
}

/// `{"id":"c-1",` + `members` + `}`.
fn with(members: &str) -> String {
    format!(r#"{{"id":"c-1",{members}}}"#)
}

/// A body of exactly `len` bytes: a customer padded in an unbound member.
fn padded(len: usize) -> String {
    let base = customer(r#","pad":"""#).len();
    customer(&format!(r#","pad":"{}""#, "a".repeat(len - base)))
}

fn nested(depth: usize) -> String {
    // The record itself is one level: `depth - 1` more in an unbound member.
    with(&format!(
        r#""tags":{}1{}"#,
        "[".repeat(depth - 1),
        "]".repeat(depth - 1)
    ))
}

/// `(what the row tries, body, status, error code)`.
fn rows() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    let s = |text: String| text.into_bytes();
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend(customer("").into_bytes());
    let mut invalid_utf8 = with(r#""name":"J"#).into_bytes();
    invalid_utf8.extend(b"\xff\xfe");
    invalid_utf8.extend(br#"ne Example"}"#);
    let mut overlong_utf8 = with(r#""note":""#).into_bytes();
    overlong_utf8.extend(b"\xc0\xaf");
    overlong_utf8.extend(br#""}"#);
    vec![
        ("a valid record", s(customer("")), 200, ""),
        // Duplicate keys, also spelled with escapes: one spelling the gateway protects and
        // another the upstream reads.
        (
            "duplicate bound key",
            s(customer(r#","national_id":"000-00-0000""#)),
            400,
            "duplicate_key",
        ),
        (
            "duplicate bound key, escaped",
            s(customer(r#","nation\u0061l_id":"x""#)),
            400,
            "duplicate_key",
        ),
        (
            "duplicate bound key, all escaped",
            s(customer(r#","\u006e\u0061\u006d\u0065":"x""#)),
            400,
            "duplicate_key",
        ),
        (
            "duplicate subject id, escaped",
            s(customer(r#","\u0069d":"c-2""#)),
            400,
            "duplicate_key",
        ),
        (
            "duplicate nested key, escaped",
            s(customer(r#","address":{"stre\u0065t":"x"}"#)),
            400,
            "duplicate_key",
        ),
        (
            "duplicate unbound key",
            s(customer(r#","segment":"a","segment":"b""#)),
            400,
            "duplicate_key",
        ),
        (
            "bound key only in escapes",
            s(with(r#""n\u0061me":"Jane Example""#)),
            200,
            "",
        ),
        (
            "bound key spelled otherwise",
            s(with(r#""Name":"Jane Example""#)),
            400,
            "ambiguous_member",
        ),
        // Nesting at and over `max_json_depth` (8).
        ("nesting at the limit", s(nested(8)), 200, ""),
        ("nesting over the limit", s(nested(9)), 400, "json_too_deep"),
        // 2,000 levels in 4,019 bytes: under the size limit, far over serde_json's own 128.
        (
            "nesting far over the limit",
            s(nested(2000)),
            400,
            "json_too_deep",
        ),
        // Numbers.
        (
            "huge integer",
            s(with(r#""limit":123456789012345678901234567890123"#)),
            200,
            "",
        ),
        (
            "huge exponent",
            s(with(r#""limit":1e999999999"#)),
            400,
            "invalid_json",
        ),
        (
            "huge negative exponent",
            s(with(r#""limit":1e-999999999"#)),
            200,
            "",
        ),
        (
            "many-digit fraction",
            s(with(&format!(r#""limit":0.{}"#, "1".repeat(3000)))),
            200,
            "",
        ),
        (
            "card number as a number",
            s(with(r#""limit":4000001234567899"#)),
            422,
            "pii_detected",
        ),
        (
            "card number as an exponent",
            s(with(r#""limit":4.000001234567899e15"#)),
            422,
            "pii_detected",
        ),
        ("NaN", s(with(r#""limit":NaN"#)), 400, "invalid_json"),
        (
            "leading zeros",
            s(with(r#""limit":007"#)),
            400,
            "invalid_json",
        ),
        // Encodings.
        (
            "invalid UTF-8 in a bound value",
            invalid_utf8,
            400,
            "invalid_json",
        ),
        ("overlong UTF-8", overlong_utf8, 400, "invalid_json"),
        (
            "lone high surrogate in a bound value",
            s(with(r#""name":"Jane\ud800 Example""#)),
            400,
            "invalid_json",
        ),
        (
            "lone low surrogate in an unbound value",
            s(with(r#""note":"4000\udc0001234567899""#)),
            400,
            "invalid_json",
        ),
        (
            "lone surrogate in a key",
            s(with(r#""\ud800name":"Jane Example""#)),
            400,
            "invalid_json",
        ),
        (
            "escaped card number in an unbound value",
            s(with(r#""note":"4000\u003001234567899""#)),
            422,
            "pii_detected",
        ),
        ("byte order mark", bom, 400, "invalid_json"),
        (
            "NUL escape in a bound value",
            s(with(r#""name":"Jane\u0000 Example""#)),
            200,
            "",
        ),
        (
            "raw control character",
            s(with("\"note\":\"a\u{1}b\"")),
            400,
            "invalid_json",
        ),
        (
            "trailing garbage",
            s(customer("") + "x"),
            400,
            "invalid_json",
        ),
        (
            "two documents",
            s(customer("") + &customer("")),
            400,
            "invalid_json",
        ),
        // Very long strings.
        (
            "long bound value",
            s(with(&format!(r#""name":"{}""#, "J".repeat(3900)))),
            200,
            "",
        ),
        (
            "long subject id",
            s(format!(r#"{{"id":"c-{}"}}"#, "1".repeat(3000))),
            400,
            "invalid_subject",
        ),
        // Wrong types where a rule binds a class.
        // A number is a value every view can show: protected like a string.
        (
            "bound value a number",
            s(with(r#""national_id":900123456"#)),
            200,
            "",
        ),
        (
            "bound value an object",
            s(with(r#""name":{"first":"Jane","last":"Example"}"#)),
            400,
            "invalid_field",
        ),
        (
            "bound value an array",
            s(with(r#""name":["Jane Example"]"#)),
            400,
            "invalid_field",
        ),
        (
            "bound value true",
            s(with(r#""email":true"#)),
            400,
            "invalid_field",
        ),
        ("bound value null", s(with(r#""email":null"#)), 200, ""),
        (
            "card number as a number where bound",
            s(with(r#""card_number":4000001234567899"#)),
            400,
            "invalid_field",
        ),
        (
            "subject id a number",
            s(r#"{"id":1,"name":"Jane Example"}"#.into()),
            400,
            "invalid_subject",
        ),
        (
            "subject id an array",
            s(r#"{"id":["c-1","c-2"],"name":"Jane Example"}"#.into()),
            400,
            "invalid_subject",
        ),
        (
            "no subject id",
            s(r#"{"name":"Jane Example"}"#.into()),
            400,
            "invalid_subject",
        ),
        (
            "the body an array",
            s(format!("[{}]", customer(""))),
            400,
            "invalid_subject",
        ),
        // Sizes at and over `max_body_bytes` (4096).
        ("body at the limit", s(padded(4096)), 200, ""),
        ("body one byte over", s(padded(4097)), 413, "body_too_large"),
    ]
}

/// Every string, number and key in `value`, decoded.
fn texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| texts(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                texts(v, out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn hostile_json_on_protected_routes_is_refused_and_nothing_clear_goes_upstream() {
    let ws = Workspace::new();
    let upstream = Recorder::start().await;
    let extra = protected_customers(&ws, "5a", "c-[1-9][0-9]{0,11}") + LIMITS;
    let text = without_plain_routes(config(&ws, upstream.addr, &optional_mtls(&ws), &extra));
    let path = ws.write("privgate.toml", &text);
    let init = crate::protect::cli(&path, &["keys", "init"]);
    assert!(init.ok, "{}", init.all());
    let gw = Gateway::start(&path);
    let teller = https_client(&ws, Some("certs/client-b"), false);

    let mut failures = Vec::new();
    for (what, body, status, code) in rows() {
        let before = upstream.count();
        let req = Request::post(gw.url("/customers"))
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let reply = send(&teller, req).await.unwrap();
        let got_code = match reply.status.is_success() {
            true => String::new(),
            false => reply.error_code(),
        };
        let received = upstream.received().split_off(before);
        if (reply.status.as_u16(), got_code.as_str()) != (status, code) {
            failures.push(format!(
                "{what}: want {status} {code}, got {} {got_code} ({} went upstream)",
                reply.status,
                received.len()
            ));
        }
        if status != 200 && !received.is_empty() {
            failures.push(format!("{what}: refused, yet went upstream"));
        }
        // Nothing clear upstream: not in the bytes, nor in any decoded string or key.
        for r in &received {
            let raw = String::from_utf8_lossy(&r.body);
            let mut decoded = vec![raw.to_string()];
            if let Ok(value) = serde_json::from_slice::<Value>(&r.body) {
                texts(&value, &mut decoded);
            }
            for pii in PII {
                if decoded.iter().any(|t| t.contains(pii)) {
                    failures.push(format!(
                        "{what}: `{pii}` reached the upstream in clear: {raw}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

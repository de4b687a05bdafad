//! Request and response bodies under the route's body mode.
//!
//! Stream routes pass bodies through as they arrive, still bounded by the size limit.
//! Buffered routes (those the field-protection phase rewrites) hold the whole body under the
//! limit and refuse anything that is not JSON within the depth limit: a body the gateway
//! cannot examine is never passed on.
//!
//! On buffered routes the gateway also owns the framing, both ways ([`prepare_buffered`],
//! [`check_request_framing`], [`check_response_framing`]): what it examined must be what
//! the other side reads. A non-empty body must say it is JSON (`application/json` or
//! `application/*+json`, UTF-8) in exactly one `Content-Type` and carry no content coding;
//! requests go upstream without `Range`/`If-Range` and asking for the identity coding, and
//! a partial (206) response is never passed on. A form, text or multipart body whose bytes
//! happen to be valid JSON (a JSON string) is refused, not read by the upstream as fields
//! no rule matched. Requests answer 415, upstream responses 502.

use super::error::GatewayError;
use super::proxy_body::{BoxError, ProxyBody};
use crate::protect::document::{Document, DocumentError};
use crate::protect::ProtectError;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Request headers that would make the upstream answer with something other than the whole
/// representation, as is: a byte range, or a content coding the gateway cannot examine.
/// `Request-Range` is the pre-standard spelling some servers still honour.
const PARTIAL_REQUEST: [http::HeaderName; 3] = [
    http::header::RANGE,
    http::header::IF_RANGE,
    http::HeaderName::from_static("request-range"),
];

/// Makes a buffered route's request ask for a whole, unencoded response: `Range`,
/// `Request-Range` and `If-Range` removed, `Accept-Encoding: identity` (no header would accept any coding).
pub(crate) fn prepare_buffered(headers: &mut HeaderMap) {
    for name in &PARTIAL_REQUEST {
        headers.remove(name);
    }
    headers.insert(
        http::header::ACCEPT_ENCODING,
        http::HeaderValue::from_static("identity"),
    );
}

/// Refuses a buffered route's non-empty request body that does not say it is JSON, is
/// content-coded, or claims to be a part (`Content-Range`): 415.
pub(crate) fn check_request_framing(headers: &HeaderMap, bytes: &[u8]) -> Result<(), GatewayError> {
    let partial = headers.contains_key(http::header::CONTENT_RANGE);
    match bytes.is_empty() || (declares_json(headers) && !partial) {
        true => Ok(()),
        false => Err(GatewayError::UnsupportedMediaType),
    }
}

/// Refuses a buffered route's upstream response that is partial (206), or whose non-empty
/// body does not say it is JSON, is content-coded, or is not JSON: 502. The body is read as
/// JSON once: with `parse` (an answer field rules will reveal) into the document they read,
/// which accepts what serde_json accepts and refuses duplicate keys besides (the refusal
/// the field rules would have made); without it only checked.
pub(crate) fn check_response_framing<'b>(
    status: http::StatusCode,
    headers: &HeaderMap,
    bytes: &'b [u8],
    upstream: &str,
    parse: bool,
) -> Result<Option<Document<'b>>, GatewayError> {
    let not_json = || GatewayError::UpstreamNotJson {
        upstream: upstream.to_owned(),
    };
    if status == http::StatusCode::PARTIAL_CONTENT {
        return Err(not_json());
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    if !declares_json(headers) {
        return Err(not_json());
    }
    if !parse {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Ok(None),
            Err(_) => Err(not_json()),
        };
    }
    match Document::parse(bytes) {
        Ok(doc) => Ok(Some(doc)),
        Err(DocumentError::Invalid) => Err(not_json()),
        Err(e) => Err(GatewayError::ResponseProtection(ProtectError::Body(e))),
    }
}

/// Whether the headers say the body is JSON as it is: exactly one JSON `Content-Type` and
/// no content coding other than `identity`.
fn declares_json(headers: &HeaderMap) -> bool {
    let mut types = headers.get_all(http::header::CONTENT_TYPE).iter();
    let json = match (types.next(), types.next()) {
        (Some(value), None) => value.to_str().is_ok_and(is_json_media_type),
        _ => false,
    };
    let coded = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .any(|v| {
            !v.to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("identity"))
        });
    json && !coded
}

/// `application/json` or `application/<something>+json` (RFC 6839), with any parameters,
/// but a `charset` only if it is UTF-8 (RFC 8259: JSON exchanged between systems is UTF-8).
/// The media type grammar is RFC 9110's `type "/" subtype *( OWS ";" OWS parameter )`; a
/// value that does not follow it is not JSON.
fn is_json_media_type(value: &str) -> bool {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let json_type = match essence.strip_prefix("application/") {
        Some("json") => true,
        Some(subtype) => subtype
            .strip_suffix("+json")
            .is_some_and(|prefix| !prefix.is_empty() && prefix.bytes().all(is_token_byte)),
        None => false,
    };
    json_type
        && parts.all(|parameter| {
            // RFC 9110 allows empty parameters (`application/json;`).
            if parameter.trim().is_empty() {
                return true;
            }
            let Some((name, value)) = parameter.trim().split_once('=') else {
                return false;
            };
            let value = value.trim().trim_matches('"');
            !name.is_empty()
                && name.bytes().all(is_token_byte)
                && (!name.eq_ignore_ascii_case("charset")
                    || value.eq_ignore_ascii_case("utf-8")
                    || value.eq_ignore_ascii_case("utf8"))
        })
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Refuses a declared `Content-Length` over the limit before reading any of the body.
pub(crate) fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), GatewayError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit => Err(GatewayError::BodyTooLarge),
        _ => Ok(()),
    }
}

/// Wraps a client body so that it streams upstream but stops at the size limit and the
/// body deadline. Its errors are [`ClientBodyError`]s, so a failed upstream exchange can say
/// the client caused it ([`client_body_failure`]).
pub(crate) fn stream_limited(body: Incoming, limits: &crate::config::Limits) -> ProxyBody {
    let limit = usize::try_from(limits.max_body_bytes).unwrap_or(usize::MAX);
    Limited::new(Deadline::new(body, limits.request_body_timeout), limit)
        .map_err(|e| Box::new(ClientBodyError(e)) as BoxError)
        .boxed_unsync()
}

/// The client's request body failed while it streamed upstream (bad chunked framing, a
/// reset, the size limit, the deadline): the client's fault, whatever the upstream
/// exchange reports.
#[derive(Debug, thiserror::Error)]
#[error("client request body failed")]
pub(crate) struct ClientBodyError(#[source] BoxError);

/// True when `err`, or one of its causes, is a [`ClientBodyError`].
pub(crate) fn is_client_body_error(err: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<ClientBodyError>(err)
}

/// The refusal for a client body that could not be read: over the size limit (413), past
/// its deadline (408), or broken (400).
pub(crate) fn client_body_failure(err: BoxError) -> GatewayError {
    if is_length_limit(err.as_ref()) {
        GatewayError::BodyTooLarge
    } else if caused_by::<BodyTimedOut>(err.as_ref()) {
        GatewayError::RequestBodyTimeout
    } else {
        GatewayError::ClientBody(err)
    }
}

/// The request body did not arrive whole within `limits.request_body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("request body not received in time")]
struct BodyTimedOut;

/// A client's request body that must arrive whole by a deadline (slow body): once it
/// passes, the next poll that would wait fails with [`BodyTimedOut`].
struct Deadline {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    /// The clock starts now, when the gateway starts reading the body.
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// True when `err` or one of its sources is an `E`.
fn caused_by<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<E>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// True when an error (from the upstream client) was caused by the size limit on the
/// streamed request body.
pub(crate) fn is_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<LengthLimitError>(err)
}

/// Reads a whole client body under the size limit and deadline and checks it is JSON no
/// deeper than the depth limit. An empty body is allowed (e.g. GET).
async fn buffer_request(
    body: Incoming,
    limits: &crate::config::Limits,
) -> Result<Bytes, GatewayError> {
    let bytes = collect_request(body, limits).await?;
    if !bytes.is_empty() {
        check_json(&bytes, limits.max_json_depth)?;
    }
    Ok(bytes)
}

/// A buffered route's request body: read whole under the limits, framed as JSON (else 415,
/// before its bytes are looked at) and JSON no deeper than the limit.
pub(crate) async fn buffer_forwarded(
    headers: &HeaderMap,
    body: Incoming,
    limits: &crate::config::Limits,
) -> Result<Bytes, GatewayError> {
    let bytes = collect_request(body, limits).await?;
    check_request_framing(headers, &bytes)?;
    if !bytes.is_empty() {
        check_json(&bytes, limits.max_json_depth)?;
    }
    Ok(bytes)
}

async fn collect_request(
    body: Incoming,
    limits: &crate::config::Limits,
) -> Result<Bytes, GatewayError> {
    let body = Deadline::new(body, limits.request_body_timeout);
    collect_limited(body, limits.max_body_bytes)
        .await
        .map_err(client_body_failure)
}

/// The JSON body of a call to an API the gateway serves itself, under the configured limits:
/// a declared length over the limit is refused before anything is read.
pub(crate) async fn buffer_served(
    headers: &HeaderMap,
    body: Incoming,
    limits: &crate::config::Limits,
) -> Result<Bytes, GatewayError> {
    check_declared_length(headers, limits.max_body_bytes)?;
    buffer_request(body, limits).await
}

/// The form body of a console POST (`application/x-www-form-urlencoded`, else 415), read
/// whole under the configured limits; a declared length over the limit is refused before
/// anything is read.
pub(crate) async fn buffer_form(
    headers: &HeaderMap,
    body: Incoming,
    limits: &crate::config::Limits,
) -> Result<Bytes, GatewayError> {
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(GatewayError::UnsupportedMediaType);
    }
    check_declared_length(headers, limits.max_body_bytes)?;
    collect_request(body, limits).await
}

/// Reads a whole upstream response body under `limit`.
pub(crate) async fn buffer_response(
    body: super::upstream::UpstreamBody,
    limit: u64,
    upstream: &str,
) -> Result<Bytes, GatewayError> {
    collect_limited(body, limit).await.map_err(|e| {
        if is_length_limit(e.as_ref()) {
            GatewayError::UpstreamResponseTooLarge {
                upstream: upstream.to_owned(),
            }
        } else {
            GatewayError::UpstreamFailed {
                upstream: upstream.to_owned(),
                cause: e,
            }
        }
    })
}

async fn collect_limited<B>(body: B, limit: u64) -> Result<Bytes, BoxError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(limited.collect().await?.to_bytes())
}

/// The amount at `path` in a (checked) JSON body: exactly one integer, else refused. A body
/// that also spells the amount's member otherwise (`Amount_Minor` beside `amount_minor`), or
/// has a member twice, is refused: a case-insensitive upstream, or one that reads the first
/// of two, could read an amount policy never saw.
pub(crate) fn amount(path: &serde_json_path::JsonPath, bytes: &[u8]) -> Result<i64, GatewayError> {
    let doc = Document::parse(bytes).map_err(|_| GatewayError::InvalidAmount)?;
    if crate::protect::rules::misspells_selector(path, doc.root()) {
        return Err(GatewayError::InvalidAmount);
    }
    let node = path
        .query(doc.value().map_err(|_| GatewayError::InvalidAmount)?)
        .exactly_one()
        .map_err(|_| GatewayError::InvalidAmount)?;
    node.as_i64().ok_or(GatewayError::InvalidAmount)
}

/// A buffered body as a proxy body.
pub(crate) fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Checks nesting depth first (a cheap linear scan that stops deep inputs before any tree is
/// built), then validity with serde_json.
fn check_json(bytes: &[u8], max_depth: usize) -> Result<(), GatewayError> {
    if nesting_depth_exceeds(bytes, max_depth) {
        return Err(GatewayError::JsonTooDeep);
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|_| GatewayError::InvalidJson)?;
    Ok(())
}

/// True if brackets outside strings nest deeper than `max_depth`. Not a validator: malformed
/// input is left to serde_json; this only bounds its work.
fn nesting_depth_exceeds(bytes: &[u8], max_depth: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_checks_at_the_depth_limit() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        // (body, max depth, expected)
        let cases: Vec<(String, usize, Result<(), &str>)> = vec![
            (nested(4), 4, Ok(())),
            (nested(5), 4, Err("json_too_deep")),
            (r#"{"a":"[[[[[[[["}"#.into(), 2, Ok(())),
            (r#"{"a":"\"[[[["}"#.into(), 1, Ok(())),
            (r#"{"a":[{"b":[1]}]}"#.into(), 4, Ok(())),
            (r#"{"a":[{"b":[1]}]}"#.into(), 3, Err("json_too_deep")),
            ("{\"a\":".into(), 4, Err("invalid_json")),
            ("not json".into(), 4, Err("invalid_json")),
            ("{} {}".into(), 4, Err("invalid_json")),
        ];
        for (body, depth, expected) in cases {
            let got = check_json(body.as_bytes(), depth)
                .map_err(|e| crate::gateway::rescue::refusal(&e).code());
            assert_eq!(got, expected, "{body} at depth {depth}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_json_media_types_frame_a_buffered_body() {
        // (Content-Type, JSON?)
        let cases = [
            ("application/json", true),
            ("Application/JSON", true),
            ("application/json; charset=utf-8", true),
            ("application/json;", true),
            ("application/json;charset=\"UTF-8\"", true),
            ("application/problem+json", true),
            ("application/vnd.bank.customer+json; version=2", true),
            ("application/x-www-form-urlencoded", false),
            ("multipart/form-data; boundary=x", false),
            ("text/plain", false),
            ("text/json", false),
            ("application/jsonp", false),
            ("application/json-seq", false),
            ("application/+json", false),
            ("application/json; charset=utf-16", false),
            ("application/json; charset=iso-8859-1", false),
            ("application/json, text/plain", false),
            ("application/json; garbage", false),
            ("application/xml", false),
            ("", false),
        ];
        let body = br#""&name=Jane&national_id=123""#;
        for (content_type, json) in cases {
            let h = headers(&[("content-type", content_type)]);
            assert_eq!(
                check_request_framing(&h, body).is_ok(),
                json,
                "{content_type:?}"
            );
            assert_eq!(
                response_ok(http::StatusCode::OK, &h, body),
                json,
                "{content_type:?}"
            );
        }
    }

    #[test]
    fn framing_the_gateway_cannot_examine_is_refused() {
        let json = ("content-type", "application/json");
        let body = br#"{"national_id":"123"}"#;
        // (headers, request ok?)
        let cases: Vec<(Vec<(&str, &str)>, bool)> = vec![
            (vec![json], true),
            (vec![json, ("content-encoding", "identity")], true),
            (vec![], false),
            (vec![json, ("content-type", "application/json")], false),
            (vec![json, ("content-type", "text/plain")], false),
            (vec![json, ("content-encoding", "gzip")], false),
            (vec![json, ("content-encoding", "br")], false),
            (vec![json, ("content-range", "bytes 0-20/100")], false),
        ];
        for (pairs, ok) in cases {
            let h = headers(&pairs);
            assert_eq!(check_request_framing(&h, body).is_ok(), ok, "{pairs:?}");
        }
        // An empty body has nothing to examine, whatever its headers say.
        let form = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        assert!(check_request_framing(&form, b"").is_ok());
        assert!(response_ok(http::StatusCode::NO_CONTENT, &form, b""));
    }

    #[test]
    fn partial_or_non_json_responses_are_refused() {
        let json = headers(&[("content-type", "application/json")]);
        let ok = |status: u16, h: &HeaderMap, body: &[u8]| {
            response_ok(http::StatusCode::from_u16(status).unwrap(), h, body)
        };
        assert!(ok(200, &json, br#"{"a":1}"#));
        assert!(ok(404, &json, br#"{"error":"not found"}"#));
        // 206 with a JSON-looking part of the body, or with none.
        assert!(!ok(206, &json, br#""4111111111111111""#));
        assert!(!ok(206, &json, b""));
        // Declared JSON that is not (a byte range, HTML error page, gzip bytes).
        assert!(!ok(200, &json, br#"national_id":"123"#));
        assert!(!ok(500, &json, b"<html>error</html>"));
        let gzip = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ]);
        assert!(!ok(200, &gzip, br#"{"a":1}"#));
        for parse in [false, true] {
            let err =
                check_response_framing(http::StatusCode::PARTIAL_CONTENT, &json, b"1", "u", parse);
            let refusal = crate::gateway::rescue::refusal(&err.unwrap_err());
            assert_eq!(refusal.status(), http::StatusCode::BAD_GATEWAY);
        }
    }

    /// Whether an answer passes the response framing check; checked and parsed alike.
    fn response_ok(status: http::StatusCode, h: &HeaderMap, body: &[u8]) -> bool {
        let checked = check_response_framing(status, h, body, "u", false);
        let parsed = check_response_framing(status, h, body, "u", true);
        assert_eq!(checked.is_ok(), parsed.is_ok(), "{body:?}");
        if let Ok(parsed) = parsed {
            // The parse is handed on exactly when there is a body to read.
            assert_eq!(parsed.is_some(), !body.is_empty());
        }
        checked.is_ok()
    }

    #[test]
    fn a_parsed_answer_is_refused_as_a_checked_one_is_and_duplicates_besides() {
        let json = headers(&[("content-type", "application/json")]);
        let status = http::StatusCode::OK;
        let refused = |body: &[u8], parse: bool| {
            let err = check_response_framing(status, &json, body, "u", parse).unwrap_err();
            (
                err.to_string(),
                crate::gateway::rescue::refusal(&err).status(),
            )
        };
        // Not JSON: the same refusal, parsed or checked (a truncated body, trailing bytes).
        for body in [&br#"{"pan":"4111"#[..], br#"{"a":1} x"#] {
            assert_eq!(refused(body, true), refused(body, false), "{body:?}");
            let err = check_response_framing(status, &json, body, "u", true).unwrap_err();
            assert!(
                matches!(err, GatewayError::UpstreamNotJson { .. }),
                "{body:?}"
            );
        }
        // The check skips what it reads (escapes unread, nesting unbounded); the parse reads
        // it as serde_json reads a value: a lone surrogate, or nesting past serde_json's 128
        // levels, passes the check and is refused by the parse as not JSON.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for body in [&br#"{"name":"\ud800"}"#[..], deep.as_bytes()] {
            assert!(check_response_framing(status, &json, body, "u", false).is_ok());
            let err = check_response_framing(status, &json, body, "u", true).unwrap_err();
            assert!(
                matches!(err, GatewayError::UpstreamNotJson { .. }),
                "{body:?}"
            );
        }
        // A duplicate key passes the check (JSON allows it) and is refused by the parse,
        // as the field rules refused it when they parsed the answer themselves.
        let twice = br#"{"pan":"4111111111111111","pan":"x"}"#;
        assert!(check_response_framing(status, &json, twice, "u", false).is_ok());
        let (message, refusal) = refused(twice, true);
        assert!(message.contains("duplicate"), "{message}");
        assert_eq!(refusal, http::StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn buffered_requests_ask_for_the_whole_identity_representation() {
        let mut h = headers(&[
            ("range", "bytes=10-30"),
            ("if-range", "\"etag\""),
            ("request-range", "bytes=0-5"),
            ("accept-encoding", "gzip, br"),
            ("accept", "application/json"),
        ]);
        prepare_buffered(&mut h);
        for name in ["range", "if-range", "request-range"] {
            assert!(!h.contains_key(name), "{name}");
        }
        assert_eq!(h["accept-encoding"], "identity");
        assert_eq!(h["accept"], "application/json");
    }

    #[test]
    fn the_amount_is_one_integer_spelled_as_the_route_says() {
        let path = serde_json_path::JsonPath::parse("$.payment.amount_minor").unwrap();
        // (body, amount)
        let cases = [
            (r#"{"payment":{"amount_minor":1250}}"#, Ok(1250)),
            (
                r#"{"payment":{"amount_minor":1250,"Amount_Minor":9000000}}"#,
                Err(()),
            ),
            (
                r#"{"payment":{"amount_minor":1,"amountMinor":9000000}}"#,
                Err(()),
            ),
            (
                r#"{"payment":{"amount_minor":1},"Payment":{"amount_minor":9}}"#,
                Err(()),
            ),
            (r#"{"payment":{"AMOUNT_MINOR":1250}}"#, Err(())),
            (r#"{"payment":{"amount_minor":1250.0}}"#, Err(())),
            (r#"{"payment":{"amount_minor":"1250"}}"#, Err(())),
            // A member twice, however spelled: an upstream reading the first would see an
            // amount other than the one decided (serde_json alone keeps the last).
            (
                r#"{"payment":{"amount_minor":1,"amount_minor":9000000}}"#,
                Err(()),
            ),
            (
                r#"{"payment":{"amount_minor":9000000,"amount\u005fminor":1}}"#,
                Err(()),
            ),
            (
                r#"{"payment":{"amount_minor":1},"payment":{"amount_minor":9000000}}"#,
                Err(()),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                amount(&path, body.as_bytes()).map_err(|_| ()),
                want,
                "{body}"
            );
        }
    }

    #[test]
    fn declared_length_over_limit_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_LENGTH, "11".parse().unwrap());
        assert!(check_declared_length(&h, 10).is_err());
        assert!(check_declared_length(&h, 11).is_ok());
    }
}

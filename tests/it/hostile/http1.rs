//! Item 2, HTTP/1.1 framing: one table of raw requests written over a real TLS connection.
//!
//! Each row is the bytes a client writes and what must come of them: the status it is
//! refused with (nothing reaching the upstream), or normalised into exactly the requests listed
//! (the upstream sees each with one framing). Whatever the row, no request the client hid
//! inside another (`/smuggled`) ever reaches the upstream.

use super::{Received, Recorder};
use crate::harness::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What must come of a row's bytes.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// The first answer has this status and nothing reaches the upstream.
    Refused(u16),
    /// Answered 200 after forwarding exactly these requests (`METHOD target`), in order.
    Forwarded(&'static [&'static str]),
}
use Outcome::*;

/// `(what the row tries, bytes, outcome)`.
type Row = (&'static str, &'static [u8], Outcome);

const ROWS: &[Row] = &[
    (
        "baseline",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello",
        Forwarded(&["POST /echo"]),
    ),
    (
        "CL then TE: chunked wins, the rest is not a request",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Forwarded(&["POST /echo"]),
    ),
    (
        "TE then CL",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Forwarded(&["POST /echo"]),
    ),
    (
        "TE list not ending in chunked",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, x\r\n\r\n0\r\n\r\n",
        Refused(400),
    ),
    (
        "TE list with an unknown coding before chunked",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: x, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Refused(400),
    ),
    (
        "TE gzip, chunked",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Refused(400),
    ),
    (
        "TE chunked twice in one list",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Refused(400),
    ),
    (
        "duplicate TE lines, last not chunked",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        Refused(400),
    ),
    (
        "duplicate TE lines, last chunked",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Refused(400),
    ),
    (
        "TE in upper case",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Forwarded(&["POST /echo"]),
    ),
    (
        "TE with tab and trailing spaces",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:\tchunked  \r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Forwarded(&["POST /echo"]),
    ),
    (
        "TE with a space before the colon",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello",
        Refused(400),
    ),
    (
        "TE value with a vertical tab",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: \x0bchunked\r\nContent-Length: 5\r\n\r\nhello",
        Refused(400),
    ),
    (
        "TE spelled with an underscore beside a length",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
        Forwarded(&["POST /echo"]),
    ),
    (
        "Content-Length spelled with an underscore",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent_Length: 50\r\nContent-Length: 5\r\n\r\nhello",
        Forwarded(&["POST /echo"]),
    ),
    (
        "TE on HTTP/1.0",
        b"POST /echo HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        Refused(400),
    ),
    (
        "two different lengths",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        Refused(400),
    ),
    (
        "a length list",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 6\r\n\r\nhello!",
        Refused(400),
    ),
    (
        "a signed length",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello",
        Refused(400),
    ),
    (
        "a length over 64 bits",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999999\r\n\r\nhello",
        Refused(400),
    ),
    (
        "chunk size over 64 bits",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
        Refused(400),
    ),
    (
        "chunk size wrapping to a small number",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
        Refused(400),
    ),
    (
        "chunk size with a 0x prefix",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        Refused(400),
    ),
    (
        "negative chunk size",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        Refused(400),
    ),
    (
        "chunk data longer than its size",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Refused(400),
    ),
    (
        "bare LF line ends",
        b"GET /echo HTTP/1.1\nHost: localhost\n\n",
        Forwarded(&["GET /echo"]),
    ),
    (
        "bare LF inside a header hides TE",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nX-A: a\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        Forwarded(&["POST /echo"]),
    ),
    (
        "bare LF in chunked framing",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
        Refused(400),
    ),
    (
        "bare CR as a line end",
        b"GET /echo HTTP/1.1\rHost: localhost\r\n\r\n",
        Refused(400),
    ),
    (
        "obs-fold continuation line",
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n b\r\n\r\n",
        Refused(400),
    ),
    (
        "obs-fold hiding TE",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
        Refused(400),
    ),
    (
        "leading whitespace before the first header",
        b"GET /echo HTTP/1.1\r\n Host: localhost\r\n\r\n",
        Refused(400),
    ),
    ("space in a header name", b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX A: b\r\n\r\n", Refused(400)),
    ("NUL in a header name", b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX\x00A: b\r\n\r\n", Refused(400)),
    ("separator in a header name", b"GET /echo HTTP/1.1\r\nHost: localhost\r\n(x): b\r\n\r\n", Refused(400)),
    ("non-ASCII header name", b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX-\xc3\xa9: b\r\n\r\n", Refused(400)),
    ("empty header name", b"GET /echo HTTP/1.1\r\nHost: localhost\r\n: b\r\n\r\n", Refused(400)),
    ("NUL in a header value", b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX-A: a\x00b\r\n\r\n", Refused(400)),
    ("CR in a header value", b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX-A: a\rb\r\n\r\n", Refused(400)),
    ("DEL in a header value", b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX-A: a\x7fb\r\n\r\n", Refused(400)),
    (
        "absolute-form target naming the same host",
        b"GET https://localhost/echo HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Forwarded(&["GET /echo"]),
    ),
    (
        "absolute-form target naming another host",
        b"GET https://admin.internal/echo HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Refused(400),
    ),
    (
        "absolute-form target with a plain-HTTP scheme",
        b"GET http://localhost/echo HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Forwarded(&["GET /echo"]),
    ),
    (
        "authority-form target on CONNECT",
        b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n",
        Refused(400),
    ),
    (
        "authority-form target on GET",
        b"GET localhost:443 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Refused(400),
    ),
    ("asterisk-form target", b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n", Refused(400)),
    ("no Host on HTTP/1.1", b"GET /echo HTTP/1.1\r\n\r\n", Refused(400)),
    (
        "two Host lines",
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nHost: admin.internal\r\n\r\n",
        Refused(400),
    ),
    ("a Host that is not a host", b"GET /echo HTTP/1.1\r\nHost: a b\r\n\r\n", Refused(400)),
    ("a Host with userinfo", b"GET /echo HTTP/1.1\r\nHost: me@localhost\r\n\r\n", Refused(400)),
    ("HTTP/1.0 without Host", b"GET /echo HTTP/1.0\r\n\r\n", Forwarded(&["GET /echo"])),
    ("unknown HTTP version", b"GET /echo HTTP/1.2\r\nHost: localhost\r\n\r\n", Refused(400)),
    ("garbage request line", b"\x16\x03\x01\x00\xa5\x01\x00\x00\r\n\r\n", Refused(400)),
    (
        "request line with two spaces",
        b"GET  /echo HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Refused(400),
    ),
    (
        "trailer naming framing headers",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 50\r\nTransfer-Encoding: identity\r\n\r\n",
        Forwarded(&["POST /echo"]),
    ),
];

/// Writes `bytes` on a fresh connection and reads what comes back until the gateway closes
/// or stays quiet for a moment after answering.
async fn exchange(ws: &Workspace, gw: &Gateway, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut stream = raw_tls(ws, gw.addr).await;
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let quiet = match out.is_empty() {
            true => deadline,
            false => deadline.min(tokio::time::Instant::now() + Duration::from_millis(400)),
        };
        match tokio::time::timeout_at(quiet, stream.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status codes of the responses in `bytes`, in order.
fn statuses(bytes: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("HTTP/1.")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// Why `r` is not a request the upstream can read only one way, if it is not.
fn unambiguous(r: &Received) -> Result<(), String> {
    if r.target.contains("smuggled") {
        return Err(format!("a hidden request went upstream: {r:?}"));
    }
    r.check_framing()?;
    // An upstream that reads `_` as `-` (CGI and the frameworks on it) would take these as
    // the framing or routing headers the gateway set.
    for (header, _) in &r.headers {
        let dashed = header.replace('_', "-");
        let framing = [
            "transfer-encoding",
            "content-length",
            "connection",
            "host",
            "te",
        ];
        if *header != dashed && framing.contains(&dashed.as_str()) {
            return Err(format!("`{header}` went upstream: {r:?}"));
        }
    }
    Ok(())
}

#[tokio::test]
async fn hostile_http1_framing_is_refused_or_normalised_never_smuggled() {
    let ws = Workspace::new();
    let upstream = Recorder::start().await;
    let limits = "[limits]\nheader_read_timeout = \"2s\"\n";
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, upstream.addr, "", limits)));
    let mut failures = Vec::new();
    for (name, bytes, outcome) in ROWS {
        let before = upstream.count();
        let (answer, closed) = exchange(&ws, &gw, bytes).await;
        // The upstream has finished with anything forwarded once the client has its answer.
        let received: Vec<Received> = upstream.received().split_off(before);
        let got = statuses(&answer);
        let forwarded: Vec<String> = received
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect();
        let ok = match outcome {
            Refused(status) => got.first() == Some(status) && received.is_empty(),
            Forwarded(targets) => got.first() == Some(&200) && forwarded == *targets,
        };
        if !ok {
            failures.push(format!(
                "{name}: want {outcome:?}, got statuses {got:?} closed {closed} upstream {forwarded:?}\n  {:?}",
                String::from_utf8_lossy(&answer).lines().next().unwrap_or("")
            ));
        }
        for r in &received {
            if let Err(why) = unambiguous(r) {
                failures.push(format!("{name}: {why}"));
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

//! Item 2, HTTP/2: raw frames and the h2 client against the listener.
//!
//! - `Host` that disagrees with `:authority` is refused; an oversized header list is
//!   refused before anything goes upstream.
//! - Rapid reset (CVE-2023-44487), CONTINUATION floods and control-frame floods (SETTINGS,
//!   PING, empty DATA, WINDOW_UPDATE) end in the connection being closed (or, for frames
//!   that need an answer, held by back-pressure) while a normal client is served and the
//!   gateway's memory stays flat.

use super::Recorder;
use crate::harness::*;
use bytes::Bytes;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// One frame: 9-byte header, then the payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK header block for `GET https://localhost{path}`: static-table indices and
/// literals without Huffman coding (RFC 7541).
fn get_block(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x87]; // :method GET, :scheme https
    for (index, value) in [(4u8, path), (1, "localhost")] {
        block.push(index); // literal without indexing, indexed name (:path, :authority)
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

async fn h2_tls(ws: &Workspace, gw: &Gateway) -> Tls {
    let connector =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_tls(ws, None, &[b"h2"])));
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

/// What the gateway did with a raw connection: the GOAWAY error code it sent, if any,
/// and whether it closed the connection.
#[derive(Debug, Default)]
struct Ending {
    goaway: Option<u32>,
    closed: bool,
    /// Streams the gateway answered with HEADERS.
    answered: usize,
}

/// Reads frames until the gateway closes the connection or `limit` passes.
async fn read_frames<R: tokio::io::AsyncRead + Unpin>(reader: &mut R, limit: Duration) -> Ending {
    let mut ending = Ending::default();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let payload = &buf[9..9 + len];
            match buf[3] {
                GOAWAY if len >= 8 => {
                    ending.goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()))
                }
                HEADERS => ending.answered += 1,
                _ => {}
            }
            buf.drain(..9 + len);
        }
        match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
            Err(_) => return ending,
            Ok(Ok(0)) | Ok(Err(_)) => {
                ending.closed = true;
                return ending;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The gateway's resident set in KiB.
fn rss_kib(gw: &Gateway) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn setup() -> (Workspace, Recorder, Gateway) {
    let ws = Workspace::new();
    let upstream = Recorder::start().await;
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, upstream.addr, "", "")));
    (ws, upstream, gw)
}

/// A normal HTTP/2 client's request succeeds.
async fn normal_client_served(ws: &Workspace, gw: &Gateway) {
    let client = https_client(ws, None, true);
    let reply = tokio::time::timeout(Duration::from_secs(5), async {
        get(&client, &gw.url("/echo/normal")).await
    })
    .await
    .expect("a normal client was not served during the attack");
    assert_eq!(reply.status, http::StatusCode::OK);
}

#[tokio::test]
async fn http2_host_must_agree_with_authority_and_header_lists_are_bounded() {
    let (ws, upstream, gw) = setup().await;
    let client = https_client(&ws, None, true);
    // (extra headers, status)
    let cases: &[(&[(&str, &str)], u16)] = &[
        (&[], 200),
        (&[("host", "localhost")], 200),
        (&[("host", "LOCALHOST")], 200),
        (&[("host", "admin.internal")], 400),
        (&[("host", "localhost"), ("host", "localhost")], 400),
        (&[("host", "me@localhost")], 400),
    ];
    for (headers, status) in cases {
        let mut req = http::Request::get(gw.url("/echo/h2"));
        for (k, v) in *headers {
            req = req.header(*k, *v);
        }
        let reply = send(&client, req.body(Default::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(reply.status.as_u16(), *status, "{headers:?}");
        if *status == 400 {
            assert_eq!(reply.error_code(), "malformed_request");
        }
    }
    assert_eq!(
        upstream.count(),
        3,
        "only the agreeing requests went upstream"
    );

    // A header list over `max_header_bytes` (16 KiB): refused by h2 before the gateway,
    // in one header or spread over many.
    for headers in [
        vec![("x-big".to_owned(), "v".repeat(20 * 1024))],
        (0..90)
            .map(|i| (format!("x-h{i}"), "v".repeat(200)))
            .collect(),
    ] {
        let mut req = http::Request::get(gw.url("/echo/h2-big"));
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let outcome = send(&client, req.body(Default::default()).unwrap()).await;
        match outcome {
            Ok(reply) => assert_eq!(reply.status.as_u16(), 431),
            Err(e) => assert!(
                format!("{e:?}").contains("REFUSED")
                    || format!("{e:?}").contains("PROTOCOL")
                    || format!("{e:?}").contains("FRAME_SIZE"),
                "{e:?}"
            ),
        }
    }
    assert_eq!(upstream.count(), 3);
    normal_client_served(&ws, &gw).await;
}

/// How a rapid-reset client spaces its frames: streams per write, and whether each
/// stream's RST_STREAM goes in a later write than its HEADERS (so the gateway may already
/// have accepted the stream when the reset arrives).
const RAPID_RESETS: &[(&str, u32, bool)] = &[
    ("100 streams a write", 100, false),
    ("one stream a write", 1, false),
    ("reset in the next write", 1, true),
];

#[tokio::test]
async fn http2_rapid_reset_closes_the_connection() {
    let (ws, upstream, gw) = setup().await;
    for (what, per_write, reset_apart) in RAPID_RESETS {
        let (per_write, reset_apart) = (*per_write, *reset_apart);
        let before = upstream.count();
        let tls = h2_tls(&ws, &gw).await;
        let (mut reader, mut writer) = tokio::io::split(tls);
        let started = std::time::Instant::now();
        let attack = tokio::spawn(async move {
            writer.write_all(PREFACE).await.ok()?;
            writer.write_all(&frame(SETTINGS, 0, 0, &[])).await.ok()?;
            // 10,000 streams, each opened and cancelled at once.
            let block = get_block("/echo/reset");
            let mut stream = 1u32;
            for _ in 0..10_000 / per_write {
                let (mut opens, mut resets) = (Vec::new(), Vec::new());
                for _ in 0..per_write {
                    opens.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &block));
                    resets.extend(frame(RST_STREAM, 0, stream, &0x8u32.to_be_bytes()));
                    stream += 2;
                }
                if reset_apart {
                    writer.write_all(&opens).await.ok()?;
                    writer.flush().await.ok()?;
                    tokio::task::yield_now().await;
                } else {
                    resets = [opens, resets].concat();
                }
                writer.write_all(&resets).await.ok()?;
                writer.flush().await.ok()?;
            }
            Some(())
        });
        let ending = read_frames(&mut reader, Duration::from_secs(20)).await;
        let _ = attack.await;
        let forwarded = upstream.count() - before;
        eprintln!(
            "rapid reset, {what}: {ending:?} after {:?}, {forwarded} of 10,000 went upstream",
            started.elapsed()
        );
        assert!(ending.closed, "{what}: {ending:?}");
        assert!(
            forwarded < 1000,
            "{what}: {forwarded} cancelled requests went upstream"
        );
        normal_client_served(&ws, &gw).await;
    }
}

#[tokio::test]
async fn http2_continuation_flood_closes_the_connection() {
    let (ws, upstream, gw) = setup().await;
    let tls = h2_tls(&ws, &gw).await;
    let (mut reader, mut writer) = tokio::io::split(tls);
    let before = rss_kib(&gw);
    let attack = tokio::spawn(async move {
        writer.write_all(PREFACE).await.ok()?;
        writer.write_all(&frame(SETTINGS, 0, 0, &[])).await.ok()?;
        writer
            .write_all(&frame(HEADERS, 0, 1, &get_block("/echo/flood")))
            .await
            .ok()?;
        // Header block fragments that never end: a literal header each (name and value
        // one byte), then empty fragments.
        let literal = [0x00, 0x01, b'x', 0x01, b'y'];
        for round in 0..2_000 {
            let payload: &[u8] = if round % 2 == 0 { &literal } else { &[] };
            let mut bytes = Vec::new();
            for _ in 0..100 {
                bytes.extend(frame(CONTINUATION, 0, 1, payload));
            }
            writer.write_all(&bytes).await.ok()?;
        }
        Some(())
    });
    let ending = read_frames(&mut reader, Duration::from_secs(10)).await;
    let _ = attack.await;
    eprintln!("CONTINUATION flood: {ending:?}");
    assert!(ending.closed && ending.goaway.is_some(), "{ending:?}");
    assert_eq!(upstream.count(), 0);
    let grown = rss_kib(&gw).saturating_sub(before);
    assert!(grown < 20 * 1024, "resident set grew {grown} KiB");
    normal_client_served(&ws, &gw).await;
}

/// Floods of frames each harmless alone: the gateway either closes the connection or
/// stops reading it (back-pressure) without its memory growing, and serves others.
#[tokio::test]
async fn http2_control_frame_floods_are_bounded() {
    let (ws, _upstream, gw) = setup().await;
    // (what, one frame of the flood)
    let floods: Vec<(&str, Vec<u8>)> = vec![
        ("SETTINGS", frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100])),
        ("PING", frame(PING, 0, 0, &[7; 8])),
        (
            "WINDOW_UPDATE",
            frame(WINDOW_UPDATE, 0, 0, &1u32.to_be_bytes()),
        ),
        ("empty DATA", frame(DATA, 0, 1, &[])),
    ];
    for (what, one) in floods {
        let before = rss_kib(&gw);
        let tls = h2_tls(&ws, &gw).await;
        let (reader, mut writer) = tokio::io::split(tls);
        let flood = Bytes::from(one.repeat(10_000));
        // The attacker never reads: answers (SETTINGS ACKs, PING replies) pile up on its side.
        let attack = tokio::spawn(async move {
            writer.write_all(PREFACE).await.ok()?;
            writer.write_all(&frame(SETTINGS, 0, 0, &[])).await.ok()?;
            // The empty-DATA flood needs an open stream to land on.
            let open = frame(HEADERS, END_HEADERS, 1, &get_block("/echo/flood"));
            writer.write_all(&open).await.ok()?;
            let mut written = 0usize;
            for _ in 0..100 {
                writer.write_all(&flood).await.ok()?;
                written += 10_000;
            }
            Some(written)
        });
        let written = tokio::time::timeout(Duration::from_secs(5), attack).await;
        let grown = rss_kib(&gw).saturating_sub(before);
        normal_client_served(&ws, &gw).await;
        eprintln!(
            "{what} flood: {} of 1,000,000 frames written in 5 s; resident set +{grown} KiB",
            match &written {
                Ok(Ok(Some(n))) => n.to_string(),
                Ok(_) => "connection closed before all".to_owned(),
                Err(_) => "back-pressured, not all".to_owned(),
            }
        );
        assert!(grown < 30 * 1024, "{what}: resident set grew {grown} KiB");
        drop(reader);
    }
}

/// A slow reader that keeps its HTTP/2 flow-control window shut: the gateway never has a
/// blocked write, so its response-waiting clock (`client_write_timeout`) closes the
/// connection, and with it the upstream exchange.
#[tokio::test]
async fn http2_zero_window_reader_is_cut_by_the_write_clock() {
    let ws = Workspace::new();
    let upstream = Recorder::start().await;
    let limits = "[limits]\nclient_write_timeout = \"2s\"\n";
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, upstream.addr, "", limits)));
    // (what, SETTINGS_INITIAL_WINDOW_SIZE, path): a shut window from the start, and one
    // of 64 KiB, used up by the first frames and never opened again.
    for (what, window, path) in [
        ("window 0", 0u32, "/big?mib=1"),
        ("window used up", 65_535, "/big?mib=64"),
    ] {
        let tls = h2_tls(&ws, &gw).await;
        let (mut reader, mut writer) = tokio::io::split(tls);
        let mut settings = vec![0, 4];
        settings.extend(window.to_be_bytes());
        writer.write_all(PREFACE).await.unwrap();
        writer
            .write_all(&frame(SETTINGS, 0, 0, &settings))
            .await
            .unwrap();
        writer
            .write_all(&frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &get_block(path),
            ))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        // Reads (and so never blocks the gateway's writes) but never opens a window.
        let ending = read_frames(&mut reader, Duration::from_secs(10)).await;
        let elapsed = started.elapsed();
        eprintln!("{what}: {ending:?} after {elapsed:?}");
        assert!(ending.closed, "{what}: connection still open after 10 s");
        assert_eq!(ending.answered, 1, "{what}: the response head was sent");
        assert!(
            elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
            "{what}: {elapsed:?}"
        );
        drop(writer);
    }
    normal_client_served(&ws, &gw).await;
    // A client that reads normally is not cut, however long its answer takes to arrive.
    let client = https_client(&ws, None, true);
    let reply = get(&client, &gw.url("/big?mib=64")).await;
    assert_eq!(reply.body.len(), 64 * 1024 * 1024);
}

//! Item 2, slow clients: slowloris (a head trickled), slow body (a body trickled) and slow
//! reader (an answer never read) are each cut by their own clock, and while many of them
//! attack, a normal client's p99 latency stays within 2x of its quiet value.
//!
//! `PRIVGATE_SLOW_CLIENTS` sets the attackers per kind (default 100; slow readers a quarter
//! of it); `bench/slow-clients.sh` runs the measurement with more.

use super::Recorder;
use crate::harness::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Short clocks, so that each attacker is cut within seconds. The body clock is shorter
/// than the upstream's response timeout (2 s in the harness), as by default, so that a slow
/// body on a streamed route is the client's 408, not the upstream's 504.
const LIMITS: &str = r#"
[limits]
header_read_timeout = "2s"
request_body_timeout = "1500ms"
client_write_timeout = "2s"
idle_timeout = "10s"
"#;

/// One slow client's way of holding a connection.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Attack {
    /// A request head, one byte every 500 ms.
    Slowloris,
    /// A head announcing 1,000 bytes of body on `path`, then one byte every 500 ms.
    SlowBody(&'static str),
    /// Asks for 64 MiB on a streamed route with a 4 KiB receive window, and never reads.
    SlowReader,
}

/// What the gateway did to one attacker.
#[derive(Debug)]
struct Cut {
    /// From the attack's first byte to the gateway closing the connection.
    after: Duration,
    /// The status the gateway answered with before closing, if any.
    status: Option<u16>,
    /// Bytes of answer the client could read (a slow reader's stalled answer).
    read: usize,
}

/// Where the attackers connect, and how.
#[derive(Clone)]
struct Target {
    addr: std::net::SocketAddr,
    tls: tokio_rustls::TlsConnector,
}

impl Target {
    fn new(ws: &Workspace, gw: &Gateway) -> Self {
        let tls = Arc::new(client_tls(ws, None, &[b"http/1.1"]));
        Self {
            addr: gw.addr,
            tls: tokio_rustls::TlsConnector::from(tls),
        }
    }

    async fn connect(&self, small_window: bool) -> Option<Tls> {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        if small_window {
            socket.set_recv_buffer_size(4096).ok()?;
        }
        let tcp = socket.connect(self.addr).await.ok()?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        self.tls.connect(name, tcp).await.ok()
    }
}

/// Runs one attack until the gateway cuts it (or `limit` passes: `None`). With `verify`
/// false, a slow reader only holds its connection past the write timeout and leaves,
/// without draining it to see it cut (which costs the attacker, not the gateway).
async fn attack(target: &Target, kind: Attack, limit: Duration, verify: bool) -> Option<Cut> {
    let mut stream = target.connect(kind == Attack::SlowReader).await?;
    let started = Instant::now();
    let (head, trickle): (String, bool) = match kind {
        Attack::Slowloris => (
            "GET /echo HTTP/1.1\r\nHost: localhost\r\nx-a: ".into(),
            true,
        ),
        Attack::SlowBody(path) => (
            format!(
                "POST {path} HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n\
                 content-length: 1000\r\n\r\n"
            ),
            true,
        ),
        Attack::SlowReader => (
            "GET /big?mib=64 HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
            false,
        ),
    };
    stream.write_all(head.as_bytes()).await.ok()?;
    if trickle {
        // Trickle until a write fails or an answer arrives.
        let mut buf = [0u8; 1024];
        let mut answer = Vec::new();
        loop {
            if started.elapsed() > limit {
                return None;
            }
            match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {
                    if stream.write_all(b" ").await.is_err() || stream.flush().await.is_err() {
                        break;
                    }
                }
            }
        }
        let status = String::from_utf8_lossy(&answer)
            .get(9..12)
            .and_then(|s| s.parse().ok());
        return Some(Cut {
            after: started.elapsed(),
            status,
            read: answer.len(),
        });
    }
    // The slow reader: read nothing until well past the write timeout, then drain what the
    // buffers hold. A connection the gateway kept would deliver all 64 MiB.
    tokio::time::sleep(Duration::from_secs(6)).await;
    if !verify {
        return None;
    }
    let mut buf = vec![0u8; 256 * 1024];
    let mut read = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => read += n,
            Err(_) => return None,
        }
        if started.elapsed() > limit {
            return None;
        }
    }
    Some(Cut {
        after: started.elapsed(),
        status: None,
        read,
    })
}

async fn setup() -> (Workspace, Recorder, Gateway) {
    let ws = Workspace::new();
    let upstream = Recorder::start().await;
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, upstream.addr, "", LIMITS)));
    (ws, upstream, gw)
}

#[tokio::test]
async fn each_slow_client_is_cut_by_its_clock() {
    let (ws, upstream, gw) = setup().await;
    let limit = Duration::from_secs(20);
    let target = Target::new(&ws, &gw);
    let (slowloris, buffered, streamed, reader) = tokio::join!(
        attack(&target, Attack::Slowloris, limit, true),
        attack(&target, Attack::SlowBody("/buffered/echo"), limit, true),
        attack(&target, Attack::SlowBody("/echo"), limit, true),
        attack(&target, Attack::SlowReader, limit, true),
    );
    let slowloris = slowloris.expect("slowloris not cut");
    assert!(slowloris.status.is_none(), "{slowloris:?}");
    assert!(slowloris.after < Duration::from_secs(4), "{slowloris:?}");
    for (route, cut) in [("buffered", buffered), ("streamed", streamed)] {
        let cut = cut.unwrap_or_else(|| panic!("slow body on the {route} route not cut"));
        assert_eq!(cut.status, Some(408), "{route}: {cut:?}");
        assert!(
            cut.after >= Duration::from_millis(1400) && cut.after < Duration::from_secs(4),
            "{route}: {cut:?}"
        );
    }
    let reader = reader.expect("slow reader not cut");
    assert!(reader.read < 64 * 1024 * 1024, "{reader:?}");
    // Nothing the slow bodies started reached the upstream whole; the slow reader's request did.
    let targets: Vec<String> = upstream.received().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/big?mib=64"]);
}

/// Latencies of sequential requests from a normal (pooled, keep-alive) client for `span`.
async fn normal_latencies(client: &HttpsClient, url: &str, span: Duration) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < span {
        let t = Instant::now();
        let reply = get(client, url).await;
        assert_eq!(reply.status, http::StatusCode::OK);
        latencies.push(t.elapsed());
    }
    latencies.sort();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_clients_p99_holds_during_slow_client_attacks() {
    let (ws, _upstream, gw) = setup().await;
    let per_kind: usize = std::env::var("PRIVGATE_SLOW_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let span = Duration::from_secs(4);
    let client = https_client(&ws, None, false);
    let url = gw.url("/echo/normal");
    normal_latencies(&client, &url, Duration::from_millis(500)).await; // warm up
    let quiet = normal_latencies(&client, &url, span).await;

    // The attackers run on a runtime of their own, so that they do not queue the normal
    // client's (or the upstream's) tasks behind theirs in this process.
    let stop = Arc::new(AtomicBool::new(false));
    let cuts = Arc::new(AtomicUsize::new(0));
    let kinds = [
        (Attack::Slowloris, per_kind),
        (Attack::SlowBody("/buffered/echo"), per_kind / 2),
        (Attack::SlowBody("/echo"), per_kind / 2),
        (Attack::SlowReader, per_kind / 4),
    ];
    let target = Target::new(&ws, &gw);
    let attackers = {
        let (stop, cuts) = (stop.clone(), cuts.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut tasks = Vec::new();
                for (kind, count) in kinds {
                    for _ in 0..count {
                        let (target, stop, cuts) = (target.clone(), stop.clone(), cuts.clone());
                        tasks.push(tokio::spawn(async move {
                            // Each attacker comes back as soon as it is cut.
                            while !stop.load(Ordering::SeqCst) {
                                let limit = Duration::from_secs(30);
                                if attack(&target, kind, limit, false).await.is_some() {
                                    cuts.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        }));
                    }
                }
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                for task in tasks {
                    task.abort();
                }
            })
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let attacked = normal_latencies(&client, &url, span).await;
    stop.store(true, Ordering::SeqCst);
    let (q50, q99) = (percentile(&quiet, 0.5), percentile(&quiet, 0.99));
    let (a50, a99) = (percentile(&attacked, 0.5), percentile(&attacked, 0.99));
    let (qmax, amax) = (quiet[quiet.len() - 1], attacked[attacked.len() - 1]);
    eprintln!(
        "slow clients: {} attackers per kind; quiet p50 {q50:.2?} p99 {q99:.2?} max {qmax:.2?} \
         ({} requests); attacked p50 {a50:.2?} p99 {a99:.2?} max {amax:.2?} ({} requests); \
         {} attackers cut meanwhile",
        per_kind,
        quiet.len(),
        attacked.len(),
        cuts.load(Ordering::SeqCst)
    );
    tokio::task::block_in_place(|| attackers.join()).unwrap();
    // What holds on any machine: the attackers were cut and the normal client was served
    // throughout (`normal_latencies` takes only 200s), at its median pace.
    assert!(cuts.load(Ordering::SeqCst) > 0, "no attacker was cut");
    assert!(
        attacked.len() * 2 >= quiet.len(),
        "{} requests under attack against {} quiet",
        attacked.len(),
        quiet.len()
    );
    // The p99 bound is a measurement, judged where the machine is quiet enough to mean it
    // (bench/slow-clients.sh sets this): the whole suite shares two cores with itself.
    if std::env::var_os("PRIVGATE_JUDGE_P99").is_some() {
        // Within 2x, with a millisecond for timer granularity at sub-millisecond latencies.
        assert!(
            a99 <= q99 * 2 + Duration::from_millis(1),
            "p99 {a99:?} under attack against {q99:?} quiet"
        );
    }
}

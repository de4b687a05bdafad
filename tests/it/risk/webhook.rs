//! The SIEM webhook (`[risk.webhook]`) against a real HTTPS receiver in the test: signed
//! bodies with names only, retries after a 500, and a receiver that hangs never delaying
//! requests.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The webhook's HMAC key in the tests (the file adds a newline, which is not part of it).
const WEBHOOK_SECRET: &str = "siem-webhook-key-0123456789abcdef";

/// What the receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 500 to the first `n` posts, then 204.
    FailFirst(usize),
    /// Reads the request and never answers.
    Hang,
}

/// A SIEM collector double over HTTPS (the workspace's server certificate), keeping each
/// post's signature header and exact body.
struct Receiver {
    port: u16,
    posts: Arc<Mutex<Vec<(String, Bytes)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(ws: &Workspace, behaviour: Behaviour) -> Self {
        let acceptor = tokio_rustls::TlsAcceptor::from(https_server_tls(ws));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let kept = posts.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, kept, count) = (acceptor.clone(), kept.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<_>| {
                        let (kept, count) = (kept.clone(), count.clone());
                        async move {
                            let signature = req
                                .headers()
                                .get("privgate-signature")
                                .map(|v| v.to_str().unwrap_or("").to_owned())
                                .unwrap_or_default();
                            let body = http_body_util::BodyExt::collect(req.into_body())
                                .await
                                .map(|c: http_body_util::Collected<Bytes>| c.to_bytes())
                                .unwrap_or_default();
                            kept.lock().unwrap().push((signature, body));
                            let n = count.fetch_add(1, Ordering::SeqCst);
                            let status = match behaviour {
                                Behaviour::FailFirst(failing) if n < failing => 500,
                                Behaviour::FailFirst(_) => 204,
                                Behaviour::Hang => {
                                    std::future::pending::<()>().await;
                                    unreachable!()
                                }
                            };
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .body(Full::<Bytes>::default())
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { port, posts, task }
    }

    fn posts(&self) -> Vec<(String, Bytes)> {
        self.posts.lock().unwrap().clone()
    }

    /// Waits (up to `within`) until `n` posts arrived.
    async fn wait_for_posts(&self, n: usize, within: Duration) -> Vec<(String, Bytes)> {
        let deadline = Instant::now() + within;
        while self.posts().len() < n {
            assert!(Instant::now() < deadline, "{} posts", self.posts().len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.posts()
    }

    /// The `[risk.webhook]` section delivering here.
    fn section(&self, ws: &Workspace, extra: &str) -> String {
        let secret = ws.write("webhook.secret", &format!("{WEBHOOK_SECRET}\n"));
        format!(
            "\n[risk.webhook]\nurl = \"https://localhost:{}/events\"\nsecret_file = \"{}\"\n\
             ca = \"{}\"\n{extra}\n",
            self.port,
            secret.display(),
            ws.path("certs/ca.pem").display()
        )
    }
}

/// Checks `Privgate-Signature: t=<time>,v1=<hex>` as a receiver would: HMAC-SHA256 over
/// `<time>.<body>` with the shared key, in constant time, and a recent time.
fn verify_signature(header: &str, body: &[u8]) {
    let (time, tag) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("{header}"));
    let time: i64 = time.parse().unwrap();
    assert!((now_s() - time).abs() < 60, "stale signature time {time}");
    let tag: Vec<u8> = (0..tag.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&tag[i..i + 2], 16).unwrap())
        .collect();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, WEBHOOK_SECRET.as_bytes());
    let signed = [time.to_string().as_bytes(), b".", body].concat();
    ring::hmac::verify(&key, &signed, &tag).expect("the signature verifies");
    // A body changed in transit, or replayed under another time, does not.
    let mut forged = signed.clone();
    forged.push(b' ');
    assert!(ring::hmac::verify(&key, &forged, &tag).is_err());
    let later = [(time + 1).to_string().as_bytes(), b".", body].concat();
    assert!(ring::hmac::verify(&key, &later, &tag).is_err());
}

/// The counter `privgate_risk_webhook_events_total{outcome}`.
async fn outcome(gw: &Gateway, outcome: &str) -> f64 {
    let (_, metrics) = gw.admin_get("/metrics").await;
    let prefix = format!("privgate_risk_webhook_events_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// A threshold's crossing reaches the SIEM signed over the exact body, with names only; the
/// receiver's 500 is retried and the same event (same id) delivered on the next try.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crossing_reaches_the_siem_signed_and_is_retried_after_a_500() {
    let ws = Workspace::new();
    let siem = Receiver::start(&ws, Behaviour::FailFirst(1)).await;
    let thresholds = format!(
        "\n[[risk.threshold]]\nname = \"busy\"\nindicator = \"requests\"\nwindow = \"5m\"\n\
         above = 2\nresponse = \"alert\"\n{}",
        siem.section(&ws, "timeout = \"2s\"\nmax_attempts = 3")
    );
    let one = OneGateway::start(ws, &thresholds, "").await;
    let token = analyst_token(&["pwd"]);
    one.read_ok(1..=4, &token).await;
    // The first try answered 500; the retry (after a second) is delivered.
    let posts = siem.wait_for_posts(2, Duration::from_secs(10)).await;
    assert_eq!(posts.len(), 2);
    let (first, second) = (&posts[0], &posts[1]);
    for (signature, body) in [first, second] {
        verify_signature(signature, body);
    }
    let event: serde_json::Value = serde_json::from_slice(&second.1).unwrap();
    let again: serde_json::Value = serde_json::from_slice(&first.1).unwrap();
    assert_eq!(event, again, "a retry posts the same event");
    // Names only: these members and no others (no indicator value, no data subject).
    let mut members: Vec<&str> = event
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(
        members,
        [
            "id",
            "indicator",
            "principal",
            "principal_class",
            "request_id",
            "response",
            "scope",
            "threshold",
            "time",
            "type",
            "window"
        ]
    );
    assert_eq!(event["type"], "privgate.risk_threshold_exceeded");
    assert_eq!(event["threshold"], "busy");
    assert_eq!(event["indicator"], "requests");
    assert_eq!(event["principal"], "User:fred");
    assert_eq!(event["principal_class"], "User");
    assert_eq!(outcome(&one.gw, "retried").await, 1.0);
    // The delivered count follows the receiver's answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    while outcome(&one.gw, "delivered").await < 1.0 {
        assert!(Instant::now() < deadline, "never counted as delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One crossing, one event: the requests after it raise no more.
    one.read_ok([5], &token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(siem.posts().len(), 2);
}

/// A receiver that takes the post and never answers holds the delivery task, not the
/// requests: every request is answered promptly while the queue (of one) fills, and the
/// events that do not fit are dropped, counted and logged by threshold name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_siem_never_delays_requests() {
    let ws = Workspace::new();
    let siem = Receiver::start(&ws, Behaviour::Hang).await;
    let thresholds = format!(
        "\n[[risk.threshold]]\nname = \"any\"\nindicator = \"requests\"\nwindow = \"5m\"\n\
         above = 0\nresponse = \"alert\"\n{}",
        siem.section(&ws, "timeout = \"60s\"\nmax_attempts = 1\nqueue = 1")
    );
    let one = OneGateway::start(ws, &thresholds, "").await;
    // Each analyst's second request crosses: six events, one taken by the hung delivery,
    // one queued, four dropped.
    let mut slowest = Duration::ZERO;
    for analyst in ["a1", "a2", "a3", "a4", "a5", "a6"] {
        let token = fraud_analyst_token(analyst, &["pwd"]);
        for customer in 1..=2 {
            let started = Instant::now();
            let reply = one.read(customer, &token).await;
            slowest = slowest.max(started.elapsed());
            assert_eq!(reply.status, StatusCode::OK);
        }
        if analyst == "a1" {
            // The first event is in the receiver's hands (and stays there) before more come.
            siem.wait_for_posts(1, Duration::from_secs(10)).await;
        }
    }
    assert!(
        slowest < Duration::from_secs(3),
        "a request took {slowest:?} with the SIEM hanging"
    );
    assert_eq!(siem.posts().len(), 1);
    assert_eq!(outcome(&one.gw, "dropped").await, 4.0);
    let dropped = one.gw.wait_for_log("risk webhook queue full");
    assert_eq!(dropped["threshold"], "any");
    assert!(!dropped.to_string().contains(WEBHOOK_SECRET));
}

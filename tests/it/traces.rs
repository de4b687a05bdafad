//! OpenTelemetry traces end to end: the real binary exports OTLP/HTTP to a collector that
//! this test runs (a hyper server decoding each export with the protocol's own protobuf
//! types), in front of real upstreams. A request gets a span per phase; a trusted caller's
//! `traceparent` is joined and an untrusted one's ignored; the upstream receives the
//! gateway's trace context; the trace id is in the access log and the audit record; and a
//! request carrying personal data leaves none of it in its spans.

use crate::access_log::access_lines;
use crate::harness::*;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A trace id and parent span id a calling service would send.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")
}

/// An OTLP/HTTP traces receiver on a loopback port: every span of every export it took.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Collector {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        async move {
                            assert_eq!(req.uri().path(), "/v1/traces");
                            assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let export = ExportTraceServiceRequest::decode(body).unwrap();
                            for resource in export.resource_spans {
                                for scope in resource.scope_spans {
                                    kept.lock().unwrap().extend(scope.spans);
                                }
                            }
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { url, spans, task }
    }

    /// The `[tracing]` section that exports here, trusting `trust` (more keys).
    fn section(&self, trust: &str) -> String {
        format!(
            "\n[tracing]\nendpoint = \"{}\"\nbatch_delay = \"100ms\"\n{trust}\n",
            self.url
        )
    }

    /// The spans of trace `trace_id` once `n` have arrived (up to 10 s). Sleeps on the
    /// test's runtime, which also runs the collector.
    async fn trace(&self, trace_id: &str, n: usize) -> Vec<Span> {
        for _ in 0..200 {
            let spans: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| hex(&s.trace_id) == trace_id)
                .cloned()
                .collect();
            if spans.len() >= n {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "fewer than {n} spans of trace {trace_id}: {:#?}",
            self.spans.lock().unwrap()
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no `{name}` span in {spans:#?}"))
}

/// The trace id and parent span id in a `traceparent` value.
fn parse_traceparent(value: &str) -> (String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test]
async fn a_trusted_callers_trace_is_joined_and_passed_upstream_an_untrusted_ones_is_not() {
    let ws = Workspace::new();
    let collector = Collector::start().await;
    let upstream = Upstream::start().await;
    let extra = format!(
        "{}\n[[client]]\nid = \"payments\"\ncertificate_sha256 = \"{}\"\n",
        collector.section("trusted_clients = [\"payments\"]"),
        thumbprint(&ws, "certs/client-a.pem"),
    );
    let path = ws.write(
        "privgate.toml",
        &config(&ws, upstream.addr, &optional_mtls(&ws), &extra),
    );
    let gw = Gateway::start(&path);
    let headers = [
        ("traceparent", traceparent()),
        ("tracestate", "vendor=caller".to_owned()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // The registered, trusted client: its trace goes on through the gateway to the upstream.
    let trusted = https_client(&ws, Some("certs/client-a"), false);
    let echo = send_with(&trusted, "GET", &gw.url("/echo"), &headers, "").await;
    assert_eq!(echo.status, StatusCode::OK);
    let seen = echo.json()["headers"].clone();
    let (trace_id, parent) = parse_traceparent(seen["traceparent"].as_str().unwrap());
    assert_eq!(trace_id, CALLER_TRACE);
    assert_eq!(seen["tracestate"], "vendor=caller");
    let spans = collector.trace(CALLER_TRACE, 7).await;
    let request = named(&spans, "request");
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    let forward = named(&spans, "forward");
    assert_eq!(
        parent,
        hex(&forward.span_id),
        "the upstream's parent is the forward span"
    );
    for phase in [
        "route", "identify", "protect", "forward", "reveal", "record",
    ] {
        assert_eq!(
            named(&spans, phase).parent_span_id,
            request.span_id,
            "{phase} is a child of the request span"
        );
    }

    // Anyone else: the caller's trace context is ignored, the gateway starts its own trace
    // and the upstream sees only that.
    let anonymous = https_client(&ws, None, false);
    let echo = send_with(&anonymous, "GET", &gw.url("/echo"), &headers, "").await;
    assert_eq!(echo.status, StatusCode::OK);
    let seen = echo.json()["headers"].clone();
    let (own_trace, _) = parse_traceparent(seen["traceparent"].as_str().unwrap());
    assert_ne!(own_trace, CALLER_TRACE);
    assert!(seen.get("tracestate").is_none(), "{seen}");
    let spans = collector.trace(&own_trace, 7).await;
    assert!(named(&spans, "request").parent_span_id.is_empty());

    // Each request's log lines carry its trace id.
    let line = gw.wait_for(|l| l["message"] == "request" && l["trace_id"] == own_trace.as_str());
    assert_eq!(line["status"], 200, "{line}");

    // The exporter is set up once: a reload that changes `[tracing]` is refused.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("batch_delay = \"100ms\"", "batch_delay = \"1s\""),
    )
    .unwrap();
    gw.signal(nix::sys::signal::Signal::SIGHUP);
    gw.wait_for(|l| {
        l["problems"]
            .as_str()
            .is_some_and(|p| p.contains("[tracing] changes only on restart"))
    });
}

/// Personal data a customer record carries: none may reach a span.
const PERSONAL: [&str; 6] = [
    "Jane Example",
    "jane@example.com",
    "+44 20 7946 0000",
    "900-12-3456",
    "GB82WEST12345698765432",
    "4000001234567899",
];

/// The customer's id: it may not reach a span either.
const SUBJECT: &str = "c-42";

/// Whether `text` holds `id` as a token of its own, not inside a longer run of letters and
/// digits: a random request or trace id can hold a short id by chance (`…1ccc-4209…` holds
/// `c-42`), and that is not the id leaking.
fn holds_id(text: &str, id: &str) -> bool {
    text.match_indices(id).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + id.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

#[test]
fn an_id_is_found_as_a_value_or_in_a_path_but_not_inside_a_random_id() {
    assert!(holds_id(r#"StringValue("c-42")"#, "c-42"));
    assert!(holds_id("GET /customers/c-42 HTTP/1.1", "c-42"));
    assert!(holds_id("c-42", "c-42"));
    assert!(!holds_id("8a7cfc85-1ccc-4209-a691-34d58d6b83a9", "c-42"));
    assert!(!holds_id("c-420", "c-42"));
}

#[tokio::test]
async fn a_request_carrying_personal_data_leaves_none_in_its_spans() {
    let ws = Workspace::new();
    let collector = Collector::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let _bank = tokio::spawn(privgate::demo::upstream::serve(listener));
    let extra = format!(
        "{}{}",
        protected_customers(&ws, "3c", "c-[1-9][0-9]{0,11}"),
        collector.section("trusted_clients = [\"branch-desk\"]"),
    );
    let path = ws.write(
        "privgate.toml",
        &without_plain_routes(config(&ws, upstream, &optional_mtls(&ws), &extra)),
    );
    let init = privgate(["keys", "init", "--config", path.to_str().unwrap()]);
    assert!(init.ok, "{}", init.all());
    let access = ws.path("access.jsonl");
    let gw = Gateway::start_with_env(&path, &[("PRIVGATE_ACCESS_LOG", access.as_os_str())]);
    let teller = https_client(&ws, Some("certs/client-b"), false);
    let parent = traceparent();
    let headers = [
        ("traceparent", parent.as_str()),
        ("content-type", "application/json"),
    ];

    let customer = serde_json::json!({
        "id": SUBJECT, "name": PERSONAL[0], "email": PERSONAL[1], "phone": PERSONAL[2],
        "national_id": PERSONAL[3], "date_of_birth": "1987-06-05", "iban": PERSONAL[4],
        "card_number": PERSONAL[5], "segment": "retail",
        "address": { "street": "1 High Street", "city": "Leeds", "postcode": "LS1 1AA", "country": "GB" },
    });
    let created = send_with(
        &teller,
        "POST",
        &gw.url("/customers"),
        &headers,
        &customer.to_string(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let shown = send_with(
        &teller,
        "GET",
        &gw.url(&format!("/customers/{SUBJECT}")),
        &headers,
        "",
    )
    .await;
    assert_eq!(shown.status, StatusCode::OK, "{:?}", shown.body);
    assert_eq!(shown.json()["email"], "j***@*******.com");

    // Both requests, each with a span per phase, in the caller's trace.
    let spans = collector.trace(CALLER_TRACE, 16).await;
    for phase in [
        "request", "route", "identify", "decide", "protect", "forward", "reveal", "record",
    ] {
        let count = spans.iter().filter(|s| s.name == phase).count();
        assert_eq!(count, 2, "`{phase}` spans: {spans:#?}");
    }
    let exported = format!("{spans:?}");
    for personal in PERSONAL.iter().chain(&["/customers/"]) {
        assert!(
            !exported.contains(personal),
            "`{personal}` in the spans: {spans:#?}"
        );
    }
    assert!(
        !holds_id(&exported, SUBJECT),
        "`{SUBJECT}` in the spans: {spans:#?}"
    );

    // The trace id is in both access log lines and both audit records.
    for line in access_lines(&access, 2) {
        assert_eq!(line["trace_id"], CALLER_TRACE, "{line}");
    }
    crate::audit::stop(gw).await;
    let chain = std::fs::read_to_string(ws.path("audit/gw-test.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = chain
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records.len() >= 2, "{chain}");
    for record in records {
        assert_eq!(record["trace_id"], CALLER_TRACE, "{record}");
    }
}

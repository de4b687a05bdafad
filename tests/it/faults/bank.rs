//! The sample bank behind a protected gateway: onboarding writes a subject key to the store
//! before anything is forwarded, so it shows whether a store or keyring fault fails closed.

use crate::harness::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::path::PathBuf;

/// A protected-customers gateway before the sample bank upstream, keyring initialised;
/// `store` replaces its SQLite `[store]` URL line when given.
pub(super) struct Bank {
    pub(super) ws: Workspace,
    pub(super) config: PathBuf,
    upstream: std::net::SocketAddr,
    _task: tokio::task::JoinHandle<()>,
}

impl Bank {
    pub(super) async fn new(ws: Workspace, store_url: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let task = tokio::spawn(privgate::demo::upstream::serve(listener));
        let protected = protected_customers(&ws, "6e", "c-[1-9][0-9]{0,11}");
        let sqlite_line = format!("url = \"sqlite://{}/privgate.db\"", ws.dir.path().display());
        assert!(protected.contains(&sqlite_line));
        let protected = protected.replacen(&sqlite_line, &format!("url = \"{store_url}\""), 1);
        let config = ws.write(
            "privgate.toml",
            &without_plain_routes(config(&ws, upstream, &optional_mtls(&ws), &protected)),
        );
        let init = privgate(["keys", "--config", config.to_str().unwrap(), "init"]);
        assert!(init.ok, "{}", init.all());
        Self {
            ws,
            config,
            upstream,
            _task: task,
        }
    }

    pub(super) fn teller(&self) -> HttpsClient {
        https_client(&self.ws, Some("certs/client-b"), false)
    }

    /// Whether the upstream holds customer `id` (read directly, not through the gateway).
    pub(super) async fn upstream_has(&self, id: &str) -> bool {
        let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let url = format!("http://{}/customers/{id}", self.upstream);
        client.get(url.parse().unwrap()).await.unwrap().status() == StatusCode::OK
    }
}

pub(super) async fn onboard(client: &HttpsClient, gw: &Gateway, id: &str) -> Reply {
    let body = serde_json::json!({
        "id": id, "name": "Jane Example", "email": "jane@example.com",
        "national_id": "900-12-3456", "segment": "retail",
    });
    let req = Request::post(gw.url("/customers"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    send(client, req).await.unwrap()
}

/// Onboards `id` and checks the answer: created, or refused as unavailable with nothing
/// forwarded.
pub(super) async fn onboard_expecting(bank: &Bank, gw: &Gateway, id: &str, created: bool) {
    let reply = onboard(&bank.teller(), gw, id).await;
    if created {
        assert_eq!(reply.status, StatusCode::CREATED, "{id}: {:?}", reply.body);
        assert!(bank.upstream_has(id).await);
    } else {
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{id}: {:?}",
            reply.body
        );
        assert!(
            !bank.upstream_has(id).await,
            "{id} forwarded without its key stored"
        );
    }
}

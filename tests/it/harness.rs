//! Shared test fixtures: certificates made by `privgate certs dev`, a real upstream HTTP(S)
//! server on an ephemeral loopback port, the real `privgate` binary, and real TLS clients.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

pub const BIN: &str = env!("CARGO_BIN_EXE_privgate");

/// What a `privgate` command printed.
pub struct CliRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// Both streams, for messages that may go to either.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `privgate ARGS...` to completion.
/// Waits out `[store] revocation_window` at its default (250 ms) plus a margin for the
/// change watcher's poll: a consent change or token revocation made through the CLI (another
/// process) is honoured by a running gateway once this returns, even for a subject whose
/// consents the gateway read and cached just before.
pub async fn after_revocation_window() {
    tokio::time::sleep(std::time::Duration::from_millis(250 + 200)).await;
}

pub fn privgate<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> CliRun {
    privgate_with_env(args, &[])
}

/// Runs `privgate ARGS...` to completion with `env` added to its environment.
pub fn privgate_with_env<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
    env: &[(&str, &str)],
) -> CliRun {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    CliRun {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `privgate audit keygen --out DIR` for each workspace directory in `dirs` (the
/// audit chain's key pairs a gateway config names).
pub fn audit_keys(ws: &Workspace, dirs: &[&str]) {
    for dir in dirs {
        let run = privgate([
            "audit".as_ref(),
            "keygen".as_ref(),
            "--out".as_ref(),
            ws.path(dir).as_os_str(),
        ]);
        assert!(run.ok, "{}", run.all());
    }
}

/// The test identity provider's issuer, audience and HMAC secret, as [`issuer_section`]
/// configures them and the tests' tokens carry them.
pub const ISS: &str = "https://idp.privgate.test";
/// The audience the test tokens are for.
pub const AUD: &str = "api://privgate";
/// The shared secret HS256 test tokens are signed with.
pub const SECRET: &str = "an-hmac-secret-of-at-least-32-bytes!!";

/// The shipped policy set (`policies/` in the repository).
pub fn shipped_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// Listener lines for optional mutual TLS against the workspace CA: clients with a
/// certificate (`certs/client-a`, `certs/client-b`) are identified, others are not.
pub fn optional_mtls(ws: &Workspace) -> String {
    format!(
        "client_ca = \"{}/certs/ca.pem\"\nclient_auth = \"optional\"",
        ws.dir.path().display()
    )
}

/// An `[[issuer]]` for the test identity provider ([`ISS`], [`AUD`]) with its HMAC secret
/// in the file `secret`, accepting `algorithms` (a TOML array), with `extra` lines.
pub fn issuer_section(secret: &Path, algorithms: &str, extra: &str) -> String {
    format!(
        "\n[[issuer]]\nissuer = \"{ISS}\"\naudiences = [\"{AUD}\"]\nalgorithms = {algorithms}\n\
         shared_secret_file = \"{}\"\nrequire_typ_at_jwt = true\n{extra}",
        secret.display()
    )
}

/// [`issuer_section`] for HS256 staff tokens whose `roles` and `purposes` claims the
/// policies read, with `extra` lines (e.g. `organisation_claim`).
pub fn staff_issuer_section(secret: &Path, extra: &str) -> String {
    issuer_section(
        secret,
        "[\"HS256\"]",
        &format!("roles_claim = \"roles\"\npurposes_claim = \"purposes\"\n{extra}"),
    )
}

/// An `[audit]` section (replica `gw`) whose checkpoint key `keys-k` and pseudonym key
/// `keys-p` are made in the workspace now.
pub fn audit_section_with_pseudonyms(ws: &Workspace) -> String {
    audit_keys(ws, &["keys-k", "keys-p"]);
    "\n[audit]\ndir = \"audit\"\nreplica = \"gw\"\ncheckpoint_sink = \"sink/c.jsonl\"\n\
     checkpoint_key_file = \"keys-k\"\npseudonym_key_file = \"keys-p\"\n"
        .to_owned()
}

/// The `[[client]]` `fintech-app`: client certificate a, a partner of organisation
/// `fintech` for the purpose `account_information`.
pub fn fintech_app_client(ws: &Workspace) -> String {
    format!(
        "\n[[client]]\nid = \"fintech-app\"\ncertificate_sha256 = \"{}\"\nroles = [\"partner\"]\n\
         organisation = \"fintech\"\npurposes = [\"account_information\"]\n",
        thumbprint(ws, "certs/client-a.pem")
    )
}

/// A `[store]` section on the PostgreSQL database at `url`, its password moved out of the
/// URL into the workspace file `pg-password`, as an operator would configure it.
pub fn postgres_store_section(ws: &Workspace, url: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    std::fs::write(ws.path("pg-password"), parsed.password().unwrap_or("")).unwrap();
    parsed.set_password(None).unwrap();
    format!("[store]\nurl = \"{parsed}\"\npassword_file = \"pg-password\"")
}

/// Grants organisation `fintech` consent to read `subject`'s accounts
/// (`account_information`, `ReadAccountsBasic`) with `privgate consent grant`.
pub fn grant_account_information(config: &Path, subject: &str) {
    let config = config.to_str().unwrap();
    let run = privgate([
        "consent",
        "--config",
        config,
        "grant",
        "--subject",
        subject,
        "--grantee",
        "fintech",
        "--purpose",
        "account_information",
        "--permission",
        "ReadAccountsBasic",
    ]);
    assert!(run.ok, "{}", run.all());
}

/// A loopback port free right now (for servers the test starts as separate processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `privgate demo ARGS...` in `dir` and reads its output until it is ready
/// ("Ctrl-C stops"); returns the process, the rest of its output and what it printed.
pub fn spawn_demo(
    dir: &Path,
    args: &[&str],
) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .arg("demo")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("Ctrl-C stops") {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "demo exited early: {printed}"
        );
        printed.push_str(&line);
    }
    (child, stdout, printed)
}

/// Copies the shipped policy set (and its test cases) into `dir`, for tests that edit it.
pub fn copy_shipped_policies(dir: &Path) {
    let shipped = shipped_policies();
    for sub in ["", "tests"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for entry in std::fs::read_dir(shipped.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
}

/// The SHA-256 thumbprint of a workspace certificate, as `[[client]]` pins it.
pub fn thumbprint(ws: &Workspace, cert: &str) -> String {
    let run = privgate([
        "certs".as_ref(),
        "thumbprint".as_ref(),
        ws.path(cert).as_os_str(),
    ]);
    assert!(run.ok, "{}", run.all());
    run.stdout.trim().to_owned()
}

/// Runs `privgate certs dev` into `dir`.
pub fn dev_certs(dir: &Path) {
    let out = Command::new(BIN)
        .args(["certs", "dev", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "certs dev failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A temporary directory with dev certificates in `certs/` and a second, unrelated CA
/// in `other/`.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        dev_certs(&dir.path().join("certs"));
        dev_certs(&dir.path().join("other"));
        Self { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, text).unwrap();
        p
    }
}

// ---------------------------------------------------------------------------------------
// Upstream

/// What the test upstream saw.
#[derive(Default)]
pub struct Seen {
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
}

/// A real HTTP/1.1 upstream:
/// - any path with `/echo`: JSON with the method, path, query, version, headers and body it received
/// - `/slow?ms=N`: answers after N ms
/// - any path with `/big?bytes=N`: a JSON string of N characters
/// - `/hop`: answers with hop-by-hop headers that must not reach the client
/// - any path with `/respond`: status, headers and body as its query says
/// - anything else: 200 `{"ok":true}`
///
/// JSON answers carry `Content-Type: application/json` unless `/respond` sets another.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start() -> Self {
        Self::start_with_tls(None).await
    }

    /// With `Some(config)`, the upstream speaks TLS with that server config.
    pub async fn start_with_tls(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                seen2.connections.fetch_add(1, Ordering::SeqCst);
                let tls = tls.clone();
                let seen3 = seen2.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_upstream_conn(tcp, false, seen3).await,
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let has_cert = stream.get_ref().1.peer_certificates().is_some();
                                serve_upstream_conn(stream, has_cert, seen3).await;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, seen, task }
    }

    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    /// Requests the upstream has received.
    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }
}

async fn serve_upstream_conn<IO>(io: IO, client_cert: bool, seen: Arc<Seen>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        seen.requests.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(upstream_respond(req, client_cert).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// The upstream's answers are JSON and say so, as buffered routes require.
async fn upstream_respond(req: Request<Incoming>, client_cert: bool) -> Response<Full<Bytes>> {
    let mut response = upstream_answer(req, client_cert).await;
    let untyped = response.headers_mut().remove("x-untyped").is_some();
    if !untyped && !response.headers().contains_key(http::header::CONTENT_TYPE) {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    response
}

async fn upstream_answer(req: Request<Incoming>, client_cert: bool) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    if path.starts_with("/slow") {
        let ms: u64 = query.trim_start_matches("ms=").parse().unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Response::new(Full::new(Bytes::from_static(b"{\"slow\":true}")));
    }
    if path.contains("/big") {
        let n: usize = query.trim_start_matches("bytes=").parse().unwrap_or(0);
        return Response::new(Full::new(Bytes::from(format!("\"{}\"", "x".repeat(n)))));
    }
    if path.contains("/respond") {
        // Answers as the query says: `status`, `type` (Content-Type, `none` for none),
        // `encoding` (Content-Encoding), `range` (Content-Range) and `body`.
        let mut response = Response::builder();
        let mut body = String::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            response = match k.as_ref() {
                "status" => response.status(v.parse::<u16>().unwrap()),
                "type" if v == "none" => response.header("x-untyped", "1"),
                "type" => response.header("content-type", v.as_ref()),
                "encoding" => response.header("content-encoding", v.as_ref()),
                "range" => response.header("content-range", v.as_ref()),
                "body" => {
                    body = v.into_owned();
                    response
                }
                _ => response,
            };
        }
        return response.body(Full::new(Bytes::from(body))).unwrap();
    }
    if path.starts_with("/hop") {
        return Response::builder()
            .header("connection", "x-upstream-hop")
            .header("x-upstream-hop", "secret")
            .header("keep-alive", "timeout=5")
            .header("x-upstream-end", "kept")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
    }
    if path.contains("/echo") {
        let method = req.method().to_string();
        let version = format!("{:?}", req.version());
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
            .collect();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let echo = serde_json::json!({
            "method": method, "path": path, "query": query, "version": version,
            "headers": headers, "body": String::from_utf8_lossy(&body), "client_cert": client_cert,
        });
        return Response::new(Full::new(Bytes::from(echo.to_string())));
    }
    Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")))
}

/// The workspace's server certificate chain and key.
fn server_identity(ws: &Workspace) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let certs = CertificateDer::pem_file_iter(ws.path("certs/server.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(ws.path("certs/server.key.pem")).unwrap();
    (certs, key)
}

/// rustls server config with the workspace's server certificate (valid for `localhost`)
/// and no client authentication: the HTTPS endpoints the gateway calls (JWKS, a SIEM).
pub fn https_server_tls(ws: &Workspace) -> Arc<rustls::ServerConfig> {
    let (certs, key) = server_identity(ws);
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    )
}

/// rustls server config for a TLS upstream, requiring client certificates from `client_ca`.
pub fn upstream_tls(ws: &Workspace, client_ca: &str) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ws.path(client_ca)).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let (certs, key) = server_identity(ws);
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap(),
    )
}

// ---------------------------------------------------------------------------------------
// Gateway process

/// A running `privgate serve`, killed on drop. Its JSON log lines are collected.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub logs: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config with one listener on an ephemeral port, the admin listener on another, one
/// upstream `main` at `upstream` and `extra` appended (more routes, limits, ...).
pub fn config(ws: &Workspace, upstream: SocketAddr, listener_extra: &str, extra: &str) -> String {
    format!(
        r#"
[[listener]]
name = "public"
address = "127.0.0.1:0"
cert = "{dir}/certs/server.pem"
key = "{dir}/certs/server.key.pem"
{listener_extra}

[admin]
address = "127.0.0.1:0"

[upstream.main]
url = "http://{upstream}"
response_timeout = "2s"

[[route]]
name = "echo"
path_prefix = "/"
upstream = "main"

[[route]]
name = "buffered"
path_prefix = "/buffered"
upstream = "main"
body = "buffered"
{extra}
"#,
        dir = ws.dir.path().display()
    )
}

/// The two plain routes [`config`] adds (`/` and `/buffered` on `main`).
const PLAIN_ROUTES: &str = r#"[[route]]
name = "echo"
path_prefix = "/"
upstream = "main"

[[route]]
name = "buffered"
path_prefix = "/buffered"
upstream = "main"
body = "buffered"
"#;

/// A [`config`] text without its plain catch-all routes: for configs with policy-decided
/// routes on `main`, whose upstream paths no plain route may also reach (`privgate check`
/// refuses that).
pub fn without_plain_routes(text: String) -> String {
    assert!(text.contains(PLAIN_ROUTES), "not a harness config");
    text.replacen(PLAIN_ROUTES, "", 1)
}

impl Gateway {
    /// Starts `privgate serve` with the config at `path` and waits until both listeners
    /// are bound.
    pub fn start(path: &Path) -> Self {
        Self::start_with_env(path, &[])
    }

    /// [`Gateway::start`] with extra environment variables (`NOTIFY_SOCKET`, ...).
    pub fn start_with_env(path: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Self {
        let mut child = Command::new(BIN)
            .args(["--log-format", "json", "serve", "--config"])
            .arg(path)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let logs2 = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let value: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                if value["message"] == "listening" {
                    let _ = tx.send((
                        value["listener"].as_str().unwrap_or("").to_owned(),
                        value["address"].as_str().unwrap_or("").to_owned(),
                    ));
                }
                logs2.lock().unwrap().push(value);
            }
        });
        let (mut addr, mut admin) = (None, None);
        while addr.is_none() || admin.is_none() {
            let (name, address) = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("gateway did not start: {:?}", logs.lock().unwrap()));
            let parsed: SocketAddr = address.parse().unwrap();
            if name == "admin" {
                admin = Some(parsed);
            } else {
                addr = Some(parsed);
            }
        }
        Self {
            child,
            addr: addr.unwrap(),
            admin: admin.unwrap(),
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits (up to 10 s) for a log line whose `message` contains `text`.
    pub fn wait_for_log(&self, text: &str) -> serde_json::Value {
        self.wait_for(|l| l["message"].as_str().is_some_and(|m| m.contains(text)))
    }

    /// Sends SIGHUP and waits (up to 10 s) until this reload is logged as applied (one
    /// more "configuration reloaded" line than before it).
    pub fn reload(&self) {
        let applied = || {
            self.logs
                .lock()
                .unwrap()
                .iter()
                .filter(|l| {
                    l["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("configuration reloaded"))
                })
                .count()
        };
        let before = applied();
        self.signal(nix::sys::signal::Signal::SIGHUP);
        for _ in 0..200 {
            if applied() > before {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the reload was not applied: {:?}",
            self.logs.lock().unwrap()
        );
    }

    /// Waits (up to 10 s) for a log line matching `pred`.
    pub fn wait_for(&self, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        for _ in 0..200 {
            if let Some(line) = self.logs.lock().unwrap().iter().find(|l| pred(l)) {
                return line.clone();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no such log line: {:?}", self.logs.lock().unwrap());
    }

    /// Fetches an admin endpoint over plain HTTP.
    pub async fn admin_get(&self, path: &str) -> (StatusCode, String) {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let response = client
            .get(format!("http://{}{path}", self.admin).parse().unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }
}

// ---------------------------------------------------------------------------------------
// Clients

/// rustls client config trusting the workspace CA, optionally with a client certificate
/// (`"certs/client-a"`), for the given ALPN protocols.
pub fn client_tls(ws: &Workspace, client: Option<&str>, alpn: &[&[u8]]) -> rustls::ClientConfig {
    client_tls_versions(ws, client, alpn, rustls::DEFAULT_VERSIONS)
}

pub fn client_tls_versions(
    ws: &Workspace,
    client: Option<&str>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    client_tls_full(ws, "certs/ca.pem", client, alpn, versions)
}

fn client_tls_full(
    ws: &Workspace,
    ca: &str,
    client: Option<&str>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ws.path(ca)).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some(name) => {
            let certs = CertificateDer::pem_file_iter(ws.path(&format!("{name}.pem")))
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_file(ws.path(&format!("{name}.key.pem"))).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled HTTPS client speaking HTTP/1.1 (`h2 = false`) or HTTP/2 only.
pub fn https_client(ws: &Workspace, client_cert: Option<&str>, h2: bool) -> HttpsClient {
    // hyper-rustls sets ALPN itself from the enabled protocols.
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_tls(ws, client_cert, &[]))
        .https_only();
    let connector = if h2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let mut client = Client::builder(TokioExecutor::new());
    client.http2_only(h2);
    client.build(connector)
}

/// An HTTP/1.1 client that trusts only the CA at `ca` (relative to the workspace).
pub fn https_client_trusting(ws: &Workspace, ca: &str) -> HttpsClient {
    https_client_with(ws, ca, None)
}

/// An HTTP/1.1 client that trusts only `ca` and presents `client` (e.g. `"certs/client-a"`).
pub fn https_client_with(ws: &Workspace, ca: &str, client: Option<&str>) -> HttpsClient {
    let tls = client_tls_full(ws, ca, client, &[], rustls::DEFAULT_VERSIONS);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A response read whole.
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }

    /// The stable error code of a gateway error response.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

pub async fn send(
    client: &HttpsClient,
    req: Request<Full<Bytes>>,
) -> Result<Reply, hyper_util::client::legacy::Error> {
    let response = client.request(req).await?;
    let (head, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok(Reply {
        status: head.status,
        version: head.version,
        headers: head.headers,
        body,
    })
}

pub async fn get(client: &HttpsClient, url: &str) -> Reply {
    send(client, Request::get(url).body(Full::default()).unwrap())
        .await
        .unwrap()
}

/// Opens a raw TLS connection (HTTP/1.1) for byte-level tests.
pub async fn raw_tls(
    ws: &Workspace,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_tls(ws, None, &[b"http/1.1"])));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until the peer closes or `limit` passes; returns what was read and whether the
/// connection was closed within the limit.
pub async fn read_until_closed<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    limit: Duration,
) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A gateway's sections for customer records protected by the shipped policies and field
/// rules: the decided `customers` (GET, subject from the path) and `customer_create` (POST,
/// subject from the body's `id`) routes on `main`, their subject ids matching `id_pattern`;
/// policy set, SQLite store and keyring (a KEK of `kek_byte` repeated) in the workspace; the
/// audit trail; and the `branch-desk` teller on client certificate b. Run `keys init` on
/// the written config before starting the gateway.
pub fn protected_customers(ws: &Workspace, kek_byte: &str, id_pattern: &str) -> String {
    let kek = ws.write("kek.hex", &kek_byte.repeat(32));
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    format!(
        r#"
[[route]]
name = "customers"
path_prefix = "/customers"
methods = ["GET"]
upstream = "main"
body = "buffered"
action = "customers:read"
subject = {{ from = "path", id = "pattern", pattern = "{id_pattern}" }}

[[route]]
name = "customer_create"
path_prefix = "/customers"
methods = ["POST"]
upstream = "main"
body = "buffered"
action = "customers:create"
subject = {{ from = "request", selector = "$.id", id = "pattern", pattern = "{id_pattern}" }}

[policy]
dir = "{policies}"

[store]
url = "sqlite://{dir}/privgate.db"

[keys]
kek = {{ source = "key_file", path = "{kek}" }}
{audit}

[[client]]
id = "branch-desk"
certificate_sha256 = "{b}"
roles = ["teller"]
purposes = ["customer_service"]
"#,
        policies = shipped_policies().display(),
        dir = ws.dir.path().display(),
        kek = kek.display(),
        audit = crate::audit::audit_section(ws),
        b = thumbprint(ws, "certs/client-b.pem"),
    )
}

/// Sends `method url` with `headers` and `body` and reads the reply whole.
pub async fn send_with(
    client: &HttpsClient,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .unwrap();
    send(client, req).await.unwrap()
}

/// An HS256 access token of the test identity provider for staff user `sub` of client
/// `client_id`, with these roles and purposes, valid five minutes.
pub fn staff_token(client_id: &str, sub: &str, roles: &[&str], purposes: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = serde_json::json!({
        "iss": ISS, "aud": AUD, "sub": sub, "client_id": client_id,
        "exp": now + 300, "iat": now, "jti": format!("t-{sub}"),
        "roles": roles, "purposes": purposes, "amr": ["pwd"], "auth_time": now,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Runs `privgate serve` on `config`, which must refuse to start (within a minute):
/// returns what it printed.
pub fn serve_refused(config: &std::path::Path) -> String {
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the gateway started");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a prepared `privgate` command (extra environment, working directory) to completion.
pub fn cli_run(command: &mut Command) -> CliRun {
    let out = command.output().unwrap();
    CliRun {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An analytics route and a small CSV dataset, `loan_book` (60 loans, one customer each,
/// `principal` bounded 0-50,000, a free-text `note`): writes `loans.csv` into `ws` and
/// returns the config sections that serve it.
pub fn loan_book(ws: &Workspace) -> &'static str {
    let mut loans = String::from("id,customer_id,principal,note\n");
    for i in 0..60 {
        loans.push_str(&format!("{i},c{i},{},\"branch {i}\"\n", 1000 + i));
    }
    ws.write("loans.csv", &loans);
    r#"
[[route]]
name = "analytics"
path_prefix = "/analytics/v1"
serve = "analytics"

[[dataset]]
name = "loan_book"
source = { csv = "loans.csv", table = "loans" }
privacy_unit = "customer_id"
max_rows_per_unit = 2
truncate_order = "id"
analyst_epsilon = 5.0
global_epsilon = 100.0

[dataset.column.principal]
type = "integer"
lower = 0
upper = 50000
"#
}

/// The shipped policy set and one decided route, `customers` (GET /customers/N on `main`,
/// buffered, `customers:read`, integer subject ids), with `extra` appended.
pub fn decided_customers(extra: &str) -> String {
    format!(
        r#"
[policy]
dir = "{policies}"

[[route]]
name = "customers"
path_prefix = "/customers"
methods = ["GET"]
upstream = "main"
body = "buffered"
action = "customers:read"
subject = {{ from = "path", id = "integer" }}
{extra}
"#,
        policies = shipped_policies().display()
    )
}

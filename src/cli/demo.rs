//! `privgate demo`: the sample core-banking upstream with the gateway in front of it, from a
//! fresh checkout with no other set-up. State lives in `./demo-data` (git-ignored): dev
//! certificates are made once and reused; the config is rewritten each run. Ctrl-C stops both.

use super::certs;
use crate::demo::upstream;
use crate::gateway::Server;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;

/// Arguments of `privgate demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Working directory for certificates and config.
    #[arg(long, default_value = "demo-data")]
    dir: PathBuf,
    /// Gateway HTTPS port (loopback).
    #[arg(long, default_value_t = 8443)]
    port: u16,
    /// Admin port (loopback).
    #[arg(long, default_value_t = 9090)]
    admin_port: u16,
    /// Sample upstream port (loopback).
    #[arg(long, default_value_t = 9080)]
    upstream_port: u16,
    /// Serve only the sample upstream (used by the load benchmark).
    #[arg(long)]
    upstream_only: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let upstream_address = SocketAddr::from(([127, 0, 0, 1], args.upstream_port));
    let upstream_listener = TcpListener::bind(upstream_address)
        .await
        .with_context(|| format!("sample upstream: cannot bind {upstream_address}"))?;
    let upstream_task = tokio::spawn(upstream::serve(upstream_listener));
    if args.upstream_only {
        println!("sample core-banking upstream on http://{upstream_address} (Ctrl-C stops)");
        tokio::signal::ctrl_c().await?;
        upstream_task.abort();
        return Ok(());
    }

    let certs_dir = args.dir.join("certs");
    if !certs_dir.join("server.pem").exists() {
        certs::write_dev_certs(&certs_dir, true)?;
    }
    let key = args.dir.join("keys/audit-checkpoint.key");
    if !key.exists() {
        super::audit::write_checkpoint_key(&key)?;
    }
    let config_path = args.dir.join("privgate.toml");
    std::fs::write(&config_path, demo_config(&args))
        .with_context(|| format!("{}: cannot write", config_path.display()))?;

    let control = super::serve::forward_signals()?;
    let server = Server::bind(&config_path).await?;
    print_instructions(&args, &config_path);
    server.run(control).await;
    upstream_task.abort();
    println!("demo stopped");
    Ok(())
}

fn demo_config(args: &Args) -> String {
    format!(
        r#"# Written by `privgate demo`; rewritten on every run.
[[listener]]
name = "public"
address = "127.0.0.1:{port}"
cert = "certs/server.pem"
key = "certs/server.key.pem"
client_ca = "certs/ca.pem"
client_auth = "optional"

[admin]
address = "127.0.0.1:{admin}"

# Every request is recorded in a hash chain (audit/demo.jsonl), pinned by checkpoints.
[audit]
dir = "audit"
replica = "demo"
checkpoint_sink = "audit-checkpoints/checkpoints.jsonl"
checkpoint_key_file = "keys/audit-checkpoint.key"

# Consent records live in privgate.db (SQLite) beside this file.

[upstream.core_banking]
url = "http://127.0.0.1:{upstream}"

# Customer records carry PII: their bodies are buffered so field rules can apply.
[[route]]
name = "customers"
path_prefix = "/customers"
methods = ["GET"]
upstream = "core_banking"
body = "buffered"

[[route]]
name = "accounts"
path_prefix = "/accounts"
methods = ["GET"]
upstream = "core_banking"

[[route]]
name = "payments"
path_prefix = "/payments"
methods = ["POST"]
upstream = "core_banking"
body = "buffered"
"#,
        port = args.port,
        admin = args.admin_port,
        upstream = args.upstream_port
    )
}

fn print_instructions(args: &Args, config: &Path) {
    let dir = args.dir.display();
    let base = format!("https://localhost:{}", args.port);
    let curl = format!("curl -sS --cacert {dir}/certs/ca.pem");
    println!(
        r#"
privgate demo is running (config: {config}).

  # a customer, through the gateway (TLS, HTTP/2)
  {curl} {base}/customers/42
  # a page of customers, with the request id the gateway adds
  {curl} -i "{base}/customers?limit=2"
  # an account's transactions (streamed route)
  {curl} {base}/accounts/7/transactions
  # a payment (buffered route: the body must be JSON)
  {curl} -X POST {base}/payments -H 'content-type: application/json' \
    -d '{{"from_account":7,"to_iban":"GB33BUKB20201555555555","amount_minor":1250,"currency":"GBP"}}'
  # refused by the gateway: not JSON on a buffered route, then a method no route allows
  {curl} -X POST {base}/payments -d 'not json'
  {curl} -X DELETE {base}/customers/42
  # mutual TLS: present a client certificate (optional on the demo listener)
  {curl} --cert {dir}/certs/client-a.pem --key {dir}/certs/client-a.key.pem {base}/customers/1
  # health and metrics (admin listener, plain HTTP on loopback)
  curl -sS http://127.0.0.1:{admin}/readyz
  curl -sS http://127.0.0.1:{admin}/metrics | grep privgate_requests

  # the audit trail: every request above is in a hash chain; verify it, then try editing
  # a line of {dir}/audit/demo.jsonl and verify again
  {exe} audit verify --config {config}
  # the consent registry (policy decisions will consult it)
  {exe} consent --config {config} grant --subject 42 --grantee partner-app \
    --purpose account_information --permission ReadAccountsBasic --expires-in 90days
  {exe} consent --config {config} list --subject 42

Ctrl-C stops the gateway (draining in-flight requests) and the sample upstream.
"#,
        config = config.display(),
        admin = args.admin_port,
        exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "privgate".into()),
    );
}

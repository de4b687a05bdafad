//! `privgate fhe contribute`: the contributor's client. Fetches the gateway's public key
//! and CRS (optionally pinned by hash) and the aggregate's width and this caller's
//! principal, encrypts the value with a proof bound to the aggregate, the principal and a
//! fresh nonce, and submits it; or writes a contribution file for the offline `sum`.

use super::ContributionFile;
use crate::analytics::fhe::{contribution, keyset};
use crate::outbound::OutboundClient;
use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request};
use std::path::PathBuf;
use std::time::Duration;

/// Largest answer read from the gateway (the public key and CRS with base64 overhead).
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Time for one call, the public key and CRS download included.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Arguments of `privgate fhe contribute`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// The gateway's FHE API base URL, e.g. `https://gw.example/fhe/v1`.
    #[arg(long)]
    gateway: String,
    /// Aggregate id.
    #[arg(long)]
    aggregate: String,
    /// The value (an unsigned integer, e.g. an amount in minor units).
    #[arg(long)]
    value: u64,
    /// CA bundle the gateway's certificate chains to (system roots if absent).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate (mutual TLS) and its key.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key of `--cert`.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// File holding a bearer access token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Purpose of use (`X-Purpose`).
    #[arg(long)]
    purpose: Option<String>,
    /// Refuse a public key whose content hash is not this (hex).
    #[arg(long)]
    pin_sha256: Option<String>,
    /// Write the contribution to this file (for an offline `sum`) instead of submitting.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs the client.
pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let client = client(&args)?;
    let base = args.gateway.trim_end_matches('/').to_owned();
    let public = call(
        &client,
        &args,
        Method::GET,
        &format!("{base}/public-key"),
        None,
    )
    .await?;
    let sha = public["sha256"].as_str().unwrap_or_default().to_owned();
    if let Some(pin) = &args.pin_sha256 {
        if !pin.eq_ignore_ascii_case(&sha) {
            bail!("the gateway's public key hash {sha} is not the pinned one");
        }
    }
    let decode = |field: &str| {
        B64.decode(public[field].as_str().unwrap_or_default())
            .with_context(|| format!("public-key: {field} is not base64"))
    };
    let material = keyset::public_from_bytes(decode("public_key")?, decode("crs")?)?;
    if material.sha256 != sha {
        bail!("the public key and CRS do not match the hash the gateway gave");
    }
    let status = call(
        &client,
        &args,
        Method::GET,
        &format!("{base}/aggregates/{}", args.aggregate),
        None,
    )
    .await?;
    let bits = status["bits"]
        .as_u64()
        .context("aggregate status without bits")? as u32;
    let contributor = status["caller"]
        .as_str()
        .context("aggregate status without caller")?
        .to_owned();
    let mut nonce = [0u8; 16];
    crate::keys::random(&mut nonce)?;
    let nonce = crate::audit::hex(&nonce);
    let metadata = contribution::metadata(&args.aggregate, &contributor, &nonce);
    let value = args.value;
    let started = std::time::Instant::now();
    let bytes = tokio::task::spawn_blocking(move || {
        contribution::encrypt(&material, value, bits, &metadata)
    })
    .await??;
    eprintln!(
        "encrypted and proved {bits} bits in {:.2} s: {} bytes",
        started.elapsed().as_secs_f64(),
        bytes.len()
    );
    let file = ContributionFile {
        contributor,
        nonce,
        ciphertext: B64.encode(&bytes),
    };
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_vec(&file)?)
            .with_context(|| format!("{}", out.display()))?;
        println!("contribution written to {}", out.display());
        return Ok(());
    }
    let body = serde_json::json!({ "nonce": file.nonce, "ciphertext": file.ciphertext });
    let url = format!("{base}/aggregates/{}/contributions", args.aggregate);
    let answer = call(&client, &args, Method::POST, &url, Some(body)).await?;
    println!("{answer}");
    Ok(())
}

async fn call(
    client: &OutboundClient,
    args: &Args,
    method: Method,
    url: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let mut req = Request::builder().method(method).uri(url);
    if let Some(file) = &args.token_file {
        let token = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
        req = req.header("authorization", format!("Bearer {}", token.trim()));
    }
    if let Some(purpose) = &args.purpose {
        req = req.header("x-purpose", purpose);
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    // The GETs are tried again on a transient failure; the contribution's POST is sent once:
    // its nonce is accepted once, so a retry after a lost answer would report a refusal
    // for a contribution that was counted.
    let response = client
        .send(req.body(body)?)
        .await
        .context("gateway unreachable")?;
    let status = response.status();
    let bytes = response.into_body();
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        bail!("{url}: {status}: {}", value["error"]);
    }
    Ok(value)
}

fn client(args: &Args) -> anyhow::Result<OutboundClient> {
    let mut builder = OutboundClient::builder()
        .ca(args.ca.clone())
        .timeout(CALL_TIMEOUT)
        .max_body(MAX_ANSWER_BYTES);
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        builder = builder.client_cert(cert.clone(), key.clone());
    }
    builder.build().map_err(|e| anyhow::anyhow!("{e}"))
}

//! `privgate fhe`: make the FHE key set, contribute to an aggregate through a gateway, and
//! the offline split mode: `sum` on an untrusted compute node (public material only),
//! `decrypt` by the key custodian (keyring and client key).

mod contribute;

use crate::analytics::fhe::batches::{self, FoldKeys};
use crate::analytics::fhe::params::Sizing;
use crate::analytics::fhe::{configured, contribution, fold, keyset};
use crate::store::ContributionRow;
use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `privgate fhe`.
#[derive(clap::Args)]
pub(super) struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Make the key set in `[fhe] dir`: client key (sealed under the keyring), compressed
    /// server key, compact public key and the proof system's public parameters.
    Keygen {
        /// Configuration file (its `[store]`, `[keys]` and `[fhe]` sections).
        #[arg(long, default_value = "privgate.toml", env = "PRIVGATE_CONFIG")]
        config: PathBuf,
    },
    /// Encrypt a value with the gateway's public key, prove its width, and submit it.
    Contribute(contribute::Args),
    /// Offline: total contribution files with public material only (a compute node).
    Sum {
        /// The key set directory (only its public files are read).
        #[arg(long)]
        keys: PathBuf,
        /// The aggregate the contributions' proofs name.
        #[arg(long)]
        aggregate: String,
        /// Bits of each contribution.
        #[arg(long)]
        bits: u32,
        /// Most contributors the total is sized for.
        #[arg(long)]
        max_contributors: u64,
        /// Optional cap below 2^bits, applied by homomorphic clamp.
        #[arg(long)]
        cap: Option<u64>,
        /// Where to write the encrypted total.
        #[arg(long)]
        out: PathBuf,
        /// Contribution files: JSON `{"contributor", "nonce", "ciphertext"}`.
        contributions: Vec<PathBuf>,
    },
    /// Offline: decrypt a total from `sum` (the key custodian: opens the client key with
    /// the keyring of the configuration).
    Decrypt {
        /// Configuration file (its `[store]`, `[keys]` and `[fhe]` sections).
        #[arg(long, default_value = "privgate.toml", env = "PRIVGATE_CONFIG")]
        config: PathBuf,
        /// The encrypted total.
        total: PathBuf,
    },
}

/// A contribution file for offline summing.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ContributionFile {
    /// The contributor the proof names.
    pub contributor: String,
    /// The proof's nonce.
    pub nonce: String,
    /// Base64 of the proven compact list.
    pub ciphertext: String,
}

/// An encrypted total written by `sum`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TotalFile {
    aggregate: String,
    bits: u32,
    max_contributors: u64,
    contributors: usize,
    total: String,
}

/// Runs `privgate fhe`.
pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    match args.action {
        Action::Keygen { config } => keygen(&config).await,
        Action::Contribute(args) => contribute::run(args).await,
        Action::Sum {
            keys,
            aggregate,
            bits,
            max_contributors,
            cap,
            out,
            contributions,
        } => {
            let sizing = Sizing::new(bits, max_contributors)?;
            tokio::task::spawn_blocking(move || {
                sum(&keys, &aggregate, &sizing, cap, &out, &contributions)
            })
            .await?
        }
        Action::Decrypt { config, total } => decrypt(&config, &total).await,
    }
}

/// `privgate fhe keygen`.
async fn keygen(config_path: &Path) -> anyhow::Result<()> {
    let spinner = super::progress::spinner("generating the FHE key set (minutes)");
    let made = configured::make(config_path).await;
    spinner.finish_and_clear();
    println!("{}", made?);
    Ok(())
}

fn sum(
    dir: &Path,
    aggregate: &str,
    sizing: &Sizing,
    cap: Option<u64>,
    out: &Path,
    files: &[PathBuf],
) -> anyhow::Result<()> {
    let started = Instant::now();
    let public = keyset::load_public(dir)?;
    let server = keyset::load_server(&keyset::server_key_path(dir))?;
    let keys = FoldKeys::new(public, server)?;
    // One contribution per contributor: a later file replaces an earlier one.
    let mut latest = BTreeMap::new();
    for file in files {
        let text = std::fs::read(file).with_context(|| format!("{}", file.display()))?;
        let c: ContributionFile = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a contribution file", file.display()))?;
        let bytes = B64
            .decode(&c.ciphertext)
            .with_context(|| format!("{}: not base64", file.display()))?;
        let list = contribution::parse(&bytes, &keys.public)
            .with_context(|| format!("{}", file.display()))?;
        contribution::check_width(&list, sizing).with_context(|| format!("{}", file.display()))?;
        let metadata = contribution::metadata(aggregate, &c.contributor, &c.nonce);
        contribution::verify(&list, &keys.public, &metadata)
            .with_context(|| format!("{}", file.display()))?;
        latest.insert(c.contributor.clone(), c);
    }
    if latest.len() as u64 > sizing.max_contributors {
        anyhow::bail!("{} contributors exceed --max-contributors", latest.len());
    }
    let rows: Vec<ContributionRow> = latest
        .into_values()
        .enumerate()
        .map(|(slot, c)| ContributionRow {
            contributor: c.contributor,
            organisation: String::new(),
            slot: slot as i64,
            nonce: c.nonce,
            ciphertext: c.ciphertext,
        })
        .collect();
    let total = batches::fold_rows(&keys, aggregate, sizing, cap, &rows)?;
    let file = TotalFile {
        aggregate: aggregate.to_owned(),
        bits: sizing.bits,
        max_contributors: sizing.max_contributors,
        contributors: rows.len(),
        total: B64.encode(&total),
    };
    std::fs::write(out, serde_json::to_vec(&file)?)
        .with_context(|| format!("{}", out.display()))?;
    println!(
        "summed {} contributions in {:.2} s into {} ({} bytes encrypted)",
        rows.len(),
        started.elapsed().as_secs_f64(),
        out.display(),
        total.len()
    );
    Ok(())
}

async fn decrypt(config_path: &Path, total: &Path) -> anyhow::Result<()> {
    let (dir, keyring) = configured::open(config_path).await?;
    let file: TotalFile = serde_json::from_slice(&std::fs::read(total)?)
        .with_context(|| format!("{}: not a total file", total.display()))?;
    let sizing = Sizing::new(file.bits, file.max_contributors)?;
    let bytes = B64.decode(&file.total).context("total: not base64")?;
    let value = fold::load_total(&sizing, &bytes)?;
    let client = keyset::open_client(&dir, &keyring).await?;
    let clear = tokio::task::spawn_blocking(move || fold::decrypt(&client, &value)).await?;
    println!(
        "aggregate {}: total {clear} of {} contributions",
        file.aggregate, file.contributors
    );
    Ok(())
}

//! The key set of a configuration: the `[fhe] dir` it lives in and the keyring its client
//! key is sealed under, and making it there.
//!
//! `privgate fhe keygen`, `privgate fhe decrypt` and the demo's first run all start from a
//! config file; this is the one place that turns that file into a key set directory and an
//! open keyring, so the CLI and the demo share it rather than one calling the other.

use super::keyset::{self, Manifest};
use crate::config;
use crate::keys::Keyring;
use crate::store::Store;
use anyhow::Context;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Loads the config at `config_path` and opens the keyring the key set's client key is
/// sealed under: the `[fhe] dir` and that keyring.
pub(crate) async fn open(config_path: &Path) -> anyhow::Result<(PathBuf, Keyring)> {
    let config = config::load(config_path)?;
    let fhe = config
        .fhe
        .with_context(|| format!("{}: no [fhe] section", config_path.display()))?;
    let keys = config.keys.with_context(|| {
        format!(
            "{}: no [keys] section (the client key is sealed under the keyring)",
            config_path.display()
        )
    })?;
    let store = Store::open_configured(&config.store).await?;
    let keyring = Keyring::open_configured(store, &keys).await?;
    Ok((fhe.dir, keyring))
}

/// A key set just made, as its maker reports it (its `Display` is that report).
pub(crate) struct Made {
    dir: PathBuf,
    manifest: Manifest,
    generated_in: Duration,
    files: Vec<(String, u64)>,
}

/// Generates a key set (on a blocking worker: seconds to minutes) and writes it into the
/// `[fhe] dir` of the config at `config_path`, its client key sealed under that config's
/// keyring.
pub(crate) async fn make(config_path: &Path) -> anyhow::Result<Made> {
    let (dir, keyring) = open(config_path).await?;
    let started = Instant::now();
    let keys = tokio::task::spawn_blocking(keyset::generate).await??;
    let generated_in = started.elapsed();
    let manifest = keyset::write(&dir, &keys, &keyring).await?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        files.push((name, entry.metadata()?.len()));
    }
    Ok(Made {
        dir,
        manifest,
        generated_in,
        files,
    })
}

impl fmt::Display for Made {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "FHE key set written to {} in {:.1} s (parameters {})",
            self.dir.display(),
            self.generated_in.as_secs_f64(),
            self.manifest.parameters.join(", ")
        )?;
        for (name, len) in &self.files {
            writeln!(f, "  {name:<20} {len:>12} bytes")?;
        }
        write!(f, "public material sha256 {}", self.manifest.public_sha256)
    }
}

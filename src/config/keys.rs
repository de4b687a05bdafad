//! `[keys]`: where the key-encryption key (KEK) comes from, the Argon2id cost for new
//! keyrings, the AEAD usage bound and how stale a replica's key cache may get.
//!
//! ```toml
//! [keys]
//! kek = { source = "passphrase_file", path = "secrets/kek-passphrase" }
//! argon2 = { memory_kib = 65536, iterations = 3, parallelism = 1 }
//! aead_max_uses = 1073741824
//! refresh_interval = "1s"
//! ```

use super::problems::Problems;
use std::path::PathBuf;
use std::time::Duration;

/// Argon2id memory floor (KiB): 64 MiB, the first recommended setting of RFC 9106 (4.) for
/// memory-constrained environments. Less makes offline guessing of a stolen keyring's
/// passphrase cheap on GPUs.
pub(crate) const ARGON2_MIN_MEMORY_KIB: u32 = 64 * 1024;
/// Argon2id pass floor: 3, as RFC 9106's second recommended option pairs with 64 MiB.
pub(crate) const ARGON2_MIN_ITERATIONS: u32 = 3;
/// Memory ceiling (KiB), 4 GiB: a stored keyring with a larger cost would be a way to make a
/// gateway run out of memory at start.
pub(crate) const ARGON2_MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// Pass ceiling, for the same reason (start-up time).
pub(crate) const ARGON2_MAX_ITERATIONS: u32 = 64;
/// Lanes ceiling; more than the cores there are only slows derivation down.
pub(crate) const ARGON2_MAX_PARALLELISM: u32 = 16;

/// Default encryptions per AES-256-GCM key version: 2^30. NIST SP 800-38D (8.3) caps a key
/// with random 96-bit nonces at 2^32 invocations, where the chance of a nonce collision is
/// already about 2^-33; at 2^30 it is about 2^-37 (q^2 / 2^97), and the margin also
/// absorbs uses reserved by replicas but never made. Rotation is automatic and cheap, so
/// nothing is gained by going nearer the limit.
pub(crate) const AEAD_MAX_USES: u64 = 1 << 30;
/// The configurable ceiling: SP 800-38D's 2^32 itself.
pub(crate) const AEAD_MAX_USES_CEILING: u64 = 1 << 32;

/// Default bound on how stale a replica's key cache may be: a shred, retirement or
/// rotation made elsewhere is seen within this long (one cheap counter read per interval).
pub(crate) const KEYS_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Longest refresh interval accepted: a shred must reach every replica promptly.
pub(crate) const KEYS_MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// The `[keys]` section.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Where the KEK comes from.
    pub kek: KekSource,
    /// Argon2id cost for `keys init` and `keys rewrap` (an existing keyring keeps its own,
    /// stored with it).
    #[serde(default)]
    pub argon2: Argon2Config,
    /// Encryptions per AES-GCM key version before a new version is rotated in.
    #[serde(default = "default_aead_max_uses")]
    pub aead_max_uses: u64,
    /// How stale a replica's key cache may get (0: check the store on every use).
    #[serde(default = "default_refresh_interval", with = "humantime_serde")]
    pub refresh_interval: Duration,
}

fn default_aead_max_uses() -> u64 {
    AEAD_MAX_USES
}
fn default_refresh_interval() -> Duration {
    KEYS_REFRESH_INTERVAL
}

/// Where the key-encryption key comes from.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum KekSource {
    /// Argon2id over a passphrase in a file (its first line; mode 0600 or stricter).
    PassphraseFile {
        /// The file.
        path: PathBuf,
    },
    /// Argon2id over a passphrase read from an inherited file descriptor (e.g. `3<file`).
    PassphraseFd {
        /// The descriptor number.
        fd: u32,
    },
    /// Argon2id over a passphrase typed at the terminal (commands run by hand).
    PassphrasePrompt,
    /// Argon2id over a passphrase in an environment variable: other local processes of the
    /// same user can read it, so a warning is logged.
    PassphraseEnv {
        /// The variable's name.
        var: String,
    },
    /// A raw 256-bit key: a file of 32 bytes or 64 hex digits, mode 0600 or stricter.
    KeyFile {
        /// The file.
        path: PathBuf,
    },
    /// An AES-256 key inside a PKCS#11 module (HSM, SoftHSM2) that never leaves it.
    Pkcs11 {
        /// The module's shared library, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
        module: PathBuf,
        /// Label of the token that holds the key.
        token_label: String,
        /// Label of the AES key object (`privgate keys hsm-keygen` makes one).
        key_label: String,
        /// File holding the token's user PIN (first line; mode 0600 or stricter).
        pin_file: PathBuf,
    },
}

impl KekSource {
    /// Whether the KEK is derived from a passphrase (and so needs Argon2 parameters).
    pub fn is_passphrase(&self) -> bool {
        !matches!(self, KekSource::KeyFile { .. } | KekSource::Pkcs11 { .. })
    }

    pub(super) fn resolve(&mut self, resolve: impl Fn(&mut PathBuf)) {
        match self {
            KekSource::PassphraseFile { path } | KekSource::KeyFile { path } => resolve(path),
            KekSource::Pkcs11 {
                module, pin_file, ..
            } => {
                resolve(module);
                resolve(pin_file);
            }
            _ => {}
        }
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Argon2Config {
    /// Memory in KiB (at least 65536).
    pub memory_kib: u32,
    /// Passes (at least 3).
    pub iterations: u32,
    /// Lanes (at least 1).
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            memory_kib: ARGON2_MIN_MEMORY_KIB,
            iterations: ARGON2_MIN_ITERATIONS,
            parallelism: 1,
        }
    }
}

impl Argon2Config {
    /// Every way these parameters fall outside the accepted range.
    pub fn problems(&self) -> Vec<String> {
        let mut found = Vec::new();
        if !(ARGON2_MIN_MEMORY_KIB..=ARGON2_MAX_MEMORY_KIB).contains(&self.memory_kib) {
            found.push(format!(
                "argon2.memory_kib must be between {ARGON2_MIN_MEMORY_KIB} (64 MiB) and {ARGON2_MAX_MEMORY_KIB}"
            ));
        }
        if !(ARGON2_MIN_ITERATIONS..=ARGON2_MAX_ITERATIONS).contains(&self.iterations) {
            found.push(format!(
                "argon2.iterations must be between {ARGON2_MIN_ITERATIONS} and {ARGON2_MAX_ITERATIONS}"
            ));
        }
        if !(1..=ARGON2_MAX_PARALLELISM).contains(&self.parallelism) {
            found.push(format!(
                "argon2.parallelism must be between 1 and {ARGON2_MAX_PARALLELISM}"
            ));
        }
        found
    }
}

pub(super) fn validate(keys: &KeysConfig, problems: &mut Problems) {
    for message in keys.argon2.problems() {
        problems.add(format!("keys.{message}"));
    }
    if !(1..=AEAD_MAX_USES_CEILING).contains(&keys.aead_max_uses) {
        problems.add(format!(
            "keys.aead_max_uses must be between 1 and {AEAD_MAX_USES_CEILING} (2^32, NIST SP 800-38D)"
        ));
    }
    if keys.refresh_interval > KEYS_MAX_REFRESH_INTERVAL {
        problems.add(
            "keys.refresh_interval must be at most 60s: shreds must reach every replica promptly",
        );
    }
    match &keys.kek {
        KekSource::PassphraseEnv { var } if var.is_empty() || var.contains(['=', '\0']) => {
            problems.add("keys.kek.var must be an environment variable name");
        }
        KekSource::Pkcs11 {
            token_label,
            key_label,
            ..
        } if token_label.is_empty() || key_label.is_empty() => {
            problems.add("keys.kek.token_label and keys.kek.key_label must not be empty");
        }
        _ => {}
    }
}

//! The key-encryption key (KEK): where it comes from and how it wraps data keys.
//!
//! A KEK is either derived with Argon2id from an operator passphrase (salt and cost stored
//! with the keyring, so every start derives the same key) or read as a raw 256-bit key
//! file. It wraps data keys with the one AEAD wrapper ([`super::aead`]); the associated
//! data of each wrap names the keyring and what is wrapped, so a wrapped key moved to
//! another row, name, version or kind does not open. A check value (a known string sealed
//! under the KEK) tells a wrong passphrase apart from a corrupted key at start.

use super::hsm::{HsmKek, HsmLocation};
use super::{aead, KeyError};
use crate::config::{Argon2Config, KekSource};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::fmt;
use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

/// Shortest passphrase accepted for a new keyring or a rewrap: 12 characters. The KEK is
/// only as strong as the passphrase; Argon2id slows guessing, it cannot fix a short one.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// Salt length for Argon2id (RFC 9106 recommends 128 bits).
const SALT_LEN: usize = 16;
/// Largest passphrase or key file read; anything bigger is not a passphrase.
const MAX_SECRET_FILE_BYTES: u64 = 4096;
/// The known plaintext of the check value.
const CHECK_PLAINTEXT: &[u8] = b"privgate keyring check value v1";

/// What a KEK source yields before the keyring's parameters are known.
pub enum KekMaterial {
    /// A passphrase, to go through Argon2id.
    Passphrase(Zeroizing<String>),
    /// A raw 256-bit key.
    Raw(Zeroizing<[u8; aead::KEY_LEN]>),
    /// A key inside a PKCS#11 module, logged in.
    Hsm(HsmKek),
}

impl fmt::Debug for KekMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KekMaterial::Passphrase(_) => "KekMaterial::Passphrase(..)",
            KekMaterial::Raw(_) => "KekMaterial::Raw(..)",
            KekMaterial::Hsm(_) => "KekMaterial::Hsm(..)",
        })
    }
}

/// How a keyring's KEK is derived, as stored (JSON) with the keyring.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "alg", rename_all = "snake_case", deny_unknown_fields)]
pub enum Kdf {
    /// Argon2id v1.3 over a passphrase.
    Argon2id {
        /// Cost parameters.
        params: Argon2Config,
        /// Salt, base64.
        salt: String,
    },
    /// The KEK is a raw key file; nothing to derive.
    None,
    /// The KEK is a key object in a PKCS#11 module.
    Pkcs11 {
        /// The key object's label.
        key_label: String,
    },
}

impl Kdf {
    /// The `kek_source` column value for this KDF.
    pub fn source_name(&self) -> &'static str {
        match self {
            Kdf::Argon2id { .. } => "passphrase",
            Kdf::None => "key_file",
            Kdf::Pkcs11 { .. } => "pkcs11",
        }
    }

    /// A fresh KDF description for new key material: a new random salt for passphrases.
    pub fn fresh(material: &KekMaterial, params: Argon2Config) -> Result<Self, KeyError> {
        Ok(match material {
            KekMaterial::Raw(_) => Kdf::None,
            KekMaterial::Hsm(hsm) => Kdf::Pkcs11 {
                key_label: hsm.label().to_owned(),
            },
            KekMaterial::Passphrase(_) => {
                let mut salt = [0u8; SALT_LEN];
                super::random(&mut salt)?;
                Kdf::Argon2id {
                    params,
                    salt: B64.encode(salt),
                }
            }
        })
    }
}

/// The key-encryption key. `Debug` shows nothing of it.
pub struct Kek {
    inner: KekInner,
}

enum KekInner {
    /// In this process's memory (passphrase-derived or from a key file).
    Local(Zeroizing<[u8; aead::KEY_LEN]>),
    /// In a PKCS#11 module; wraps and unwraps happen there.
    Hsm(HsmKek),
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    /// Derives (passphrase) or takes (raw key) the KEK a keyring with `kdf` needs.
    pub fn derive(material: &KekMaterial, kdf: &Kdf) -> Result<Self, KeyError> {
        let mut secret = Zeroizing::new([0u8; aead::KEY_LEN]);
        match (material, kdf) {
            (KekMaterial::Raw(raw), Kdf::None) => secret.copy_from_slice(raw.as_ref()),
            (KekMaterial::Hsm(hsm), Kdf::Pkcs11 { key_label }) if hsm.label() == key_label => {
                return Ok(Self {
                    inner: KekInner::Hsm(hsm.clone()),
                })
            }
            (KekMaterial::Passphrase(phrase), Kdf::Argon2id { params, salt }) => {
                argon2id(phrase, params, salt, &mut secret)?;
            }
            (material, kdf) => {
                let configured = match material {
                    KekMaterial::Passphrase(_) => "a passphrase".to_owned(),
                    KekMaterial::Raw(_) => "a key file".to_owned(),
                    KekMaterial::Hsm(hsm) => format!("PKCS#11 key `{}`", hsm.label()),
                };
                let stored = match kdf {
                    Kdf::Argon2id { .. } => "derived from a passphrase".to_owned(),
                    Kdf::None => "a key file".to_owned(),
                    Kdf::Pkcs11 { key_label } => format!("PKCS#11 key `{key_label}`"),
                };
                return Err(KeyError::KekSource(format!(
                    "this keyring's KEK is {stored}, but [keys] kek names {configured}"
                )));
            }
        }
        Ok(Self {
            inner: KekInner::Local(secret),
        })
    }

    /// Seals `secret` bound to `aad`; base64 text for the store.
    pub fn wrap(&self, aad: &[u8], secret: &[u8]) -> Result<String, KeyError> {
        let sealed = match &self.inner {
            KekInner::Local(kek) => aead::seal(kek.as_ref(), aad, secret).map_err(|e| match e {
                aead::AeadError::Random => KeyError::Random,
                other => KeyError::Corrupted(other.to_string()),
            })?,
            KekInner::Hsm(hsm) => hsm.seal(aad, secret)?,
        };
        Ok(B64.encode(sealed))
    }

    /// Opens a value from [`Kek::wrap`]; `None` if it does not authenticate.
    pub fn unwrap(&self, aad: &[u8], wrapped: &str) -> Option<Zeroizing<Vec<u8>>> {
        let sealed = B64.decode(wrapped).ok()?;
        match &self.inner {
            KekInner::Local(kek) => aead::open(kek.as_ref(), aad, &sealed).ok(),
            KekInner::Hsm(hsm) => hsm.open_sealed(aad, &sealed),
        }
    }

    /// The check value for a keyring with this id.
    pub fn check_value(&self, keyring_id: &str) -> Result<String, KeyError> {
        self.wrap(&check_aad(keyring_id), CHECK_PLAINTEXT)
    }

    /// Whether `check_value` was made by this KEK for this keyring.
    pub fn verify(&self, keyring_id: &str, check_value: &str) -> Result<(), KeyError> {
        match self.unwrap(&check_aad(keyring_id), check_value) {
            Some(plain) if plain.as_slice() == CHECK_PLAINTEXT => Ok(()),
            _ => Err(KeyError::WrongKek),
        }
    }
}

/// Argon2id v1.3 over `phrase` with stored (and re-checked) parameters.
fn argon2id(
    phrase: &str,
    params: &Argon2Config,
    salt: &str,
    out: &mut [u8; aead::KEY_LEN],
) -> Result<(), KeyError> {
    if let Some(problem) = params.problems().first() {
        return Err(KeyError::Corrupted(format!("stored KDF: {problem}")));
    }
    let salt = B64
        .decode(salt)
        .map_err(|_| KeyError::Corrupted("stored KDF salt is not base64".into()))?;
    let params = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(aead::KEY_LEN),
    )
    .map_err(|e| KeyError::Corrupted(format!("stored KDF parameters: {e}")))?;
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(phrase.as_bytes(), &salt, out)
        .map_err(|e| KeyError::Corrupted(format!("stored KDF: {e}")))
}

fn check_aad(keyring_id: &str) -> Vec<u8> {
    format!("privgate/keyring-check/v1|{keyring_id}").into_bytes()
}

/// Reads the KEK material a source names. Passphrases must be non-empty; key files and
/// passphrase files must not be readable by group or others.
pub fn read_material(source: &KekSource) -> Result<KekMaterial, KeyError> {
    match source {
        KekSource::KeyFile { path } => read_key_file(path).map(KekMaterial::Raw),
        KekSource::Pkcs11 {
            module,
            token_label,
            key_label,
            pin_file,
        } => {
            let location = HsmLocation {
                module,
                token_label,
                key_label,
            };
            HsmKek::open(&location, &read_pin(pin_file)?).map(KekMaterial::Hsm)
        }
        KekSource::PassphraseFile { path } => {
            check_private(path)?;
            passphrase(read_limited(path)?)
        }
        KekSource::PassphraseFd { fd } => {
            // /dev/fd/N opens the inherited descriptor without unsafe code.
            passphrase(read_limited(Path::new(&format!("/dev/fd/{fd}")))?)
        }
        KekSource::PassphrasePrompt => {
            let typed = rpassword::prompt_password("keyring passphrase: ").map_err(|e| {
                KeyError::KekSource(format!(
                    "cannot prompt for the passphrase (no terminal?): {e}"
                ))
            })?;
            passphrase(Zeroizing::new(typed.into_bytes()))
        }
        KekSource::PassphraseEnv { var } => {
            tracing::warn!(
                var = %var,
                "the keyring passphrase comes from the environment, which other local processes of the same user can read; prefer a passphrase file or descriptor"
            );
            let value = std::env::var(var).map_err(|_| {
                KeyError::KekSource(format!(
                    "environment variable {var} is not set or not UTF-8"
                ))
            })?;
            passphrase(Zeroizing::new(value.into_bytes()))
        }
    }
}

/// Reads the material for a NEW keyring or rewrap: a typed passphrase is asked twice (a
/// typo here would make a keyring nobody can open), and passphrases must be strong.
pub fn read_new_material(source: &KekSource) -> Result<KekMaterial, KeyError> {
    let material = read_material(source)?;
    if let (KekSource::PassphrasePrompt, KekMaterial::Passphrase(first)) = (source, &material) {
        let again = rpassword::prompt_password("repeat the passphrase: ")
            .map_err(|e| KeyError::KekSource(format!("cannot prompt for the passphrase: {e}")))?;
        if Zeroizing::new(again).as_str() != first.as_str() {
            return Err(KeyError::KekSource("the passphrases differ".into()));
        }
    }
    require_strong(&material)?;
    Ok(material)
}

/// A passphrase from raw bytes: the first line, without its line ending.
fn passphrase(bytes: Zeroizing<Vec<u8>>) -> Result<KekMaterial, KeyError> {
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| KeyError::KekSource("the passphrase is not UTF-8".into()))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(KeyError::KekSource("the passphrase is empty".into()));
    }
    Ok(KekMaterial::Passphrase(Zeroizing::new(line.to_owned())))
}

/// A PKCS#11 user PIN from a private file (its first line).
pub fn read_pin(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    check_private(path)?;
    match passphrase(read_limited(path)?)? {
        KekMaterial::Passphrase(pin) => Ok(pin),
        _ => Err(KeyError::KekSource("the PIN file is unreadable".into())),
    }
}

/// Refuses passphrases too short for a new keyring or a rewrap.
pub fn require_strong(material: &KekMaterial) -> Result<(), KeyError> {
    match material {
        KekMaterial::Passphrase(p) if p.chars().count() < MIN_PASSPHRASE_CHARS => {
            Err(KeyError::KekSource(format!(
                "a new passphrase must be at least {MIN_PASSPHRASE_CHARS} characters"
            )))
        }
        _ => Ok(()),
    }
}

fn read_limited(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let file = std::fs::File::open(path)
        .map_err(|e| KeyError::KekSource(format!("{}: cannot read: {e}", path.display())))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyError::KekSource(format!("{}: cannot read: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(KeyError::KekSource(format!(
            "{}: longer than {MAX_SECRET_FILE_BYTES} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Refuses a secret file that group or others may read or write.
fn check_private(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| KeyError::KekSource(format!("{}: cannot read: {e}", path.display())))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::KekSource(format!(
            "{}: readable or writable by group or others (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

/// A raw KEK file: exactly 32 bytes, or 64 hex digits (with an optional final newline).
fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; aead::KEY_LEN]>, KeyError> {
    check_private(path)?;
    let bytes = read_limited(path)?;
    let mut key = Zeroizing::new([0u8; aead::KEY_LEN]);
    if bytes.len() == aead::KEY_LEN {
        key.copy_from_slice(&bytes);
        return Ok(key);
    }
    let text = std::str::from_utf8(&bytes).unwrap_or("").trim_end();
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    if text.len() != 2 * aead::KEY_LEN {
        return Err(KeyError::KekSource(format!(
            "{}: a key file holds 32 raw bytes or 64 hex digits",
            path.display()
        )));
    }
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => key[i] = hi << 4 | lo,
            _ => {
                return Err(KeyError::KekSource(format!(
                    "{}: a key file holds 32 raw bytes or 64 hex digits",
                    path.display()
                )))
            }
        }
    }
    Ok(key)
}

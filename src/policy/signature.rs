//! Signed policy sets: an Ed25519 signature (ring) over a set's canonical content
//! ([`PolicySnapshot::content_sha256`]), detached in [`SIGNATURE_FILE`] beside the files.
//! With `[policy] trusted_keys`, the gateway activates (at start and on every reload) only a
//! set whose signature verifies under one of those keys, over exactly the bytes it loads.
//!
//! Keys: `privgate policy keygen` writes a PKCS#8 private key (mode 0600) and `<key>.pub`,
//! one line `ed25519 <base64 public key>`; the gateway holds only public keys.

use super::snapshot::{PolicySnapshot, SIGNATURE_FILE};
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::Zeroizing;

/// The signature file's format tag.
const FORMAT: &str = "privgate-policy-set-signature/1";

/// The signature file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    format: String,
    /// Which key signed ([`key_id`]).
    key_id: String,
    /// The signed content's SHA-256 (hex): informative, so a mismatch can say "changed
    /// since signed"; what is verified is the signature over the content as read.
    content_sha256: String,
    /// Ed25519 over the 32-byte content digest, base64.
    signature: String,
}

/// A public key the gateway trusts to sign policy sets.
pub struct TrustedKey {
    id: String,
    public: Vec<u8>,
}

/// The short id of a public key: the first 16 hex digits of its SHA-256.
fn key_id(public: &[u8]) -> String {
    crate::audit::hex(&ring::digest::digest(&ring::digest::SHA256, public).as_ref()[..8])
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl TrustedKey {
    /// Reads a public key file (`ed25519 <base64>`); the error says what is wrong with it.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read policy signing key: {e}"))?;
        let encoded = text
            .trim()
            .strip_prefix("ed25519 ")
            .ok_or("not a policy signing public key (expected `ed25519 <base64>`)")?;
        let public = b64()
            .decode(encoded.trim())
            .ok()
            .filter(|k| k.len() == 32)
            .ok_or("not a policy signing public key (the key is not 32 bytes of base64)")?;
        Ok(Self {
            id: key_id(&public),
            public,
        })
    }
}

/// Writes a new signing key to `out` (PKCS#8, mode 0600, never overwrites) and its public
/// key to `<out>.pub`; returns the public key's path and id.
pub fn generate_key(out: &Path) -> anyhow::Result<(std::path::PathBuf, String)> {
    use anyhow::Context;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("ring rejected the key it generated"))?;
    let public = pair.public_key().as_ref();
    let public_path = {
        let mut name = out.as_os_str().to_owned();
        name.push(".pub");
        std::path::PathBuf::from(name)
    };
    crate::private_file::write(out, pkcs8.as_ref(), crate::private_file::Existing::Refuse)
        .with_context(|| format!("{}: cannot create (it must not exist yet)", out.display()))?;
    let line = format!("ed25519 {}\n", b64().encode(public));
    std::fs::write(&public_path, line)
        .with_context(|| format!("{}: cannot write", public_path.display()))?;
    Ok((public_path, key_id(public)))
}

/// The signature file's text for `snapshot`, signed with the PKCS#8 key in `key_file`.
pub fn sign(snapshot: &PolicySnapshot, key_file: &Path) -> Result<String, String> {
    let pkcs8 = Zeroizing::new(
        std::fs::read(key_file).map_err(|e| format!("{}: cannot read: {e}", key_file.display()))?,
    );
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| {
        format!(
            "{}: not an Ed25519 private key (from `privgate policy keygen`)",
            key_file.display()
        )
    })?;
    let digest = snapshot.content_sha256();
    let file = SignatureFile {
        format: FORMAT.into(),
        key_id: key_id(pair.public_key().as_ref()),
        content_sha256: crate::audit::hex(&digest),
        signature: b64().encode(pair.sign(&digest).as_ref()),
    };
    serde_json::to_string_pretty(&file)
        .map(|t| t + "\n")
        .map_err(|e| e.to_string())
}

/// Whether `snapshot` is signed by one of `trusted`, over exactly its content; the error
/// says why not, naming no key material.
pub fn verify(snapshot: &PolicySnapshot, trusted: &[TrustedKey]) -> Result<String, String> {
    let bytes = snapshot.signature().ok_or_else(|| {
        format!("unsigned: no {SIGNATURE_FILE}, and [policy] trusted_keys requires a signed set")
    })?;
    let file: SignatureFile = serde_json::from_slice(bytes)
        .map_err(|_| format!("{SIGNATURE_FILE} is not a policy set signature"))?;
    if file.format != FORMAT {
        return Err(format!(
            "{SIGNATURE_FILE}: unknown format `{}`",
            file.format
        ));
    }
    let key = trusted
        .iter()
        .find(|k| k.id == file.key_id)
        .ok_or_else(|| {
            format!(
                "signed by key {}, which [policy] trusted_keys does not list",
                file.key_id
            )
        })?;
    let digest = snapshot.content_sha256();
    let content = crate::audit::hex(&digest);
    if content != file.content_sha256 {
        return Err(format!(
            "the files are not what was signed (changed, added or removed since): content \
             sha256 {content}, signed {}",
            file.content_sha256
        ));
    }
    let signature = b64()
        .decode(&file.signature)
        .map_err(|_| format!("{SIGNATURE_FILE}: the signature is not base64"))?;
    UnparsedPublicKey::new(&ED25519, &key.public)
        .verify(&digest, &signature)
        .map_err(|_| {
            format!(
                "the signature does not verify under key {} (forged, or made over other content)",
                key.id
            )
        })?;
    Ok(key.id.clone())
}

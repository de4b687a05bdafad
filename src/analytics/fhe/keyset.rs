//! The FHE key set: generated once (`privgate fhe keygen`), kept as files in one directory,
//! loaded once at start.
//!
//! ```text
//! keyset.json        parameter names, content hash of the public material, sealing key
//! public_key.bin     compact public key (contributors encrypt with it)
//! crs.bin            the proof system's public parameters (contributors prove with them)
//! server_key.bin     compressed server key (public: it computes, it cannot decrypt)
//! client_key.sealed  the client key, sealed under a keyring data key (AES-256-GCM)
//! ```
//!
//! Every file is read under a size limit and through tfhe's safe deserialization; public
//! objects are also checked for conformance with the pinned parameters. The client key is
//! sealed with the keyring's one AEAD wrapper under the data key [`SEALING_KEY`]; its
//! associated data names the public material's hash, so a client key moved next to another
//! key set does not open.

use super::{params, FheError};
use crate::keys::{aead, KeyKind, Keyring};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;
use tfhe::conformance::ParameterSetConformant;
use tfhe::named::Named;
use tfhe::safe_serialization::{safe_deserialize, safe_deserialize_conformant, safe_serialize};
use tfhe::zk::CompactPkeCrs;
use tfhe::{ClientKey, CompactPublicKey, CompressedServerKey, ServerKey, Unversionize, Versionize};
use zeroize::Zeroizing;

/// The keyring data key the client key is sealed under.
pub const SEALING_KEY: &str = "fhe-client";

/// Size limits, far above what the pinned parameters produce (measured: README), far
/// below what would exhaust memory.
pub const SERVER_KEY_LIMIT: u64 = 1 << 30;
/// Client key limit.
pub const CLIENT_KEY_LIMIT: u64 = 256 << 20;
/// Compact public key limit.
pub const PUBLIC_KEY_LIMIT: u64 = 16 << 20;
/// CRS limit.
pub const CRS_LIMIT: u64 = 256 << 20;

const MANIFEST: &str = "keyset.json";
const PUBLIC_KEY: &str = "public_key.bin";
const CRS: &str = "crs.bin";
const SERVER_KEY: &str = "server_key.bin";
const CLIENT_KEY: &str = "client_key.sealed";
/// Layout version: 2 since the server key carries the re-randomization key (format 1 key
/// sets cannot re-randomize and are refused).
pub const FORMAT: u32 = 2;

/// `keyset.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Layout version of the directory.
    pub format: u32,
    /// The pinned parameter names the keys were made with.
    pub parameters: Vec<String>,
    /// SHA-256 (hex) of the public material ([`public_hash`]).
    pub public_sha256: String,
    /// Version of [`SEALING_KEY`] the client key is sealed under.
    pub sealing_key_version: u32,
}

/// What contributors need: the compact public key and the CRS, with their bytes as served
/// and a content hash they can pin.
pub struct PublicMaterial {
    /// Compact public key.
    pub public_key: CompactPublicKey,
    /// Proof system public parameters.
    pub crs: CompactPkeCrs,
    /// `public_key.bin` as written.
    pub public_key_bytes: Vec<u8>,
    /// `crs.bin` as written.
    pub crs_bytes: Vec<u8>,
    /// [`public_hash`] of the two.
    pub sha256: String,
}

/// A freshly generated key set (in memory, before it is written).
pub struct Generated {
    /// The client key (decrypts).
    pub client: ClientKey,
    /// The compressed server key (computes).
    pub server: CompressedServerKey,
    /// The compact public key (encrypts).
    pub public_key: CompactPublicKey,
    /// The proof system's public parameters.
    pub crs: CompactPkeCrs,
}

/// Generates a key set with the pinned parameters (seconds to minutes: CPU bound).
pub fn generate() -> Result<Generated, FheError> {
    let config = params::config();
    let client = ClientKey::generate(config);
    let server = CompressedServerKey::new(&client);
    let public_key = CompactPublicKey::try_new(&client)
        .map_err(|e| FheError::Internal(format!("compact public key: {e}")))?;
    let crs = CompactPkeCrs::from_config(config, params::CRS_MAX_BITS)
        .map_err(|e| FheError::Internal(format!("CRS: {e}")))?;
    Ok(Generated {
        client,
        server,
        public_key,
        crs,
    })
}

/// Writes a generated key set into `dir` (created; refuses one that holds a key set),
/// sealing the client key under the keyring.
pub async fn write(dir: &Path, keys: &Generated, keyring: &Keyring) -> Result<Manifest, FheError> {
    if dir.join(MANIFEST).exists() {
        return Err(FheError::Keys(format!(
            "{} already holds a key set",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let public_key = serialize(&keys.public_key, PUBLIC_KEY_LIMIT)?;
    let crs = serialize(&keys.crs, CRS_LIMIT)?;
    let server = serialize(&keys.server, SERVER_KEY_LIMIT)?;
    let client = Zeroizing::new(serialize(&keys.client, CLIENT_KEY_LIMIT)?);
    let sha256 = public_hash(&public_key, &crs);
    let sealing = keyring
        .ensure(SEALING_KEY, KeyKind::Aead)
        .await
        .map_err(|e| FheError::Keys(e.to_string()))?;
    let sealed = aead::seal(sealing.secret(), &client_aad(&sha256), &client)
        .map_err(|e| FheError::Keys(e.to_string()))?;
    let manifest = Manifest {
        format: FORMAT,
        parameters: params::PARAMETER_NAMES.map(str::to_owned).to_vec(),
        public_sha256: sha256,
        sealing_key_version: sealing.version(),
    };
    write_file(&dir.join(PUBLIC_KEY), &public_key, false)?;
    write_file(&dir.join(CRS), &crs, false)?;
    write_file(&dir.join(SERVER_KEY), &server, false)?;
    write_file(&dir.join(CLIENT_KEY), &sealed, true)?;
    let text =
        serde_json::to_vec_pretty(&manifest).map_err(|e| FheError::Internal(e.to_string()))?;
    write_file(&dir.join(MANIFEST), &text, false)?;
    Ok(manifest)
}

/// Reads `keyset.json`, refusing a key set made with other parameters.
pub fn manifest(dir: &Path) -> Result<Manifest, FheError> {
    let bytes = read_limited(&dir.join(MANIFEST), 64 << 10)?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|_| FheError::Malformed("keyset.json"))?;
    if manifest.format < FORMAT {
        return Err(FheError::Keys(format!(
            "the key set in {} has format {}, made before ciphertext re-randomization (this \
             build needs format {FORMAT}): move it away and run `privgate fhe keygen` again \
             (contributors then encrypt with the new public key)",
            dir.display(),
            manifest.format
        )));
    }
    if manifest.format != FORMAT || manifest.parameters != params::PARAMETER_NAMES {
        return Err(FheError::Keys(
            "the key set was made with other parameters than this build pins".into(),
        ));
    }
    Ok(manifest)
}

/// Loads the public material and checks it against the manifest's hash.
pub fn load_public(dir: &Path) -> Result<PublicMaterial, FheError> {
    let manifest = manifest(dir)?;
    let public_key_bytes = read_limited(&dir.join(PUBLIC_KEY), PUBLIC_KEY_LIMIT)?;
    let crs_bytes = read_limited(&dir.join(CRS), CRS_LIMIT)?;
    let sha256 = public_hash(&public_key_bytes, &crs_bytes);
    if sha256 != manifest.public_sha256 {
        return Err(FheError::Keys(
            "the public key or CRS does not match keyset.json".into(),
        ));
    }
    public_from_bytes(public_key_bytes, crs_bytes)
}

/// Public material from its serialized bytes (as served), checked for conformance.
pub fn public_from_bytes(
    public_key_bytes: Vec<u8>,
    crs_bytes: Vec<u8>,
) -> Result<PublicMaterial, FheError> {
    let public_key: CompactPublicKey = deserialize_conformant(
        &public_key_bytes,
        PUBLIC_KEY_LIMIT,
        &params::pke(),
        "public key",
    )?;
    let crs_params = tfhe::zk::new_compact_pke_crs_conformance_params(
        params::pke(),
        tfhe::core_crypto::prelude::LweCiphertextCount(
            params::CRS_MAX_BITS.div_ceil(2 * params::BITS_PER_BLOCK as usize),
        ),
    )
    .map_err(|e| FheError::Internal(e.to_string()))?;
    let crs: CompactPkeCrs = deserialize_conformant(&crs_bytes, CRS_LIMIT, &crs_params, "CRS")?;
    let sha256 = public_hash(&public_key_bytes, &crs_bytes);
    Ok(PublicMaterial {
        public_key,
        crs,
        public_key_bytes,
        crs_bytes,
        sha256,
    })
}

/// Loads and decompresses the server key (public: a compute node may hold it).
pub fn load_server(path: &Path) -> Result<ServerKey, FheError> {
    let bytes = read_limited(path, SERVER_KEY_LIMIT)?;
    let compressed: CompressedServerKey = deserialize_conformant(
        &bytes,
        SERVER_KEY_LIMIT,
        &params::config().into(),
        "server key",
    )?;
    Ok(compressed.decompress())
}

/// The server key file of a key set directory.
pub fn server_key_path(dir: &Path) -> std::path::PathBuf {
    dir.join(SERVER_KEY)
}

/// Opens the sealed client key with the keyring (the key custodian's step).
pub async fn open_client(dir: &Path, keyring: &Keyring) -> Result<ClientKey, FheError> {
    let manifest = manifest(dir)?;
    let sealed = read_limited(
        &dir.join(CLIENT_KEY),
        CLIENT_KEY_LIMIT + aead::OVERHEAD as u64,
    )?;
    let key = keyring
        .version(SEALING_KEY, manifest.sealing_key_version)
        .await
        .map_err(|e| FheError::Keys(e.to_string()))?;
    let bytes = aead::open(key.secret(), &client_aad(&manifest.public_sha256), &sealed)
        .map_err(|_| FheError::Keys("the client key does not open with this keyring".into()))?;
    deserialize(&bytes, CLIENT_KEY_LIMIT, "client key")
}

/// SHA-256 over both public objects, length-prefixed, under a domain label.
pub fn public_hash(public_key: &[u8], crs: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"privgate/fhe-public/v1");
    for part in [public_key, crs] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    crate::audit::hex(ctx.finish().as_ref())
}

fn client_aad(public_sha256: &str) -> Vec<u8> {
    format!("privgate/fhe-client-key/v1|{public_sha256}").into_bytes()
}

/// Serializes with tfhe's safe (versioned, size-limited) format.
pub fn serialize<T: Serialize + Versionize + Named>(
    value: &T,
    limit: u64,
) -> Result<Vec<u8>, FheError> {
    let mut out = Vec::new();
    safe_serialize(value, &mut out, limit)
        .map_err(|e| FheError::Internal(format!("serialize {}: {e}", T::NAME)))?;
    Ok(out)
}

/// Deserializes our own sealed or trusted objects (size limit, header check).
pub fn deserialize<T: serde::de::DeserializeOwned + Unversionize + Named>(
    bytes: &[u8],
    limit: u64,
    what: &'static str,
) -> Result<T, FheError> {
    if bytes.len() as u64 > limit {
        return Err(FheError::Malformed(what));
    }
    super::guarded(what, || {
        safe_deserialize(bytes, limit).map_err(|_| FheError::Malformed(what))
    })
}

/// Deserializes untrusted objects: size limit, header check and conformance with the
/// pinned parameters.
pub fn deserialize_conformant<T>(
    bytes: &[u8],
    limit: u64,
    params: &T::ParameterSet,
    what: &'static str,
) -> Result<T, FheError>
where
    T: serde::de::DeserializeOwned + Unversionize + Named + ParameterSetConformant,
{
    if bytes.len() as u64 > limit {
        return Err(FheError::Malformed(what));
    }
    super::guarded(what, || {
        safe_deserialize_conformant(bytes, limit, params).map_err(|_| FheError::Malformed(what))
    })
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, FheError> {
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(FheError::Keys(format!(
            "{}: over its size limit",
            path.display()
        )));
    }
    Ok(bytes)
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), FheError> {
    use crate::private_file::Existing;
    use std::io::Write;
    if private {
        return crate::private_file::write(path, bytes, Existing::Refuse).map_err(|e| io(path, e));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io(path, e))?;
    file.write_all(bytes).map_err(|e| io(path, e))?;
    file.sync_all().map_err(|e| io(path, e))
}

fn io(path: &Path, e: std::io::Error) -> FheError {
    FheError::Keys(format!("{}: {e}", path.display()))
}

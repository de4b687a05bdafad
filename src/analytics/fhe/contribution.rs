//! One contribution: a proven compact ciphertext list holding one unsigned value.
//!
//! The contributor encrypts under the compact public key and proves, with tfhe's
//! zero-knowledge proof, that the list is well formed: each block's plaintext within its
//! range, so the value fits the bit width it declares. The proof's metadata binds it to
//! the aggregate, the contributor and a nonce; the gateway verifies it with the metadata
//! it computes itself, so a list made for another aggregate or by another contributor does
//! not verify. What the proof does not show: that the value is the true amount, or below a
//! business cap narrower than the bit width (the clamp in [`super::fold`] does that).

use super::keyset::{self, PublicMaterial};
use super::params::{self, Sizing};
use super::FheError;
use tfhe::integer::ciphertext::{DataKind, IntegerProvenCompactCiphertextListConformanceParams};
use tfhe::integer::RadixCiphertext;
use tfhe::prelude::CiphertextList;
use tfhe::zk::ZkComputeLoad;
use tfhe::ProvenCompactCiphertextList;

/// Largest serialized contribution: one value of at most 62 bits with its proof is far
/// smaller (README gives measured sizes); the gateway's body limit applies first.
pub const CONTRIBUTION_LIMIT: u64 = 1 << 20;

/// The proof metadata for a contribution: each part length-prefixed, so no choice of ids
/// can make two different triples produce the same bytes.
pub fn metadata(aggregate_id: &str, contributor: &str, nonce: &str) -> Vec<u8> {
    let mut out = b"privgate/fhe-contribution/v1".to_vec();
    for part in [aggregate_id, contributor, nonce] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Encrypts `value` as a `bits`-wide contribution with its proof (the contributor's side:
/// public material only). Refuses a value wider than `bits`.
pub fn encrypt(
    public: &PublicMaterial,
    value: u64,
    bits: u32,
    metadata: &[u8],
) -> Result<Vec<u8>, FheError> {
    let sizing = Sizing::new(bits, 1)?;
    if value > sizing.max_value() {
        return Err(FheError::TooWide(bits));
    }
    encrypt_unchecked(public, value, bits, metadata)
}

/// Encrypts without the width check: for tests and benches that need lists the gateway
/// must refuse.
#[doc(hidden)]
pub fn encrypt_unchecked(
    public: &PublicMaterial,
    value: u64,
    bits: u32,
    metadata: &[u8],
) -> Result<Vec<u8>, FheError> {
    let list = ProvenCompactCiphertextList::builder(&public.public_key)
        .push_with_num_bits(value, bits as usize)
        .map_err(|e| FheError::Invalid(e.to_string()))?
        .build_with_proof_packed(&public.crs, metadata, ZkComputeLoad::Proof)
        .map_err(|e| FheError::Internal(format!("proof: {e}")))?;
    keyset::serialize(&list, CONTRIBUTION_LIMIT)
}

/// Reads an untrusted contribution: size limit, header and conformance with the pinned
/// public-key parameters and this CRS.
pub fn parse(
    bytes: &[u8],
    public: &PublicMaterial,
) -> Result<ProvenCompactCiphertextList, FheError> {
    let conformance = IntegerProvenCompactCiphertextListConformanceParams::from_crs_and_parameters(
        params::pke(),
        &public.crs,
    );
    let list: ProvenCompactCiphertextList =
        keyset::deserialize_conformant(bytes, CONTRIBUTION_LIMIT, &conformance, "contribution")?;
    if list.len() != 1 {
        return Err(FheError::Invalid(
            "a contribution holds exactly one value".into(),
        ));
    }
    Ok(list)
}

/// Checks the width a list declares (before any expansion): one unsigned value of at most
/// the aggregate's bits. The proof binds the declared width to the encrypted blocks.
pub fn check_width(list: &ProvenCompactCiphertextList, sizing: &Sizing) -> Result<(), FheError> {
    let declared = list
        .get_kind_of(0)
        .and_then(params::declared_bits)
        .ok_or_else(|| {
            FheError::Invalid("a contribution is one unsigned value of a supported width".into())
        })?;
    match declared <= sizing.bits {
        true => Ok(()),
        false => Err(FheError::TooWide(sizing.bits)),
    }
}

/// Verifies a contribution's proof against `metadata` without expanding it (what the
/// gateway does before storing it).
pub fn verify(
    list: &ProvenCompactCiphertextList,
    public: &PublicMaterial,
    metadata: &[u8],
) -> Result<(), FheError> {
    super::guarded("contribution", || {
        match list.verify(&public.crs, &public.public_key, metadata) {
            tfhe::zk::ZkVerificationOutcome::Valid => Ok(()),
            tfhe::zk::ZkVerificationOutcome::Invalid => Err(FheError::ProofInvalid),
        }
    })
}

/// Re-randomizes a contribution (`rerand`: seeded from the list and `metadata`)
/// and expands it into radix blocks under the server key (one keyswitch and one bootstrap
/// per block): refuses anything but one unsigned value of at most `sizing.bits`. The proof
/// is checked when the contribution is accepted ([`verify`]), not again here. The calling
/// thread must have the server key set ([`super::compute::FoldKeys::install`]).
pub fn expand(
    list: &ProvenCompactCiphertextList,
    public: &PublicMaterial,
    metadata: &[u8],
    sizing: &Sizing,
) -> Result<RadixCiphertext, FheError> {
    let seed = super::rerand::contribution_seed(list, metadata)?;
    expand_with(list, sizing, Some((&public.public_key, seed)))
}

/// Expands a contribution as it was sent, without re-randomizing it: only for tests and
/// benchmarks that show what re-randomization changes.
#[doc(hidden)]
pub fn expand_as_sent(
    list: &ProvenCompactCiphertextList,
    sizing: &Sizing,
) -> Result<RadixCiphertext, FheError> {
    expand_with(list, sizing, None)
}

fn expand_with(
    list: &ProvenCompactCiphertextList,
    sizing: &Sizing,
    rerand: Option<(
        &tfhe::CompactPublicKey,
        tfhe::integer::ciphertext::ReRandomizationSeed,
    )>,
) -> Result<RadixCiphertext, FheError> {
    super::guarded("contribution", || {
        let expander = match rerand {
            Some((key, seed)) => list.re_randomize_and_expand_without_verification(key, seed),
            None => list.expand_without_verification(),
        }
        .map_err(|_| FheError::Malformed("contribution"))?;
        let value = expander
            .get::<Expanded>(0)
            .map_err(|_| FheError::Invalid("a contribution is one unsigned value".into()))?
            .ok_or(FheError::Malformed("contribution"))?;
        match value.kind {
            DataKind::Unsigned(blocks) if blocks.get() <= sizing.contribution_blocks() => {
                Ok(value.radix)
            }
            DataKind::Unsigned(_) => Err(FheError::TooWide(sizing.bits)),
            _ => Err(FheError::Invalid(
                "a contribution is one unsigned value".into(),
            )),
        }
    })
}

/// An expanded value of any block count (the high-level API's own types have fixed widths;
/// aggregates use the narrowest width they need).
struct Expanded {
    radix: RadixCiphertext,
    kind: DataKind,
    tag: tfhe::Tag,
}

impl tfhe::integer::ciphertext::Expandable for Expanded {
    fn from_expanded_blocks(
        blocks: Vec<tfhe::shortint::Ciphertext>,
        kind: DataKind,
    ) -> tfhe::Result<Self> {
        Ok(Self {
            radix: RadixCiphertext::from(blocks),
            kind,
            tag: tfhe::Tag::default(),
        })
    }
}

impl tfhe::HlExpandable for Expanded {}

impl tfhe::prelude::Tagged for Expanded {
    fn tag(&self) -> &tfhe::Tag {
        &self.tag
    }

    fn tag_mut(&mut self) -> &mut tfhe::Tag {
        &mut self.tag
    }
}

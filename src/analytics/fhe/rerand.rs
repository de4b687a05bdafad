//! Re-randomization of every ciphertext that enters a server-side computation from outside
//! this process, as TFHE-rs requires for security against decryption-oracle attacks
//! (sIND-CPA^D, Bernard et al., "Drifting Towards Better Error Probabilities in Fully
//! Homomorphic Encryption Schemes").
//!
//! TFHE-rs' guidance (its 1.8 rustdoc of `tfhe::ReRandomize`, and "Ciphertexts
//! Rerandomization", <https://docs.zama.ai/tfhe-rs/fhe-computation/advanced-features/rerand>):
//! all encrypted inputs of a computation whose result is decrypted must be re-randomized
//! before it runs; re-randomization adds an encryption of zero under a public key, drawn
//! from a seed hashed from the ciphertexts, metadata tying them to their origin and a
//! description of the computation with a unique nonce.
//!
//! Two kinds of input enter our computations from outside:
//! - a contribution (a proven compact list, chosen by its contributor): its list is
//!   re-randomized under the compact public key it was encrypted with, then expanded
//!   (TFHE-rs' own path for proven lists, `re_randomize_and_expand`); the transcript
//!   binds the list, the aggregate, the contributor and the contribution's single-use
//!   nonce, so each contribution's seed is its own and folding is deterministic;
//! - a stored total (a batch's partial or the running total, read back from the store):
//!   re-randomized under the server key's compact public key derived from the compute
//!   key (TFHE-rs' `DerivedCPKWithoutKeySwitch`), bound to the aggregate and its position.
//!
//! Both inputs are fresh outputs of a bootstrap or an encryption (nominal noise), which is
//! what TFHE-rs' noise analysis of re-randomization assumes (bootstrap or encryption,
//! re-randomize, a dot product within the parameters' noise budget, keyswitch, bootstrap).
//! The total is not re-randomized again before decryption: decryption rounds the noise
//! away and only the plaintext is released; what re-randomization protects is the
//! computation's inputs.

use super::FheError;
use tfhe::integer::ciphertext::{ReRandomizationKey, ReRandomizationSeed};
use tfhe::integer::{CompactPublicKey, RadixCiphertext};
use tfhe::ProvenCompactCiphertextList;

/// Domain separator of privgate's re-randomization seeds.
const SEEDER: [u8; 8] = *b"PGfheRrd";
/// Domain separator of the public-key encryptions of zero (TFHE-rs' own).
const ENCRYPTION: [u8; 8] = *b"TFHE_Enc";

/// The seed that re-randomizes one contribution's list: bound to the list itself and to
/// `metadata` ([`super::contribution::metadata`]: aggregate, contributor and nonce).
pub(crate) fn contribution_seed(
    list: &ProvenCompactCiphertextList,
    metadata: &[u8],
) -> Result<ReRandomizationSeed, FheError> {
    let mut context = tfhe::ReRandomizationContext::new(
        SEEDER,
        [b"privgate/fhe-sum/contribution/v1".as_slice(), metadata],
        ENCRYPTION,
    );
    context.add_ciphertext(list);
    context
        .finalize()
        .next_seed()
        .map_err(|e| FheError::Internal(format!("re-randomization seed: {e}")))
}

/// Re-randomizes a stored total read back for `aggregate`'s computation `purpose`, where
/// it is input number `position`, under the server key's derived compact public key.
/// Refuses a total whose blocks are not fresh (the store keeps only propagated totals).
pub(crate) fn total(
    key: &CompactPublicKey,
    aggregate: &str,
    purpose: &str,
    position: usize,
    total: &mut RadixCiphertext,
) -> Result<(), FheError> {
    let mut description = b"privgate/fhe-sum/total/v1".to_vec();
    for part in [aggregate.as_bytes(), purpose.as_bytes()] {
        description.extend_from_slice(&(part.len() as u32).to_be_bytes());
        description.extend_from_slice(part);
    }
    description.extend_from_slice(&(position as u64).to_be_bytes());
    let mut context = tfhe::integer::ciphertext::ReRandomizationContext::new(
        SEEDER,
        [description.as_slice()],
        ENCRYPTION,
    );
    context.add_ciphertext(total);
    let seed = context
        .finalize()
        .next_seed()
        .map_err(|e| FheError::Internal(format!("re-randomization seed: {e}")))?;
    total
        .re_randomize(
            ReRandomizationKey::DerivedCPKWithoutKeySwitch { cpk: key },
            seed,
        )
        .map_err(|_| FheError::Malformed("encrypted total"))
}

/// The server key's compact public key for re-randomization; refuses a server key made
/// without it (a key set from before re-randomization).
pub(crate) fn derived_key(server: &tfhe::ServerKey) -> Result<CompactPublicKey, FheError> {
    let parts = server.clone().into_raw_parts();
    match parts.6 {
        Some(tfhe::ReRandomizationKey::DerivedCPKWithoutKeySwitch { cpk }) => Ok(cpk),
        _ => Err(FheError::Keys(
            "the server key cannot re-randomize; run `privgate fhe keygen` again".into(),
        )),
    }
}

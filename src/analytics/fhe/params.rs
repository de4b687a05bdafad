//! The TFHE parameters, pinned by their versioned names, and the sizing rules that keep an
//! encrypted total from wrapping.
//!
//! The names are TFHE-rs 1.8's versioned constants, not the unversioned aliases (which move
//! to new values between releases): a key set made today still matches these after an
//! upgrade, and a change of parameters is a visible code change here.
//!
//! Re-randomization (`rerand`) is configured as TFHE-rs 1.8 pairs it with exactly
//! these parameters in its meta parameter set
//! `V1_8_META_PARAM_CPU_2_2_KS_PBS_PKE_TO_SMALL_ZKV2_TUNIFORM_2M128`: a compact public key
//! derived from the compute secret key, so no keyswitch (checked by a test below).

use super::FheError;
use tfhe::shortint::parameters::v1_8::{
    V1_8_PARAM_KEYSWITCH_PKE_TO_SMALL_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128_ZKV2 as CASTING,
    V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128 as COMPUTE,
    V1_8_PARAM_PKE_TO_SMALL_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128_ZKV2 as PKE,
};
use tfhe::shortint::parameters::ReRandomizationParameters;

/// The parameter names, as shown to contributors with the public key; the last names the
/// re-randomization configuration (TFHE-rs' `ReRandomizationParameters` variant).
pub const PARAMETER_NAMES: [&str; 4] = [
    "V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128",
    "V1_8_PARAM_PKE_TO_SMALL_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128_ZKV2",
    "V1_8_PARAM_KEYSWITCH_PKE_TO_SMALL_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128_ZKV2",
    "ReRandomizationParameters::DerivedCPKWithoutKeySwitch",
];

/// Plaintext bits per radix block (message modulus 4).
pub const BITS_PER_BLOCK: u32 = 2;

/// Contribution widths: those whose width a proven list declares in a form the gateway can
/// read before expanding it (TFHE-rs names a type for each). 56 bits (7.2e16 minor units)
/// is more than any single amount needs.
pub const CONTRIBUTION_WIDTHS: [u32; 13] = [2, 4, 6, 8, 10, 12, 14, 16, 24, 32, 40, 48, 56];

/// The proof system's public parameters are made for lists of up to this many bits.
pub const CRS_MAX_BITS: usize = 64;

/// Most contributors an aggregate may be sized for (2^20): with 56-bit values the total
/// still fits 76 bits, decrypted into a `u128`.
pub const MAX_CONTRIBUTORS: u64 = 1 << 20;

/// Widths in which encrypted totals are stored (TFHE-rs' serialisable unsigned types); the
/// accumulator itself computes on only the blocks it needs.
pub const STORAGE_WIDTHS: [u32; 4] = [16, 32, 64, 128];

/// The TFHE-rs configuration: compute parameters plus dedicated compact-public-key and
/// casting parameters (what proven compact lists need), and ciphertext re-randomization
/// with a compact public key derived from the compute key (in the server key).
pub fn config() -> tfhe::Config {
    tfhe::ConfigBuilder::with_custom_parameters(COMPUTE)
        .use_dedicated_compact_public_key_parameters((PKE, CASTING))
        .enable_ciphertext_re_randomization(RE_RANDOMIZATION)
        .build()
}

/// How totals are re-randomized: with the server key's compact public key derived from
/// the compute secret key (no keyswitch).
pub const RE_RANDOMIZATION: ReRandomizationParameters =
    ReRandomizationParameters::DerivedCPKWithoutKeySwitch;

/// The compact public key encryption parameters (for conformance checks).
pub fn pke() -> tfhe::shortint::parameters::CompactPublicKeyEncryptionParameters {
    PKE
}

/// The bits a proven list declares for its value, if it is one unsigned value of a
/// contribution width.
pub fn declared_bits(kind: tfhe::FheTypes) -> Option<u32> {
    use tfhe::FheTypes as T;
    Some(match kind {
        T::Uint2 => 2,
        T::Uint4 => 4,
        T::Uint6 => 6,
        T::Uint8 => 8,
        T::Uint10 => 10,
        T::Uint12 => 12,
        T::Uint14 => 14,
        T::Uint16 => 16,
        T::Uint24 => 24,
        T::Uint32 => 32,
        T::Uint40 => 40,
        T::Uint48 => 48,
        T::Uint56 => 56,
        _ => return None,
    })
}

/// The compute parameters (for conformance checks of totals).
pub fn compute() -> tfhe::shortint::parameters::ClassicPBSParameters {
    COMPUTE
}

/// How an aggregate's encrypted values are laid out, checked when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// Bits of each contribution (what its proof fixes).
    pub bits: u32,
    /// Most contributions the aggregate accepts.
    pub max_contributors: u64,
    /// Bits of the running total: `bits + ceil(log2(max_contributors))`, rounded up to
    /// whole blocks.
    pub accumulator_bits: u32,
}

impl Sizing {
    /// Sizes an aggregate; refuses widths the proof system cannot fix and counts whose
    /// total could wrap.
    pub fn new(bits: u32, max_contributors: u64) -> Result<Self, FheError> {
        if !CONTRIBUTION_WIDTHS.contains(&bits) {
            return Err(FheError::Invalid(format!(
                "bits must be one of {CONTRIBUTION_WIDTHS:?}"
            )));
        }
        if !(1..=MAX_CONTRIBUTORS).contains(&max_contributors) {
            return Err(FheError::Invalid(format!(
                "max_contributors must be from 1 to {MAX_CONTRIBUTORS}"
            )));
        }
        // n values below 2^bits sum below n * 2^bits <= 2^(bits + ceil(log2 n)).
        let growth = u64::BITS - (max_contributors - 1).leading_zeros();
        let accumulator_bits = (bits + growth).div_ceil(BITS_PER_BLOCK) * BITS_PER_BLOCK;
        Ok(Self {
            bits,
            max_contributors,
            accumulator_bits,
        })
    }

    /// Radix blocks of one contribution.
    pub fn contribution_blocks(&self) -> usize {
        (self.bits / BITS_PER_BLOCK) as usize
    }

    /// Radix blocks of the running total.
    pub fn accumulator_blocks(&self) -> usize {
        (self.accumulator_bits / BITS_PER_BLOCK) as usize
    }

    /// Largest value one contribution can carry.
    pub fn max_value(&self) -> u64 {
        (1u64 << self.bits) - 1
    }

    /// Largest total the accumulator must hold, which it holds without wrapping.
    pub fn max_total(&self) -> u128 {
        u128::from(self.max_value()) * u128::from(self.max_contributors)
    }

    /// The width the total is stored in.
    pub fn storage_bits(&self) -> u32 {
        STORAGE_WIDTHS
            .into_iter()
            .find(|w| *w >= self.accumulator_bits)
            .unwrap_or(128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulator_holds_the_largest_total_without_wrapping() {
        // (bits, contributors, accumulator bits)
        let cases = [
            (2, 1, 2),
            (8, 2, 10),
            (8, 3, 10),
            (8, 4, 10),
            (8, 5, 12),
            (16, 1000, 26),
            (32, 1024, 42),
            (32, 1025, 44),
            (56, MAX_CONTRIBUTORS, 76),
        ];
        for (bits, n, expected) in cases {
            let s = Sizing::new(bits, n).unwrap();
            assert_eq!(s.accumulator_bits, expected, "{bits} bits x {n}");
            assert!(s.max_total() < 1u128 << s.accumulator_bits, "{bits} x {n}");
            // One block fewer could wrap (the sizing is tight, not just safe).
            if s.accumulator_bits > bits + BITS_PER_BLOCK {
                let fewer = s.accumulator_bits - BITS_PER_BLOCK;
                assert!(s.max_total() >= 1u128 << fewer, "{bits} x {n} not tight");
            }
            assert!(s.storage_bits() >= s.accumulator_bits);
        }
    }

    #[test]
    fn the_pinned_set_is_tfhe_rs_own_meta_set_with_re_randomization() {
        use tfhe::shortint::parameters::v1_8::meta::cpu::V1_8_META_PARAM_CPU_2_2_KS_PBS_PKE_TO_SMALL_ZKV2_TUNIFORM_2M128 as META;
        use tfhe::shortint::parameters::{AtomicPatternParameters, PBSParameters};
        assert_eq!(
            META.compute_parameters,
            AtomicPatternParameters::Standard(PBSParameters::PBS(COMPUTE))
        );
        let dedicated = META.dedicated_compact_public_key_parameters.unwrap();
        assert_eq!((dedicated.pke_params, dedicated.ksk_params), (PKE, CASTING));
        assert_eq!(META.rerandomization_parameters(), Some(RE_RANDOMIZATION));
    }

    #[test]
    fn widths_the_proof_cannot_fix_are_refused() {
        for bits in [0, 1, 3, 18, 30, 62, 64, 100] {
            assert!(Sizing::new(bits, 10).is_err(), "{bits}");
        }
        assert!(Sizing::new(8, 0).is_err());
        assert!(Sizing::new(8, MAX_CONTRIBUTORS + 1).is_err());
        assert_eq!(Sizing::new(8, 10).unwrap().max_value(), 255);
    }
}

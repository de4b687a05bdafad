//! Encrypted totals: folding contributions with deferred carry propagation, the optional
//! clamp, and the stored form of a total.
//!
//! A radix block holds 2 message bits and 2 carry bits. A fresh (expanded or propagated)
//! block has degree at most 3 and nominal noise; adding another such block needs no
//! bootstrap until the carry space (degree 15) or the noise budget (5 nominal levels for
//! the pinned parameters) would overflow. So the accumulator adds without bootstrapping
//! (`unchecked_add`) while tfhe's own degree and noise bookkeeping says the next addition
//! fits. When it does not, a carry-save round splits every block that holds a carry into
//! its message and its carry (two bootstraps per such block, all in parallel, no carry
//! chain) and adds each carry into the next block: blocks are back to degree 6 and noise
//! 2, room for three more contributions. The value is unchanged modulo 2^(2 x blocks),
//! and the sizing makes the total smaller than that, so dropping the top block's carry
//! loses nothing. Only `finish` propagates carries fully (once per batch). `+` instead
//! propagates fully after every addition. The accumulator has the blocks its sizing needs
//! and no more.

use super::keyset;
use super::params::Sizing;
use super::FheError;
use tfhe::integer::{IntegerCiphertext, RadixCiphertext, ServerKey};
use tfhe::shortint::parameters::Degree;
use tfhe::{FheUint128, FheUint16, FheUint32, FheUint64};

/// Largest stored total (128 bits in blocks of 16 KiB or so, with headroom).
pub const TOTAL_LIMIT: u64 = 8 << 20;

/// A running encrypted total of fixed width.
pub struct Accumulator<'k> {
    key: &'k ServerKey,
    total: RadixCiphertext,
    blocks: usize,
    /// Carry-save rounds and full propagations done (for benchmarks and tests).
    pub rounds: u64,
}

impl<'k> Accumulator<'k> {
    /// A total of zero with `sizing`'s accumulator width.
    pub fn new(key: &'k ServerKey, sizing: &Sizing) -> Self {
        let blocks = sizing.accumulator_blocks();
        Self {
            key,
            total: key.create_trivial_zero_radix(blocks),
            blocks,
            rounds: 0,
        }
    }

    /// Continues from a stored (propagated) total.
    pub fn from_total(
        key: &'k ServerKey,
        sizing: &Sizing,
        total: RadixCiphertext,
    ) -> Result<Self, FheError> {
        let mut acc = Self::new(key, sizing);
        acc.add(total)?;
        Ok(acc)
    }

    /// Adds one value (a contribution or a partial total), with a carry-save round first
    /// only if the addition would not fit the carry or noise budget (and a full
    /// propagation if even that is not enough).
    pub fn add(&mut self, value: RadixCiphertext) -> Result<(), FheError> {
        let value = self.widened(value)?;
        if !fits(&self.total, &value) {
            self.carry_save();
        }
        if !fits(&self.total, &value) {
            self.propagate();
            if !fits(&self.total, &value) {
                return Err(FheError::Internal(
                    "a value does not fit after carry propagation".into(),
                ));
            }
        }
        self.key.unchecked_add_assign(&mut self.total, &value);
        Ok(())
    }

    /// The total with every carry propagated (ready to store, add on, or decrypt).
    pub fn finish(mut self) -> RadixCiphertext {
        self.propagate();
        self.total
    }

    fn propagate(&mut self) {
        self.key.full_propagate_parallelized(&mut self.total);
        self.rounds += 1;
    }

    /// Splits each block holding a carry into message and carry (bootstraps, in
    /// parallel) and adds each carry into the next block; blocks without a carry stay.
    fn carry_save(&mut self) {
        use rayon::prelude::*;
        let key: &tfhe::shortint::ServerKey = self.key.as_ref();
        let blocks = self.total.blocks();
        // A block is split if it holds a carry, or if its noise leaves no room for the
        // carry it may receive.
        let max_noise = super::params::compute().max_noise_level.get();
        let full = |b: &tfhe::shortint::Ciphertext| {
            b.degree.get() >= b.message_modulus.0 || b.noise_level().get() >= max_noise
        };
        let split: Vec<_> = blocks
            .par_iter()
            .enumerate()
            .map(|(i, b)| match full(b) {
                true => {
                    let (message, carry) = rayon::join(
                        || key.message_extract(b),
                        // The top block's carry is beyond the total's width: not computed.
                        || (i + 1 < blocks.len()).then(|| key.carry_extract(b)),
                    );
                    (message, carry)
                }
                false => (b.clone(), None),
            })
            .collect();
        let mut next = Vec::with_capacity(split.len());
        let mut incoming: Option<tfhe::shortint::Ciphertext> = None;
        for (mut message, carry) in split {
            if let Some(c) = incoming.take() {
                key.unchecked_add_assign(&mut message, &c);
            }
            next.push(message);
            incoming = carry;
        }
        self.total = RadixCiphertext::from(next);
        self.rounds += 1;
    }

    /// Extends a narrower value with trivial zero blocks (free: no bootstrap); refuses a
    /// wider one, which the sizing said cannot happen.
    fn widened(&self, mut value: RadixCiphertext) -> Result<RadixCiphertext, FheError> {
        let have = value.blocks().len();
        if have > self.blocks {
            return Err(FheError::Internal(
                "a value wider than the accumulator".into(),
            ));
        }
        self.key
            .extend_radix_with_trivial_zero_blocks_msb_assign(&mut value, self.blocks - have);
        Ok(value)
    }
}

/// Whether adding `value` to `total` without a bootstrap keeps every block within its
/// carry space (degree at most message x carry - 1, so the padding bit stays clear) and
/// its noise within the parameters' budget. tfhe's own `is_add_possible` is stricter: it
/// also leaves room for the carry propagation its checked addition does after each add.
fn fits(total: &RadixCiphertext, value: &RadixCiphertext) -> bool {
    let max_noise = super::params::compute().max_noise_level.get();
    total.blocks().iter().zip(value.blocks()).all(|(a, b)| {
        let max_degree = a.message_modulus.0 * a.carry_modulus.0 - 1;
        a.degree.get() + b.degree.get() <= max_degree
            && a.noise_level().get().saturating_add(b.noise_level().get()) <= max_noise
    })
}

/// Caps a contribution at `cap` homomorphically (`min(value, cap)`: a comparison, so
/// bootstraps on every block; README gives the measured cost).
pub fn clamp(key: &ServerKey, value: &RadixCiphertext, cap: u64) -> RadixCiphertext {
    key.scalar_min_parallelized(value, cap)
}

/// Serializes a propagated total in its storage width (tfhe's safe format). The
/// accumulator's blocks are padded with trivial zeros, and block metadata is set to the
/// conservative bounds the conformance check on the way back expects.
pub fn store_total(
    key: &ServerKey,
    sizing: &Sizing,
    total: &RadixCiphertext,
) -> Result<Vec<u8>, FheError> {
    let mut padded = total.clone();
    let storage_blocks = (sizing.storage_bits() / super::params::BITS_PER_BLOCK) as usize;
    let have = padded.blocks().len();
    key.extend_radix_with_trivial_zero_blocks_msb_assign(
        &mut padded,
        storage_blocks.saturating_sub(have),
    );
    for block in padded.blocks_mut() {
        block.degree = Degree::new(block.message_modulus.0 - 1);
        block.set_noise_level_to_nominal();
    }
    let meta = tfhe::ReRandomizationMetadata::default();
    let tag = tfhe::Tag::default();
    match sizing.storage_bits() {
        16 => keyset::serialize(
            &FheUint16::from_raw_parts(padded, Default::default(), tag, meta),
            TOTAL_LIMIT,
        ),
        32 => keyset::serialize(
            &FheUint32::from_raw_parts(padded, Default::default(), tag, meta),
            TOTAL_LIMIT,
        ),
        64 => keyset::serialize(
            &FheUint64::from_raw_parts(padded, Default::default(), tag, meta),
            TOTAL_LIMIT,
        ),
        _ => keyset::serialize(
            &FheUint128::from_raw_parts(padded, Default::default(), tag, meta),
            TOTAL_LIMIT,
        ),
    }
}

/// Reads a stored total (untrusted bytes: size limit, conformance with the pinned compute
/// parameters) back into the accumulator's width.
pub fn load_total(sizing: &Sizing, bytes: &[u8]) -> Result<RadixCiphertext, FheError> {
    let params = super::params::compute();
    let what = "encrypted total";
    let radix = match sizing.storage_bits() {
        16 => {
            keyset::deserialize_conformant::<FheUint16>(bytes, TOTAL_LIMIT, &params.into(), what)?
                .into_raw_parts()
                .0
        }
        32 => {
            keyset::deserialize_conformant::<FheUint32>(bytes, TOTAL_LIMIT, &params.into(), what)?
                .into_raw_parts()
                .0
        }
        64 => {
            keyset::deserialize_conformant::<FheUint64>(bytes, TOTAL_LIMIT, &params.into(), what)?
                .into_raw_parts()
                .0
        }
        _ => {
            keyset::deserialize_conformant::<FheUint128>(bytes, TOTAL_LIMIT, &params.into(), what)?
                .into_raw_parts()
                .0
        }
    };
    // The blocks above the accumulator were trivial zeros when stored: dropped unread.
    let mut blocks = radix.blocks().to_vec();
    blocks.truncate(sizing.accumulator_blocks());
    Ok(RadixCiphertext::from(blocks))
}

/// Decrypts a propagated total (the key custodian's step).
pub fn decrypt(client: &tfhe::ClientKey, total: &RadixCiphertext) -> u128 {
    let key: &tfhe::integer::ClientKey = client.as_ref();
    key.decrypt_radix::<u128>(total)
}

#[cfg(test)]
mod tests;

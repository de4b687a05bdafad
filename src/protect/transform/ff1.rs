//! FF1 (NIST SP 800-38G) over AES-256 from the `fpe` crate, the cipher behind
//! [`fpe`](super::fpe): built once per value (one AES key schedule however many calls
//! Luhn cycle walking makes) and applied to numerals in place.
//!
//! The crate computes every round on arbitrary-precision numerals, about 5 µs a call, and
//! a card number cycle-walked for Luhn validity needs about ten calls. That cost is
//! accepted rather than running FF1's rounds in our own code: the cipher stays the vetted
//! crate's (the standards' vectors run through it in `tests/vectors.rs`). Reveals avoid it
//! where they can: a masked view that shows only characters FPE keeps in clear needs no
//! decryption at all ([`super::fpe::masked_view`]).

use aes::Aes256;
use fpe::ff1::{FlexibleNumeralString, FF1};

/// A numeral string the cipher refuses (numerals outside the radix, too short a domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refused;

/// FF1 under one key and radix.
pub(super) struct Ff1 {
    cipher: FF1<Aes256>,
}

impl Ff1 {
    /// FF1 with a 32-byte AES-256 key and a radix in 2..=2^16.
    pub(super) fn new(key: &[u8], radix: u32) -> Result<Self, Refused> {
        let cipher = FF1::<Aes256>::new(key, radix).map_err(|_| Refused)?;
        Ok(Self { cipher })
    }

    /// Encrypts `numerals` in place.
    pub(super) fn encrypt(&self, tweak: &[u8], numerals: &mut [u16]) -> Result<(), Refused> {
        in_place(numerals, |input| self.cipher.encrypt(tweak, input))
    }

    /// Decrypts `numerals` in place.
    pub(super) fn decrypt(&self, tweak: &[u8], numerals: &mut [u16]) -> Result<(), Refused> {
        in_place(numerals, |input| self.cipher.decrypt(tweak, input))
    }
}

/// Runs one direction of the cipher on `numerals` and writes its output over them.
fn in_place<E>(
    numerals: &mut [u16],
    cipher: impl FnOnce(&FlexibleNumeralString) -> Result<FlexibleNumeralString, E>,
) -> Result<(), Refused> {
    let output = cipher(&FlexibleNumeralString::from(numerals.to_vec())).map_err(|_| Refused)?;
    numerals.copy_from_slice(&Vec::<u16>::from(output));
    Ok(())
}

//! FF1 (NIST SP 800-38G) over AES-256 from the `fpe` crate, the cipher behind
//! [`fpe`](super::fpe): built once per value (one AES key schedule however many calls
//! Luhn cycle walking makes) and applied to numerals in place.
//!
//! The crate runs FF1's rounds (the PRF, the Feistel structure, S's expansion) on any
//! numeral string that implements its `NumeralString` trait: the integer arithmetic of a
//! round (NUM_radix, STR_radix, addition modulo radix^m). Its own `FlexibleNumeralString`
//! does that arithmetic on heap-allocated big integers. [`Halves`] does the same arithmetic
//! on `u128` whenever both halves' domains fit (radix^⌈n/2⌉ <= 2^120: up to 72 decimal
//! digits or 46 alphanumeric characters), and the crate's big integers serve the rest; the
//! cipher stays the crate's either way. In the `protect_body` benchmark FF1 went from a
//! fifth of protecting the record (about 10 µs for its card number, cycle walking
//! included) to a twentieth (about 2 µs). The standards' vectors run through both, and a
//! test checks the two give the same ciphertexts for every radix class and for lengths
//! across the boundary (`tests/vectors.rs`, `tests::machine_and_big_integer_arithmetic_agree`).
//! Reveals avoid FF1 where they can: a masked view that shows only characters FPE keeps in
//! clear needs no decryption at all ([`super::fpe::masked_view`]).

use aes::cipher::consts::{U16, U32};
use aes::cipher::{
    BlockCipher, BlockClosure, BlockEncrypt, BlockSizeUser, Key, KeyInit, KeySizeUser,
};
use aes::Aes256Enc;
use fpe::ff1::{FlexibleNumeralString, NumeralString, Operations, FF1};
use std::rc::Rc;
use zeroize::Zeroize;

/// AES-256, encryption only (FF1 never decrypts a block), behind a shared pointer. The
/// crate's PRF clones its cipher once per FF1 call and once per round (a CBC-MAC state
/// owns its cipher): with the key schedule held by value those copies were the largest
/// cost of Luhn cycle walking (`memmove` at 8 % of the `protect_body` benchmark). A clone
/// is a reference count, and not an atomic one: an [`Ff1`] lives inside one synchronous
/// call ([`super::fpe`] builds one per value), and a card number's walk clones about 110
/// times, each a locked read-modify-write of a shared counter with `Arc`. The blocks are
/// still encrypted by the `aes` crate.
#[derive(Clone)]
struct SharedAes(Rc<Aes256Enc>);

impl BlockSizeUser for SharedAes {
    type BlockSize = U16;
}

impl BlockCipher for SharedAes {}

impl KeySizeUser for SharedAes {
    type KeySize = U32;
}

impl KeyInit for SharedAes {
    fn new(key: &Key<Self>) -> Self {
        Self(Rc::new(Aes256Enc::new(key)))
    }
}

impl BlockEncrypt for SharedAes {
    fn encrypt_with_backend(&self, f: impl BlockClosure<BlockSize = Self::BlockSize>) {
        self.0.encrypt_with_backend(f)
    }
}

/// A numeral string the cipher refuses (numerals outside the radix, too short a domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refused;

/// FF1 under one key and radix.
pub(super) struct Ff1 {
    cipher: FF1<SharedAes>,
    radix: u32,
}

impl Ff1 {
    /// FF1 with a 32-byte AES-256 key and a radix in 2..=2^16.
    pub(super) fn new(key: &[u8], radix: u32) -> Result<Self, Refused> {
        let cipher = FF1::<SharedAes>::new(key, radix).map_err(|_| Refused)?;
        Ok(Self { cipher, radix })
    }

    /// Encrypts or decrypts `numerals` in place.
    pub(super) fn crypt(
        &self,
        direction: Direction,
        tweak: &[u8],
        numerals: &mut [u16],
    ) -> Result<(), Refused> {
        match Halves::read(numerals, self.radix) {
            Some(halves) => {
                let out = match direction {
                    Direction::Encrypt => self.cipher.encrypt(tweak, &halves),
                    Direction::Decrypt => self.cipher.decrypt(tweak, &halves),
                }
                .map_err(|_| Refused)?;
                out.write(numerals, self.radix);
            }
            None => {
                let input = FlexibleNumeralString::from(numerals.to_vec());
                let out = match direction {
                    Direction::Encrypt => self.cipher.encrypt(tweak, &input),
                    Direction::Decrypt => self.cipher.decrypt(tweak, &input),
                }
                .map_err(|_| Refused)?;
                numerals.copy_from_slice(&Vec::<u16>::from(out));
            }
        }
        Ok(())
    }
}

/// Which way [`Ff1::crypt`] runs the cipher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Encrypt,
    Decrypt,
}

/// The largest half domain [`Half`] takes: adding a byte to a value below it (`acc << 8`
/// in [`Half::reduce`]) and adding two values below it both stay inside `u128`.
const HALF_DOMAIN_MAX: u128 = 1 << 120;

/// A numeral string as FF1's two halves A (the first ⌊n/2⌋ numerals) and B (the rest),
/// each held as its number NUM_radix, when both fit [`HALF_DOMAIN_MAX`].
struct Halves {
    a: Half,
    b: Half,
    /// Whether every numeral was below the radix (the crate refuses the string otherwise).
    valid: bool,
}

/// One half: NUM_radix of its numerals and how many there are. Zeroed on drop (it is the
/// value being encrypted).
struct Half {
    value: u128,
    numerals: usize,
}

impl Drop for Half {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

/// radix^m, if it is at most [`HALF_DOMAIN_MAX`].
fn domain(radix: u32, m: usize) -> Option<u128> {
    let mut domain: u128 = 1;
    for _ in 0..m {
        domain = domain.checked_mul(u128::from(radix))?;
    }
    (domain <= HALF_DOMAIN_MAX).then_some(domain)
}

impl Halves {
    /// The halves of `numerals`, or `None` when the longer half's domain is too large.
    fn read(numerals: &[u16], radix: u32) -> Option<Self> {
        let (a, b) = numerals.split_at(numerals.len() / 2);
        domain(radix, b.len())?;
        let valid = numerals.iter().all(|&n| u32::from(n) < radix);
        let half = |part: &[u16]| Half {
            // An invalid string is refused by the cipher before any arithmetic: its value
            // is never used, and wrapping keeps this from overflowing.
            value: part.iter().fold(0u128, |acc, &n| {
                acc.wrapping_mul(u128::from(radix))
                    .wrapping_add(u128::from(n))
            }),
            numerals: part.len(),
        };
        Some(Self {
            a: half(a),
            b: half(b),
            valid,
        })
    }

    /// Writes the numerals (STR_radix of each half) over `numerals`.
    fn write(&self, numerals: &mut [u16], radix: u32) {
        let (a, b) = numerals.split_at_mut(self.a.numerals);
        self.a.write(a, radix);
        self.b.write(b, radix);
    }
}

impl Half {
    fn write(&self, out: &mut [u16], radix: u32) {
        // Word-sized division where the value allows it (128-bit division is a libcall).
        match u64::try_from(self.value) {
            Ok(mut value) => {
                for numeral in out.iter_mut().rev() {
                    // Below the radix, at most 2^16: the cast keeps every bit.
                    *numeral = (value % u64::from(radix)) as u16;
                    value /= u64::from(radix);
                }
                value.zeroize();
            }
            Err(_) => {
                let mut value = self.value;
                for numeral in out.iter_mut().rev() {
                    *numeral = (value % u128::from(radix)) as u16;
                    value /= u128::from(radix);
                }
                value.zeroize();
            }
        }
    }

    /// The big-endian bytes of `other` as a number, modulo `modulus` (at most
    /// [`HALF_DOMAIN_MAX`]): bytes are shifted in while the accumulator stays below 2^120
    /// and reduced only then, so S's usual 8 to 16 bytes take one or two divisions.
    fn reduce(other: impl Iterator<Item = u8>, modulus: u128) -> u128 {
        other.fold(0u128, |acc, byte| {
            let acc = if acc >= HALF_DOMAIN_MAX {
                acc % modulus
            } else {
                acc
            };
            (acc << 8) | u128::from(byte)
        }) % modulus
    }

    /// The modulus of a result with `m` numerals; `m` is u or v, both within the domain
    /// [`Halves::read`] checked.
    fn modulus(radix: u32, m: usize) -> u128 {
        domain(radix, m).expect("both halves' domains were checked when the string was read")
    }
}

impl NumeralString for Halves {
    type Ops = Half;

    fn is_valid(&self, _radix: u32) -> bool {
        self.valid
    }

    fn numeral_count(&self) -> usize {
        self.a.numerals + self.b.numerals
    }

    fn split(&self) -> (Half, Half) {
        let copy = |h: &Half| Half {
            value: h.value,
            numerals: h.numerals,
        };
        (copy(&self.a), copy(&self.b))
    }

    fn concat(a: Half, b: Half) -> Self {
        Self { a, b, valid: true }
    }
}

/// Big-endian bytes of a half's value, the PRF's input; zeroed on drop.
struct BeBytes {
    bytes: [u8; 16],
    len: usize,
}

impl AsRef<[u8]> for BeBytes {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[16 - self.len..]
    }
}

impl Drop for BeBytes {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl Operations for Half {
    type Bytes = BeBytes;

    fn numeral_count(&self) -> usize {
        self.numerals
    }

    fn to_be_bytes(&self, _radix: u32, b: usize) -> BeBytes {
        // b = ⌈v·log2(radix)/8⌉ bytes, and radix^v <= 2^120: at most 15.
        assert!(b <= 16, "a half of at most 2^120 takes at most 15 bytes");
        BeBytes {
            bytes: self.value.to_be_bytes(),
            len: b,
        }
    }

    fn add_mod_exp(self, other: impl Iterator<Item = u8>, radix: u32, m: usize) -> Self {
        let modulus = Self::modulus(radix, m);
        let y = Self::reduce(other, modulus);
        // A has m numerals (FF1's rounds alternate u and v with A's length): below the
        // modulus, so one conditional subtraction reduces the sum.
        debug_assert!(self.value < modulus);
        let sum = self.value + y;
        Half {
            value: if sum >= modulus { sum - modulus } else { sum },
            numerals: m,
        }
    }

    fn sub_mod_exp(self, other: impl Iterator<Item = u8>, radix: u32, m: usize) -> Self {
        let modulus = Self::modulus(radix, m);
        let y = Self::reduce(other, modulus);
        debug_assert!(self.value < modulus);
        let difference = self.value + modulus - y;
        Half {
            value: if difference >= modulus {
                difference - modulus
            } else {
                difference
            },
            numerals: m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::Aes256;
    use rand::{Rng, SeedableRng};

    /// Every radix class (powers of two, small, decimal, alphanumeric, the largest), at
    /// lengths from the shortest FF1 allows to past the `u128` boundary, with tweaks of
    /// several lengths: the machine arithmetic gives the big integers' ciphertexts, and
    /// decrypts them.
    #[test]
    fn machine_and_big_integer_arithmetic_agree() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x0ff1);
        let mut machine = 0;
        let mut big = 0;
        for radix in [2u32, 3, 7, 10, 16, 26, 36, 62, 255, 256, 1000, 65535, 65536] {
            let mut key = [0u8; 32];
            rng.fill(&mut key);
            let ff1 = Ff1::new(&key, radix).unwrap();
            let reference = FF1::<Aes256>::new(&key, radix).unwrap();
            for n in 2..=(2 * 130 / (32 - radix.leading_zeros()) as usize + 6) {
                for tweak_len in [0, 1, 11, 16, 40] {
                    let tweak: Vec<u8> = (0..tweak_len).map(|_| rng.gen()).collect();
                    let plain: Vec<u16> = (0..n).map(|_| rng.gen_range(0..radix) as u16).collect();
                    let want =
                        reference.encrypt(&tweak, &FlexibleNumeralString::from(plain.clone()));
                    let mut got = plain.clone();
                    let result = ff1.crypt(Direction::Encrypt, &tweak, &mut got);
                    match want {
                        Err(_) => assert_eq!(result, Err(Refused), "radix {radix} n {n}"),
                        Ok(want) => {
                            result.unwrap();
                            assert_eq!(got, Vec::<u16>::from(want), "radix {radix} n {n}");
                            ff1.crypt(Direction::Decrypt, &tweak, &mut got).unwrap();
                            assert_eq!(got, plain, "radix {radix} n {n}");
                        }
                    }
                    if Halves::read(&plain, radix).is_some() {
                        machine += 1;
                    } else {
                        big += 1;
                    }
                }
            }
        }
        assert!(machine > 500 && big > 100, "{machine} machine, {big} big");
    }

    /// `reduce` against Horner's rule reduced at every byte, for S's lengths on both sides
    /// of the point where it starts reducing (15 bytes) and moduli up to 2^120.
    #[test]
    fn reduce_is_the_remainder_of_the_bytes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let moduli = [
            2,
            10,
            1_000,
            1_000_000,
            u128::from(u64::MAX),
            1 << 64,
            1 << 100,
        ]
        .into_iter()
        .chain((1..=36).map(|m| domain(10, m).unwrap()))
        .chain([HALF_DOMAIN_MAX]);
        for modulus in moduli {
            for len in [0, 1, 7, 8, 9, 12, 15, 16, 17, 24, 40] {
                for _ in 0..20 {
                    let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                    let want = bytes
                        .iter()
                        .fold(0u128, |acc, &b| ((acc << 8) | u128::from(b)) % modulus);
                    let got = Half::reduce(bytes.iter().copied(), modulus);
                    assert_eq!(got, want, "modulus {modulus}, {len} bytes");
                }
            }
        }
        assert_eq!(
            Half::reduce([0xff; 8].into_iter(), 1_000),
            u128::from(u64::MAX % 1_000)
        );
    }

    /// Numerals at or above the radix are refused on the machine path as the crate refuses
    /// them, and the values at the extremes of a half's domain survive a round trip.
    #[test]
    fn invalid_numerals_are_refused_and_extremes_round_trip() {
        let ff1 = Ff1::new(&[7; 32], 10).unwrap();
        assert_eq!(
            ff1.crypt(Direction::Encrypt, b"", &mut [1, 2, 3, 10, 5, 6]),
            Err(Refused)
        );
        assert_eq!(
            ff1.crypt(Direction::Decrypt, b"", &mut [1, 2, 3, 4, 5, 60000]),
            Err(Refused)
        );
        assert_eq!(
            ff1.crypt(Direction::Encrypt, b"", &mut [1, 2, 3]),
            Err(Refused),
            "domain too small"
        );
        let wide = Ff1::new(&[9; 32], 65536).unwrap();
        // 2 x 7 numerals of radix 2^16: each half 2^112, near the boundary.
        for fill in [0u16, u16::MAX] {
            let plain = vec![fill; 14];
            let mut value = plain.clone();
            wide.crypt(Direction::Encrypt, b"t", &mut value).unwrap();
            assert_ne!(value, plain);
            wide.crypt(Direction::Decrypt, b"t", &mut value).unwrap();
            assert_eq!(value, plain);
        }
    }
}

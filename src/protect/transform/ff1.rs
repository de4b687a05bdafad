//! FF1 (NIST SP 800-38G) over AES-256, the cipher behind [`fpe`](super::fpe).
//!
//! The `fpe` crate computes every round on arbitrary-precision numerals (about 5 µs a
//! call); a card number's middle, cycle-walked for Luhn validity, takes about ten calls.
//! When each half of the numeral string is below 2^96 (up to 28 decimal digits, 18
//! alphanumerics: every card number, account number and national id), the same rounds
//! here run on `u128`s, the PRF's fixed prefix (P, and the tweak's whole blocks) is
//! encrypted once per call, and a round costs one AES block. Longer strings go to the
//! crate. The outputs are the standard's either way: tests check this implementation on
//! the NIST and Wycheproof vectors and against the crate on random inputs.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes256;
use fpe::ff1::{FlexibleNumeralString, FF1};

/// Halves at or above this go to the crate: below it, the round value `y` needs at most 16
/// bytes (d <= 16), i.e. one AES block and one `u128`.
const NATIVE_LIMIT: u128 = 1 << 96;

/// A numeral string the cipher refuses (numerals outside the radix, too short a domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refused;

/// FF1 under one key and radix.
pub(super) struct Ff1<'k> {
    key: &'k [u8],
    aes: Aes256,
    radix: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Encrypt,
    Decrypt,
}

impl<'k> Ff1<'k> {
    /// FF1 with a 32-byte AES-256 key and a radix in 2..=2^16.
    pub(super) fn new(key: &'k [u8], radix: u32) -> Result<Self, Refused> {
        let aes = Aes256::new_from_slice(key).map_err(|_| Refused)?;
        if !(2..=1 << 16).contains(&radix) {
            return Err(Refused);
        }
        Ok(Self { key, aes, radix })
    }

    /// Encrypts `numerals` in place.
    pub(super) fn encrypt(&self, tweak: &[u8], numerals: &mut [u16]) -> Result<(), Refused> {
        self.run(tweak, numerals, Direction::Encrypt)
    }

    /// Decrypts `numerals` in place.
    pub(super) fn decrypt(&self, tweak: &[u8], numerals: &mut [u16]) -> Result<(), Refused> {
        self.run(tweak, numerals, Direction::Decrypt)
    }

    fn run(&self, tweak: &[u8], x: &mut [u16], direction: Direction) -> Result<(), Refused> {
        if x.iter().any(|&n| u32::from(n) >= self.radix) || !large_enough(self.radix, x.len()) {
            return Err(Refused);
        }
        match self.native(tweak, x, direction) {
            Some(()) => Ok(()),
            None => self.by_crate(tweak, x, direction),
        }
    }

    /// The crate's FF1, for strings whose halves do not fit the native rounds.
    fn by_crate(&self, tweak: &[u8], x: &mut [u16], direction: Direction) -> Result<(), Refused> {
        let ff1 = FF1::<Aes256>::new(self.key, self.radix).map_err(|_| Refused)?;
        let input = FlexibleNumeralString::from(x.to_vec());
        let output = match direction {
            Direction::Encrypt => ff1.encrypt(tweak, &input),
            Direction::Decrypt => ff1.decrypt(tweak, &input),
        }
        .map_err(|_| Refused)?;
        x.copy_from_slice(&Vec::<u16>::from(output));
        Ok(())
    }

    /// SP 800-38G algorithms 7 and 8 on `u128`s; `None` when a half is too large for them.
    fn native(&self, tweak: &[u8], x: &mut [u16], direction: Direction) -> Option<()> {
        let (n, t) = (x.len(), tweak.len());
        let (u, v) = (n / 2, n - n / 2);
        let radix = u128::from(self.radix);
        let modulus_u = radix.checked_pow(u32::try_from(u).ok()?)?;
        let modulus_v = radix.checked_pow(u32::try_from(v).ok()?)?;
        if modulus_v >= NATIVE_LIMIT {
            return None;
        }
        // b = ceil(ceil(v * log2(radix)) / 8): the bits of radix^v - 1 (or exactly
        // v * log2(radix) for a power of two), in bytes.
        let bits = match self.radix.is_power_of_two() {
            true => v * self.radix.trailing_zeros() as usize,
            false => (u128::BITS - modulus_v.leading_zeros()) as usize,
        };
        let b = bits.div_ceil(8);
        let d = 4 * b.div_ceil(4) + 4;
        let mut p = [1, 2, 1, 0, 0, 0, 10, u as u8, 0, 0, 0, 0, 0, 0, 0, 0];
        p[3..6].copy_from_slice(&self.radix.to_be_bytes()[1..]);
        p[8..12].copy_from_slice(&u32::try_from(n).ok()?.to_be_bytes());
        p[12..16].copy_from_slice(&u32::try_from(t).ok()?.to_be_bytes());
        // Q = T || 0^pad || [i] || [NUM(B)]^b, a whole number of blocks; every block but
        // the last is the same in every round, so CBC-MAC runs over them once.
        let q_len = (t + b + 1).div_ceil(16) * 16;
        let mut q = vec![0u8; q_len];
        q[..t].copy_from_slice(tweak);
        let mut prefix = p;
        self.encrypt_block(&mut prefix);
        for block in q[..q_len - 16].chunks_exact(16) {
            xor_into(&mut prefix, block);
            self.encrypt_block(&mut prefix);
        }
        let mut last = [0u8; 16];
        last.copy_from_slice(&q[q_len - 16..]);
        let (mut a, mut bb) = (num(radix, &x[..u]), num(radix, &x[u..]));
        for round in 0..10u8 {
            let i = match direction {
                Direction::Encrypt => round,
                Direction::Decrypt => 9 - round,
            };
            let modulus = if i % 2 == 0 { modulus_u } else { modulus_v };
            let input = match direction {
                Direction::Encrypt => bb,
                Direction::Decrypt => a,
            };
            last[15 - b] = i;
            last[16 - b..].copy_from_slice(&input.to_be_bytes()[16 - b..]);
            let mut r = prefix;
            xor_into(&mut r, &last);
            self.encrypt_block(&mut r);
            // S is R's first d bytes (d <= 16: no further blocks); y = NUM(S).
            let y = (u128::from_be_bytes(r) >> (8 * (16 - d))) % modulus;
            match direction {
                Direction::Encrypt => {
                    let c = (a + y) % modulus;
                    (a, bb) = (bb, c);
                }
                Direction::Decrypt => {
                    let c = (bb + modulus - y) % modulus;
                    (a, bb) = (c, a);
                }
            }
        }
        write_numerals(radix, a, &mut x[..u]);
        write_numerals(radix, bb, &mut x[u..]);
        Some(())
    }

    fn encrypt_block(&self, block: &mut [u8; 16]) {
        self.aes
            .encrypt_block(GenericArray::from_mut_slice(block.as_mut_slice()));
    }
}

/// The crate's (and SP 800-38G rev. 1's) domain bound: radix^len >= 10^6.
fn large_enough(radix: u32, len: usize) -> bool {
    super::fpe::domain_is_large_enough(radix, len)
}

fn xor_into(block: &mut [u8; 16], other: &[u8]) {
    for (a, b) in block.iter_mut().zip(other) {
        *a ^= b;
    }
}

/// NUM_radix: the numerals as a number, most significant first.
fn num(radix: u128, numerals: &[u16]) -> u128 {
    numerals
        .iter()
        .fold(0, |acc, &n| acc * radix + u128::from(n))
}

/// STR_m_radix: `value` as `out.len()` numerals, most significant first.
fn write_numerals(radix: u128, mut value: u128, out: &mut [u16]) {
    for numeral in out.iter_mut().rev() {
        *numeral = (value % radix) as u16;
        value /= radix;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn by_crate(key: &[u8], radix: u32, tweak: &[u8], x: &[u16], encrypt: bool) -> Vec<u16> {
        let ff1 = FF1::<Aes256>::new(key, radix).unwrap();
        let input = FlexibleNumeralString::from(x.to_vec());
        let out = match encrypt {
            true => ff1.encrypt(tweak, &input),
            false => ff1.decrypt(tweak, &input),
        };
        Vec::<u16>::from(out.unwrap())
    }

    fn numerals(radix: u32) -> impl Strategy<Value = Vec<u16>> {
        // Lengths on both sides of the native limit (28 digits, 18 alphanumerics).
        proptest::collection::vec(0..radix as u16, 6..40)
            .prop_filter("domain", move |x| large_enough(radix, x.len()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Native rounds give the crate's output, both ways, for every length and tweak.
        #[test]
        fn matches_the_crate(
            key in proptest::array::uniform32(any::<u8>()),
            radix in prop_oneof![Just(10u32), Just(36u32), Just(16u32), Just(2u32), Just(1000u32)],
            tweak in proptest::collection::vec(any::<u8>(), 0..40),
            seed in proptest::collection::vec(any::<u16>(), 2..60),
        ) {
            let x: Vec<u16> = seed.iter().map(|n| n % radix as u16).collect();
            prop_assume!(large_enough(radix, x.len()));
            let ff1 = Ff1::new(&key, radix).unwrap();
            let mut out = x.clone();
            ff1.encrypt(&tweak, &mut out).unwrap();
            prop_assert_eq!(&out, &by_crate(&key, radix, &tweak, &x, true));
            let mut back = x.clone();
            ff1.decrypt(&tweak, &mut back).unwrap();
            prop_assert_eq!(&back, &by_crate(&key, radix, &tweak, &x, false));
        }

        #[test]
        fn round_trips(key in proptest::array::uniform32(any::<u8>()), x in numerals(10)) {
            let ff1 = Ff1::new(&key, 10).unwrap();
            let mut y = x.clone();
            ff1.encrypt(b"pan", &mut y).unwrap();
            ff1.decrypt(b"pan", &mut y).unwrap();
            prop_assert_eq!(y, x);
        }
    }

    #[test]
    fn every_length_matches_the_crate_on_a_fixed_input() {
        let key = [7u8; 32];
        for radix in [10u32, 36] {
            for n in 2..48 {
                if !large_enough(radix, n) {
                    continue;
                }
                let x: Vec<u16> = (0..n)
                    .map(|i| ((i * 7 + 3) as u32 % radix) as u16)
                    .collect();
                let mut out = x.clone();
                Ff1::new(&key, radix)
                    .unwrap()
                    .encrypt(b"class", &mut out)
                    .unwrap();
                assert_eq!(
                    out,
                    by_crate(&key, radix, b"class", &x, true),
                    "{radix} {n}"
                );
            }
        }
    }

    #[test]
    fn refuses_what_the_crate_refuses() {
        let ff1 = Ff1::new(&[0; 32], 10).unwrap();
        assert_eq!(ff1.encrypt(b"", &mut [1, 2, 3, 4, 5]), Err(Refused));
        assert_eq!(ff1.encrypt(b"", &mut [1, 2, 3, 4, 5, 10]), Err(Refused));
        assert!(Ff1::new(&[0; 31], 10).is_err());
        assert!(Ff1::new(&[0; 32], 1).is_err());
    }
}

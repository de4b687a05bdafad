//! Format-preserving encryption: FF1 (NIST SP 800-38G) over AES-256 from the `fpe` crate
//! (`ff1`).
//!
//! The input is a JSON string. Its alphabet characters ([`Alphabet`]) are numerals; the
//! first `keep_prefix` and last `keep_suffix` of them stay in clear and the rest are
//! encrypted as one FF1 numeral string; [`SEPARATORS`] stay where they are; any other
//! character is refused (fail closed rather than leave unknown characters in clear). The
//! output is a JSON string of the same length and layout. JSON numbers are refused: an
//! encrypted digit string may start with 0, which a JSON number cannot.
//!
//! Tweak: the field class name, so equal values of two classes encrypt differently. The
//! subject is not in the tweak (FPE values are meant to be joinable within a class).
//!
//! Luhn (`luhn = true`, digits only): cycle walking. Let V be the set of middles m for which
//! prefix‖m‖suffix passes the Luhn check. Encryption applies FF1 E repeatedly, starting
//! from the input middle, until the result is in V iff the input was in V; decryption
//! applies D repeatedly until the result is in V iff the ciphertext is. Because E is a
//! permutation of a finite set, the orbit of m comes back to m, so the walk ends; the map
//! sends each element of V to the next element of V along its cycle (and each element
//! outside V to the next one outside V), and D walks the same cycle backwards to the
//! previous one: the restriction is a bijection on V and on its complement, and decryption
//! is its inverse. A valid PAN therefore encrypts to a valid PAN; about 10 FF1 calls are
//! needed on average (one middle in ten completes a valid number).
//!
//! Hides: the encrypted characters. Does NOT hide: the length, the layout (separators), the
//! kept prefix and suffix, equality (deterministic). There is no key version and no
//! integrity in the output: a corrupted value decrypts to a wrong value without error, and
//! rotating an FPE key needs the old version to decrypt stored values.

use super::ff1::{Direction, Ff1};
use super::spec::{Alphabet, FpeSpec, MaskSpec};
use super::{json_string, luhn, mask, require_kind, to_json_string, Binding, TransformError};
use crate::keys::{DataKey, KeyKind};
use zeroize::Zeroizing;

/// Characters left in place (not encrypted, not counted in the length).
pub const SEPARATORS: [char; 4] = [' ', '-', '.', '/'];

/// The smallest FF1 domain SP 800-38G (rev. 1) allows: radix^length >= 10^6.
pub const MIN_DOMAIN: u64 = 1_000_000;

/// Whether `radix^len` reaches [`MIN_DOMAIN`].
pub fn domain_is_large_enough(radix: u32, len: usize) -> bool {
    let mut domain = 1u64;
    for _ in 0..len {
        domain = domain.saturating_mul(u64::from(radix));
        if domain >= MIN_DOMAIN {
            return true;
        }
    }
    false
}

/// Encrypts one JSON string as `spec` says; the output is a JSON string.
pub fn encrypt(
    key: &DataKey,
    binding: &Binding,
    spec: &FpeSpec,
    json: &str,
) -> Result<String, TransformError> {
    run(key, binding, spec, json, Direction::Encrypt)
}

/// Decrypts an output of [`encrypt`] (a wrong or corrupted value gives a wrong value).
pub fn decrypt(
    key: &DataKey,
    binding: &Binding,
    spec: &FpeSpec,
    json: &str,
) -> Result<String, TransformError> {
    run(key, binding, spec, json, Direction::Decrypt)
}

fn run(
    key: &DataKey,
    binding: &Binding,
    spec: &FpeSpec,
    json: &str,
    direction: Direction,
) -> Result<String, TransformError> {
    let mut value = read(key, binding, spec, json)?;
    value.crypt(key, binding, spec, direction)?;
    Ok(to_json_string(&value.text(spec.alphabet)))
}

/// The masked view of an FPE value: `mask` applied to its decryption, byte for byte. When
/// the mask shows none of the encrypted characters (a card number masked to its last four,
/// FPE keeping the last four in clear), no FF1 runs: the characters the mask shows
/// (separators, the kept prefix and suffix) are the same in the value and in its
/// decryption, and so is which characters are maskable (alphabet characters are letters or
/// digits, separators are not). Refuses exactly what [`decrypt`] refuses.
pub fn masked_view(
    key: &DataKey,
    binding: &Binding,
    spec: &FpeSpec,
    mask: &MaskSpec,
    json: &str,
) -> Result<String, TransformError> {
    let mut value = read(key, binding, spec, json)?;
    let mut encrypted = vec![false; value.chars.len()];
    for &at in value.encrypted_positions(spec) {
        encrypted[at] = true;
    }
    let text = value.text(spec.alphabet);
    let shows_encrypted = mask::shown(mask, &text)
        .zip(&encrypted)
        .any(|(shown, &encrypted)| shown && encrypted);
    if !shows_encrypted {
        return Ok(to_json_string(&mask::mask_text(mask, &text)));
    }
    value.crypt(key, binding, spec, Direction::Decrypt)?;
    Ok(to_json_string(&mask::mask_text(
        mask,
        &value.text(spec.alphabet),
    )))
}

/// A JSON string read for FF1: its characters, and where its alphabet characters are with
/// their numerals. Zeroized on drop.
struct Numerals {
    chars: Zeroizing<Vec<char>>,
    positions: Vec<usize>,
    numerals: Zeroizing<Vec<u16>>,
}

/// Reads a value as `spec` says and checks its domain and key. The cipher is made only
/// where it runs ([`Numerals::crypt`]): a masked view showing only what FPE keeps in clear
/// needs no AES key schedule either.
fn read(
    key: &DataKey,
    binding: &Binding,
    spec: &FpeSpec,
    json: &str,
) -> Result<Numerals, TransformError> {
    require_kind(key, KeyKind::Ff1)?;
    let text = Zeroizing::new(json_string(json, "fpe", binding)?);
    let chars = Zeroizing::new(text.chars().collect::<Vec<char>>());
    let (positions, numerals) = numerals_of(&chars, spec.alphabet, binding)?;
    let n = numerals.len();
    let kept = spec.keep_prefix + spec.keep_suffix;
    if n < spec.min_length || n < kept || !domain_is_large_enough(spec.alphabet.radix(), n - kept) {
        return Err(outside(binding));
    }
    Ok(Numerals {
        chars,
        positions,
        numerals,
    })
}

impl Numerals {
    /// Encrypts or decrypts the middle numerals in place (cycle walking for Luhn).
    fn crypt(
        &mut self,
        key: &DataKey,
        binding: &Binding,
        spec: &FpeSpec,
        direction: Direction,
    ) -> Result<(), TransformError> {
        // Every alphabet's radix is one FF1 takes, and the key's kind was checked when the
        // value was read: the refusal here is for completeness, not a case that occurs.
        let ff1 = Ff1::new(key.secret(), spec.alphabet.radix()).map_err(|_| outside(binding))?;
        let n = self.numerals.len();
        let tweak = binding.class.as_bytes();
        let luhn = spec.luhn && spec.alphabet == Alphabet::Digits;
        let was_valid = luhn && luhn::is_valid(&self.numerals);
        let middle = spec.keep_prefix..n - spec.keep_suffix;
        loop {
            ff1.crypt(direction, tweak, &mut self.numerals[middle.clone()])
                .map_err(|_| outside(binding))?;
            // Cycle walking (module doc): stop once Luhn validity matches the input's.
            if !luhn || luhn::is_valid(&self.numerals) == was_valid {
                return Ok(());
            }
        }
    }

    /// Where the characters FF1 encrypts are (the alphabet characters between the kept
    /// prefix and suffix).
    fn encrypted_positions(&self, spec: &FpeSpec) -> &[usize] {
        &self.positions[spec.keep_prefix..self.positions.len() - spec.keep_suffix]
    }

    /// The characters with every alphabet character written from its numeral (letters
    /// upper-cased), separators as they were.
    fn text(&mut self, alphabet: Alphabet) -> Zeroizing<String> {
        for (&at, &numeral) in self.positions.iter().zip(self.numerals.iter()) {
            self.chars[at] = alphabet.character(numeral);
        }
        Zeroizing::new(self.chars.iter().collect())
    }
}

fn outside(binding: &Binding) -> TransformError {
    TransformError::OutsideDomain {
        class: binding.class.to_owned(),
    }
}

/// The alphabet characters' positions and numerals; separators are skipped, anything else
/// is refused.
fn numerals_of(
    chars: &[char],
    alphabet: Alphabet,
    binding: &Binding,
) -> Result<(Vec<usize>, Zeroizing<Vec<u16>>), TransformError> {
    let mut positions = Vec::with_capacity(chars.len());
    let mut numerals = Zeroizing::new(Vec::with_capacity(chars.len()));
    for (at, &c) in chars.iter().enumerate() {
        if let Some(numeral) = alphabet.numeral(c) {
            positions.push(at);
            numerals.push(numeral);
        } else if !SEPARATORS.contains(&c) {
            let accepts = match alphabet {
                Alphabet::Digits => "strings of digits and separators",
                Alphabet::Alphanumeric => "strings of letters, digits and separators",
            };
            return Err(super::input_type("fpe", binding, accepts));
        }
    }
    Ok((positions, numerals))
}

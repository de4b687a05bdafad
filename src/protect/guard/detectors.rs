//! The detectors: each finds byte spans of one kind of personal data in a text.
//!
//! - `card`: runs of 13–19 decimal digits of any script (single spaces or dashes between digits allowed) that
//!   pass the Luhn check and start with 2–6 (Mastercard 2/5, Amex 3, Visa 4, Discover 6).
//!   The first-digit rule drops millisecond timestamps and most internal ids, one in ten of
//!   which passes Luhn; UATP (1) and some private-label cards are not detected. A run longer
//!   than 19 digits is not a card (a card glued to more digit groups is missed).
//! - `iban`: two letters, two check digits, then 11–30 letters or digits (single spaces
//!   allowed), validated by `iban_validate` (country length and ISO 13616 mod-97). A false
//!   positive needs a real country code, its exact length and a 1-in-97 checksum.
//! - `email`: `local@domain.tld` with a letters-only TLD of 2+ characters.
//! - `phone`: E.164-like: `+`, a non-zero digit, then 6–14 more digits with single spaces,
//!   dots, dashes or parentheses between them (7–15 digits in all, not followed by another
//!   digit). Requiring the `+` keeps order numbers and amounts from matching, at the price
//!   of missing national-format numbers (`020 7946 0958`); add a custom regex where those
//!   matter.
//! - custom: a named regex from the guard config (matches as the regex says).

use super::Builtin;
use crate::protect::transform::luhn;
use regex::Regex;
use std::ops::Range;
use std::sync::LazyLock;

static DIGIT_RUN: LazyLock<Regex> = LazyLock::new(|| pattern(r"\d(?:[ \-]?\d)+"));
static IBAN: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"(?i)\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b"));
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"(?i)\b[A-Z0-9._%+\-]+@[A-Z0-9\-]+(?:\.[A-Z0-9\-]+)*\.[A-Z]{2,}\b"));
static PHONE: LazyLock<Regex> = LazyLock::new(|| pattern(r"\+[1-9](?:[ .\-()]{0,2}\d){6,14}"));

fn pattern(source: &str) -> Regex {
    Regex::new(source).expect("built-in detector patterns are valid")
}

/// What a built-in detector cannot match without, read in one pass over a text so that
/// every detector can skip a text that lacks its own (most member names and values of a
/// body hold no digit, `@` or `+`, and most numbers and dates too few digits) before
/// running its pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Marks {
    /// Any byte outside ASCII: digits of other scripts (`\d` is Unicode) may be there.
    non_ascii: bool,
    ascii_digits: usize,
    at: bool,
    plus: bool,
    len: usize,
}

/// The fewest digits a card number has (13, see the module doc), a phone number has (7),
/// and the fewest characters an IBAN is written in (15, Norway's, no spaces).
const CARD_DIGITS: usize = 13;
const PHONE_DIGITS: usize = 7;
const IBAN_CHARACTERS: usize = 15;

impl Marks {
    pub(super) fn of(text: &str) -> Self {
        // Every member name and leaf outside covered locations is read here, most of them
        // a few bytes long: eight bytes at a time in a machine word, the tail zero-padded
        // (a zero byte is none of the marks).
        let (words, tail) = text.as_bytes().as_chunks::<8>();
        let mut marks = WordMarks::default();
        for word in words {
            marks.add(u64::from_le_bytes(*word));
        }
        // The tail in a word's low bytes, in the order `from_le_bytes` reads (a loop of at
        // most seven steps, where a copy into a padded word was a call to `memcpy`).
        marks.add(
            tail.iter()
                .rev()
                .fold(0, |word, &b| word << 8 | u64::from(b)),
        );
        Self {
            non_ascii: marks.high != 0,
            ascii_digits: marks.digits,
            at: marks.at != 0,
            plus: marks.plus != 0,
            len: text.len(),
        }
    }

    /// Marks that admit every detector (what a text would have if the marks were not
    /// read): the reference the skipping is tested against.
    #[cfg(test)]
    pub(super) fn admitting_all() -> Self {
        Self {
            non_ascii: true,
            ascii_digits: usize::MAX,
            at: true,
            plus: true,
            len: usize::MAX,
        }
    }

    /// Whether no built-in detector can match a text with these marks: an ASCII text with
    /// fewer than two digits and no `@` or `+` (most member names and values), told in one
    /// test where asking [`admit`](Self::admit) of each detector is a loop.
    pub(super) fn admit_no_builtin(self) -> bool {
        !self.non_ascii && self.ascii_digits < 2 && !self.at && !self.plus
    }

    /// Whether a text with these marks can hold a match of `detector`: a card number needs
    /// 13 digits (of any script: a text outside ASCII is always searched), an IBAN 15 ASCII
    /// characters with its 2 check digits, an email `@`, a phone number `+` and 7 digits.
    pub(super) fn admit(self, detector: Builtin) -> bool {
        match detector {
            Builtin::Card => self.non_ascii || self.ascii_digits >= CARD_DIGITS,
            Builtin::Iban => self.ascii_digits >= 2 && self.len >= IBAN_CHARACTERS,
            Builtin::Email => self.at,
            Builtin::Phone => self.plus && (self.non_ascii || self.ascii_digits >= PHONE_DIGITS),
        }
    }
}

/// The marks of eight bytes at a time (SWAR: each byte a lane of a `u64`): a lane's top
/// bit says what the lane holds, and no lane's arithmetic carries into the next.
#[derive(Default)]
struct WordMarks {
    digits: usize,
    /// Each nonzero when some byte was `@`, `+`, or outside ASCII.
    at: u64,
    plus: u64,
    high: u64,
}

const LANES_01: u64 = u64::from_le_bytes([0x01; 8]);
const LANES_80: u64 = u64::from_le_bytes([0x80; 8]);

impl WordMarks {
    fn add(&mut self, word: u64) {
        self.high |= word & LANES_80;
        // The low seven bits of each byte, with the top bit set: subtracting a value up to
        // 0x7f from a lane leaves its top bit set exactly when the lane was not below it,
        // and never borrows from the next lane.
        let low = (word & !LANES_80) | LANES_80;
        let at_least_0 = low.wrapping_sub(LANES_01 * u64::from(b'0'));
        let above_9 = low.wrapping_sub(LANES_01 * u64::from(b'9' + 1));
        // An ASCII digit: a byte below 0x80 (top bit clear) whose low bits are '0'..='9'.
        let digits = at_least_0 & !above_9 & !word & LANES_80;
        // Each digit lane's top bit moved to its low bit, the lanes summed into the top
        // byte by one multiplication (at most 8: no lane carries), where `count_ones` is a
        // dozen instructions on CPUs this is built for (no POPCNT in the x86-64 baseline).
        self.digits += ((digits >> 7).wrapping_mul(LANES_01) >> 56) as usize;
        self.at |= lanes_equal(word, b'@');
        self.plus |= lanes_equal(word, b'+');
    }
}

/// The top bit of each lane of `word` that is the byte `byte` (an ASCII byte), none else.
fn lanes_equal(word: u64, byte: u8) -> u64 {
    // A lane is zero after the XOR exactly where it was `byte`; on the low seven bits,
    // adding 0x7f carries into the top bit exactly when they are not all zero.
    let x = word ^ (LANES_01 * u64::from(byte));
    let nonzero_low = (x & !LANES_80).wrapping_add(LANES_01 * 0x7f);
    !(nonzero_low | x) & LANES_80
}

/// Spans of Luhn-valid card numbers in `text`, in any script's decimal digits: Java's
/// `Integer.parseInt`, .NET's `char.GetNumericValue` and Python's `int()` read `４１１１…`
/// (fullwidth) and `٤١١١…` (Arabic-Indic) as the number, so an upstream may too.
pub(super) fn cards(text: &str, marks: Marks) -> Vec<Range<usize>> {
    // An ASCII text with fewer ASCII digits than the shortest card holds none: no regex
    // search.
    if !marks.admit(Builtin::Card) {
        return Vec::new();
    }
    DIGIT_RUN
        .find_iter(text)
        .filter(|m| is_card_number(m.as_str().chars().filter_map(decimal_value)))
        .map(|m| m.range())
        .collect()
}

/// Whether the digits (values 0–9) are 13–19 long, start with 2–6 and pass Luhn.
pub(super) fn is_card_number(digits: impl Iterator<Item = u8>) -> bool {
    let digits: Vec<u8> = digits.collect();
    (13..=19).contains(&digits.len()) && (2..=6).contains(&digits[0]) && luhn::is_valid(&digits)
}

/// A decimal digit's value, in any script (`\d`, Unicode `Nd`); `None` for anything else.
/// Unicode encodes every script's decimal digits as runs of ten, 0 to 9 in order, and where
/// runs adjoin (the mathematical digits, U+1D7CE–U+1D7FF) each still starts at a 0 (its
/// stability policy for `Numeric_Type=Decimal`): a digit's value is its distance from the
/// first digit of its block of adjacent digits, modulo ten.
pub(super) fn decimal_value(c: char) -> Option<u8> {
    if let Some(value) = c.to_digit(10) {
        return u8::try_from(value).ok();
    }
    if !is_decimal_digit(c) {
        return None;
    }
    let mut first = u32::from(c);
    while let Some(before) = first.checked_sub(1).and_then(char::from_u32) {
        if !is_decimal_digit(before) {
            break;
        }
        first -= 1;
    }
    u8::try_from((u32::from(c) - first) % 10).ok()
}

fn is_decimal_digit(c: char) -> bool {
    static DECIMAL: LazyLock<Regex> = LazyLock::new(|| pattern(r"\A\p{Nd}\z"));
    let mut buf = [0; 4];
    DECIMAL.is_match(c.encode_utf8(&mut buf))
}

/// Spans of valid IBANs in `text`. The pattern can run into a following word ("... 00
/// and"), so the longest prefix that validates is taken.
pub(super) fn ibans(text: &str, marks: Marks) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    if !marks.admit(Builtin::Iban) {
        return found;
    }
    for m in IBAN.find_iter(text) {
        let chars: Vec<(usize, char)> = m
            .as_str()
            .char_indices()
            .filter(|(_, c)| *c != ' ')
            .map(|(at, c)| (m.start() + at, c.to_ascii_uppercase()))
            .collect();
        let compact: String = chars.iter().map(|(_, c)| c).collect();
        let valid = (15..=compact.len().min(34))
            .rev()
            .find(|&len| compact[..len].parse::<iban::Iban>().is_ok());
        if let Some(len) = valid {
            let (last_at, last) = chars[len - 1];
            found.push(chars[0].0..last_at + last.len_utf8());
        }
    }
    found
}

/// Spans of email addresses.
pub(super) fn emails(text: &str, marks: Marks) -> Vec<Range<usize>> {
    if !marks.admit(Builtin::Email) {
        return Vec::new();
    }
    EMAIL.find_iter(text).map(|m| m.range()).collect()
}

/// Spans of `+`-prefixed international phone numbers.
pub(super) fn phones(text: &str, marks: Marks) -> Vec<Range<usize>> {
    if !marks.admit(Builtin::Phone) {
        return Vec::new();
    }
    PHONE
        .find_iter(text)
        .filter(|m| !text[m.end()..].starts_with(|c: char| c.is_ascii_digit()))
        .map(|m| m.range())
        .collect()
}

/// Spans of a custom regex.
pub(super) fn custom(regex: &Regex, text: &str) -> Vec<Range<usize>> {
    regex.find_iter(text).map(|m| m.range()).collect()
}

#[cfg(test)]
mod tests {
    use super::{Builtin, Marks};

    /// The marks as a match per byte reads them: what the branch-free pass must give.
    fn marks_byte_by_byte(text: &str) -> Marks {
        let mut marks = Marks {
            non_ascii: false,
            ascii_digits: 0,
            at: false,
            plus: false,
            len: text.len(),
        };
        for b in text.bytes() {
            match b {
                b'0'..=b'9' => marks.ascii_digits += 1,
                b'@' => marks.at = true,
                b'+' => marks.plus = true,
                0x80.. => marks.non_ascii = true,
                _ => {}
            }
        }
        marks
    }

    proptest::proptest! {
        /// Any text, short (a member name) or long (past a word's or a vector's width),
        /// in any script: digits, `@` and `+` in every lane of a word and beside bytes
        /// outside ASCII (whose low bits can look like a digit's), every length around a
        /// word's.
        #[test]
        fn marks_are_what_a_match_per_byte_reads(
            text in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[0-9+@a-z٤４ -]{0,80}",
                "[/0-9:@+?*a-zA-Z]{0,40}",
                "[0-9+@\\u{80}-\\u{7ff}\\u{fe0f}\\u{1f600}]{0,24}",
            ]
        ) {
            proptest::prop_assert_eq!(Marks::of(&text), marks_byte_by_byte(&text));
        }
    }

    /// Marks that admit no built-in detector as a whole admit none of them one by one:
    /// every combination of the marks around every threshold.
    #[test]
    fn admitting_no_builtin_admits_none_of_them() {
        let builtins = [Builtin::Card, Builtin::Iban, Builtin::Email, Builtin::Phone];
        let mut passed_over = 0;
        for non_ascii in [false, true] {
            for at in [false, true] {
                for plus in [false, true] {
                    for ascii_digits in 0..=20 {
                        for len in ascii_digits..=40 {
                            let marks = Marks {
                                non_ascii,
                                ascii_digits,
                                at,
                                plus,
                                len,
                            };
                            if marks.admit_no_builtin() {
                                passed_over += 1;
                                for builtin in builtins {
                                    assert!(!marks.admit(builtin), "{builtin:?} {marks:?}");
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(passed_over > 0);
    }
}

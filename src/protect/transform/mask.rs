//! Masking: keep the first and last N maskable characters, replace the others.
//!
//! Rule: with `keep_separators` (the default) a character is maskable when it is a letter
//! or digit; every other character (space, `-`, `.`, `@`, `+`, `/`, ...) stays in place and
//! does not count towards `keep_first`/`keep_last`, so `4111 1111 1111 1111` with
//! `keep_last = 4` shows `**** **** **** 1111` and `jane.doe@example.com` with
//! `keep_first = 1` shows `j***.***@*******.***`. Without it every character is maskable.
//! If `keep_first + keep_last` would keep every maskable character, nothing is kept (fail
//! closed: a mask never shows a whole value). Strings and numbers are accepted; a number
//! becomes a masked string of its JSON text; `null` stays `null`.
//!
//! Hides: the masked characters. Does NOT hide: the kept characters, the length, the
//! separators' layout (with `keep_separators`), so a mask is a view, not protection at rest
//! for high-value data unless little is kept.

use super::spec::MaskSpec;
use super::{
    escaped_in_json, input_type, to_json_string, unescaped_string, Binding, TransformError,
};
use serde_json::Value;

/// Masks one JSON string or number; the output is a JSON string (or `null`).
pub fn mask(spec: &MaskSpec, binding: &Binding, json: &str) -> Result<String, TransformError> {
    // Most values are strings with nothing escaped: masked in place of a parse, a decoded
    // copy and an escaping pass (a revealed record masks ten of them). The masked text
    // holds only the string's own characters and the mask character, none of which JSON
    // escapes, so in quotes it is exactly what serde_json would write (a proptest checks).
    if let Some(text) = unescaped_string(json).filter(|_| !escaped_in_json(spec.mask_char)) {
        return Ok(masked(spec, text, "\""));
    }
    mask_parsed(spec, binding, json)
}

/// Whether [`mask`] takes `json` (a string, a number or `null`), without masking it: field
/// protection checks that every value it stores can be shown masked, and masking each
/// only to drop the result was a twentieth of protecting a record. Refuses exactly what
/// [`mask`] refuses (a proptest checks).
pub fn check(spec: &MaskSpec, binding: &Binding, json: &str) -> Result<(), TransformError> {
    // A string with nothing escaped masks whatever the spec (see `mask`).
    if unescaped_string(json).is_some() {
        return Ok(());
    }
    mask_parsed(spec, binding, json).map(drop)
}

/// [`mask`] for any JSON text: parsed, masked, written back.
fn mask_parsed(spec: &MaskSpec, binding: &Binding, json: &str) -> Result<String, TransformError> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::String(s)) => Ok(to_json_string(&mask_text(spec, &s))),
        Ok(Value::Number(_)) => Ok(to_json_string(&mask_text(spec, json.trim()))),
        Ok(Value::Null) => Ok("null".to_owned()),
        _ => Err(input_type("mask", binding, "strings, numbers and null")),
    }
}

/// `text` masked as `spec` says.
pub fn mask_text(spec: &MaskSpec, text: &str) -> String {
    masked(spec, text, "")
}

/// `text` masked as `spec` says, between two `quote`s.
fn masked(spec: &MaskSpec, text: &str, quote: &str) -> String {
    // Most values and masks are ASCII: a byte is a character, and the rule reads bytes
    // (a revealed record masks about ten values; characters cost a UTF-8 decode and
    // encode each).
    if text.is_ascii() && spec.mask_char.is_ascii() && quote.is_ascii() {
        return masked_ascii(spec, text, quote);
    }
    masked_chars(spec, text, quote)
}

/// [`masked`] character by character: any text, mask character and quote.
fn masked_chars(spec: &MaskSpec, text: &str, quote: &str) -> String {
    // The quotes and at least one byte a character.
    let mut masked = String::with_capacity(text.len() + 2 * quote.len());
    masked.push_str(quote);
    let rule = Rule::of(spec, text);
    let mut index = 0;
    masked.extend(text.chars().map(|c| match rule.shows(c, &mut index) {
        true => c,
        false => spec.mask_char,
    }));
    masked.push_str(quote);
    masked
}

/// [`masked`] byte by byte, for an ASCII text, mask character and quote (an ASCII
/// character is alphanumeric exactly when its byte is).
fn masked_ascii(spec: &MaskSpec, text: &str, quote: &str) -> String {
    let rule = Rule::of_ascii(spec, text);
    // ASCII: `mask` is the character's one byte.
    let mask = spec.mask_char as u8;
    let mut index = 0;
    let mut masked = Vec::with_capacity(text.len() + 2 * quote.len());
    masked.extend_from_slice(quote.as_bytes());
    masked.extend(text.bytes().map(|b| match rule.shows_ascii(b, &mut index) {
        true => b,
        false => mask,
    }));
    masked.extend_from_slice(quote.as_bytes());
    String::from_utf8(masked).expect("ASCII bytes are UTF-8")
}

/// Per character of `text`, whether its mask shows it as it is (a kept character or a
/// kept separator) rather than the mask character, as [`mask_text`] applies it: for a
/// caller to know which characters a view shows.
pub(crate) fn shown<'t>(spec: &'t MaskSpec, text: &'t str) -> impl Iterator<Item = bool> + 't {
    let rule = Rule::of(spec, text);
    let mut index = 0;
    text.chars().map(move |c| rule.shows(c, &mut index))
}

/// The mask's rule for one text, in one place: which characters are maskable, and which
/// of those (counted from the first) are kept.
struct Rule {
    keep_separators: bool,
    /// Maskable characters before this index are kept...
    first: usize,
    /// ... and from this one on.
    last_from: usize,
}

impl Rule {
    fn of(spec: &MaskSpec, text: &str) -> Self {
        let keep_separators = spec.keep_separators;
        let count = text
            .chars()
            .filter(|&c| Self::maskable(keep_separators, c.is_alphanumeric()))
            .count();
        Self::counted(spec, count)
    }

    /// [`of`](Self::of) for an ASCII text.
    fn of_ascii(spec: &MaskSpec, text: &str) -> Self {
        let keep_separators = spec.keep_separators;
        let count = text
            .bytes()
            .filter(|b| Self::maskable(keep_separators, b.is_ascii_alphanumeric()))
            .count();
        Self::counted(spec, count)
    }

    /// The rule for a text of `count` maskable characters.
    fn counted(spec: &MaskSpec, count: usize) -> Self {
        let mut rule = Self {
            keep_separators: spec.keep_separators,
            first: 0,
            last_from: usize::MAX,
        };
        // Fail closed: a mask that would keep every maskable character keeps none.
        if spec.keep_first.saturating_add(spec.keep_last) < count {
            rule.first = spec.keep_first;
            rule.last_from = count - spec.keep_last;
        }
        rule
    }

    fn maskable(keep_separators: bool, alphanumeric: bool) -> bool {
        !keep_separators || alphanumeric
    }

    /// Whether the next character `c` is shown; `index` counts the maskable characters
    /// seen so far.
    fn shows(&self, c: char, index: &mut usize) -> bool {
        self.shows_maskable(
            Self::maskable(self.keep_separators, c.is_alphanumeric()),
            index,
        )
    }

    /// [`shows`](Self::shows) for an ASCII character.
    fn shows_ascii(&self, b: u8, index: &mut usize) -> bool {
        self.shows_maskable(
            Self::maskable(self.keep_separators, b.is_ascii_alphanumeric()),
            index,
        )
    }

    fn shows_maskable(&self, maskable: bool, index: &mut usize) -> bool {
        if !maskable {
            return true;
        }
        let keep = *index < self.first || *index >= self.last_from;
        *index += 1;
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_by_the_rule() {
        let spec = |keep_first, keep_last, keep_separators| MaskSpec {
            keep_first,
            keep_last,
            keep_separators,
            ..MaskSpec::default()
        };
        let class = Binding::class("c");
        for (spec, input, want) in [
            (
                spec(0, 4, true),
                r#""4111 1111 1111 1111""#,
                r#""**** **** **** 1111""#,
            ),
            (
                spec(1, 0, true),
                r#""jane.doe@example.com""#,
                r#""j***.***@*******.***""#,
            ),
            (
                spec(1, 0, false),
                r#""jane.doe@x.io""#,
                r#""j************""#,
            ),
            (
                spec(2, 2, true),
                r#""+44 20 7946 0958""#,
                r#""+44 ** **** **58""#,
            ),
            (spec(0, 2, true), "12345.67", r#""*****.67""#),
            (spec(0, 4, true), "-1e5", r#""-***""#), // 3 maskable <= 4 kept: all masked
            (spec(3, 3, true), r#""abcdef""#, r#""******""#),
            (spec(0, 0, true), r#""""#, r#""""#),
            (spec(1, 1, true), "null", "null"),
            (spec(1, 1, true), r#""ünïcödé""#, r#""ü*****é""#),
        ] {
            assert_eq!(mask(&spec, &class, input).unwrap(), want, "{input}");
            assert!(check(&spec, &class, input).is_ok(), "{input}");
        }
        for bad in ["true", "[1]", "{\"a\":1}", "nope"] {
            let err = mask(&spec(0, 0, true), &class, bad).unwrap_err();
            assert!(matches!(err, TransformError::InputType { .. }), "{bad}");
            let checked = check(&spec(0, 0, true), &class, bad).unwrap_err();
            assert_eq!(checked.to_string(), err.to_string(), "{bad}");
        }
        let hash = MaskSpec {
            mask_char: '#',
            ..spec(0, 1, true)
        };
        assert_eq!(mask_text(&hash, "1234"), "###4");
    }

    proptest::proptest! {
        /// An ASCII text masks byte by byte exactly as character by character, whatever
        /// the spec (letters, digits, separators, controls; every ASCII mask character).
        #[test]
        fn ascii_masks_as_characters_do(
            text in "[\\x00-\\x7f]{0,24}",
            keep_first in 0usize..6,
            keep_last in 0usize..6,
            keep_separators: bool,
            mask_char in proptest::char::range('\0', '\x7f'),
        ) {
            let spec = MaskSpec { keep_first, keep_last, mask_char, keep_separators };
            for quote in ["", "\""] {
                proptest::prop_assert_eq!(
                    masked_ascii(&spec, &text, quote),
                    masked_chars(&spec, &text, quote),
                    "{:?}", text
                );
            }
        }
    }

    proptest::proptest! {
        /// Masking a string in place gives exactly what parsing, masking and writing it
        /// back gives, for any text (quotes, backslashes, controls, other scripts, U+2028)
        /// and any mask character, including those JSON escapes.
        #[test]
        fn strings_mask_in_place_as_when_parsed(
            text in "(?s).{0,24}",
            raw in "[a-z \"\\\\\u{0}-\u{1f}\u{7f}\u{2028}é]{0,24}",
            keep_first in 0usize..6,
            keep_last in 0usize..6,
            keep_separators: bool,
            mask_char in proptest::sample::select(vec!['*', '#', 'é', '"', '\\', '\n', '\u{0}', '\u{7f}']),
        ) {
            let spec = MaskSpec { keep_first, keep_last, mask_char, keep_separators };
            let class = Binding::class("c");
            // Escaped as serde_json writes it, and as written raw (a literal that is not
            // valid JSON must still be refused exactly as before).
            for json in [to_json_string(&text), format!("\"{raw}\""), to_json_string(&raw)] {
                let in_place = mask(&spec, &class, &json).map_err(|e| e.to_string());
                let parsed = mask_parsed(&spec, &class, &json).map_err(|e| e.to_string());
                proptest::prop_assert_eq!(&in_place, &parsed, "{:?}", json);
                let checked = check(&spec, &class, &json).map_err(|e| e.to_string());
                proptest::prop_assert_eq!(checked, in_place.map(drop), "{:?}", json);
            }
        }
    }
}

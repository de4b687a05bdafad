//! Round-trip properties of every reversible transform, and what FPE keeps.

use super::super::spec::{Alphabet, DateShiftSpec, FpeSpec, MaskSpec};
use super::super::{date_shift, encrypt, fpe, luhn, mask, tokenize, Binding, Ciphertext};
use super::key;
use crate::keys::KeyKind;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(96)
}

/// Any JSON value's text: strings (with escapes), integers beyond 2^53, decimals.
fn json_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>().prop_map(|s| serde_json::Value::from(s).to_string()),
        "-?[1-9][0-9]{0,30}(\\.[0-9]{1,6}0)?",
        Just("{\"a\": [1, 2.50, \"x\"]}".to_owned()),
    ]
}

fn fpe_spec(keep_prefix: usize, keep_suffix: usize, luhn: bool, alphabet: Alphabet) -> FpeSpec {
    FpeSpec {
        key: None,
        alphabet,
        keep_prefix,
        keep_suffix,
        luhn,
        min_length: keep_prefix + keep_suffix + 6,
        allow_low_entropy: false,
        key_version: 1,
    }
}

/// `digits` with a separator after every fourth one where `spaced`.
fn layout(digits: &[u8], separator: Option<char>) -> String {
    let mut out = String::new();
    for (i, d) in digits.iter().enumerate() {
        if let (Some(sep), true) = (separator, i > 0 && i % 4 == 0) {
            out.push(sep);
        }
        out.push(char::from(b'0' + d));
    }
    out
}

fn digits_of(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn encrypt_round_trips(json in json_text(), subject in proptest::option::of("[a-z0-9-]{0,12}")) {
        let k = key("any", 4, KeyKind::Aead);
        let binding = Binding { class: "c", subject: subject.as_deref() };
        let sealed = encrypt::seal(&k, &binding, &json).unwrap();
        let parsed = Ciphertext::parse(&sealed).unwrap();
        prop_assert_eq!(encrypt::open(&k, &binding, parsed).unwrap(), json);
    }

    #[test]
    fn tokenize_round_trips_deterministically(json in json_text()) {
        let k = key("any", 2, KeyKind::Siv);
        let binding = Binding::class("c");
        let token = tokenize::tokenize(&k, &binding, &json).unwrap();
        prop_assert_eq!(&token, &tokenize::tokenize(&k, &binding, &json).unwrap());
        let parsed = Ciphertext::parse(&token).unwrap();
        prop_assert_eq!(tokenize::detokenize(&k, &binding, &parsed).unwrap(), json);
    }

    #[test]
    fn fpe_round_trips_and_keeps_the_format(
        digits in proptest::collection::vec(0u8..10, 12..=19),
        keep_prefix in 0usize..=6,
        keep_suffix in 0usize..=4,
        luhn_on in any::<bool>(),
        separator in proptest::option::of(prop_oneof![Just(' '), Just('-')]),
    ) {
        prop_assume!(digits.len() >= keep_prefix + keep_suffix + 6);
        let k = key("pan", 1, KeyKind::Ff1);
        let spec = fpe_spec(keep_prefix, keep_suffix, luhn_on, Alphabet::Digits);
        let binding = Binding::class("pan");
        let plain = layout(&digits, separator);
        let json = format!("\"{plain}\"");
        let out = fpe::encrypt(&k, &binding, &spec, &json).unwrap();
        prop_assert_eq!(fpe::decrypt(&k, &binding, &spec, &out).unwrap(), json);
        let out: String = serde_json::from_str(&out).unwrap();
        // Same layout: separators where they were, digits where digits were.
        prop_assert_eq!(out.len(), plain.len());
        for (a, b) in out.chars().zip(plain.chars()) {
            prop_assert_eq!(a.is_ascii_digit(), b.is_ascii_digit());
            if !b.is_ascii_digit() { prop_assert_eq!(a, b); }
        }
        let got = digits_of(&out);
        let n = digits.len();
        prop_assert_eq!(&got[..keep_prefix], &digits[..keep_prefix]);
        prop_assert_eq!(&got[n - keep_suffix..], &digits[n - keep_suffix..]);
        if luhn_on {
            prop_assert_eq!(luhn::is_valid(&got), luhn::is_valid(&digits));
        }
    }

    #[test]
    fn fpe_luhn_valid_pans_stay_valid(body in proptest::collection::vec(0u8..10, 15)) {
        let check = (0u8..10).find(|c| luhn::is_valid(&[body.as_slice(), &[*c]].concat())).unwrap();
        let pan = [body.as_slice(), &[check]].concat();
        let k = key("pan", 1, KeyKind::Ff1);
        let spec = fpe_spec(6, 4, true, Alphabet::Digits);
        let binding = Binding::class("pan");
        let json = format!("\"{}\"", layout(&pan, None));
        let out = fpe::encrypt(&k, &binding, &spec, &json).unwrap();
        let got = digits_of(&serde_json::from_str::<String>(&out).unwrap());
        prop_assert!(luhn::is_valid(&got));
        prop_assert_eq!(&got[..6], &pan[..6]);
        prop_assert_eq!(&got[12..], &pan[12..]);
        prop_assert_eq!(fpe::decrypt(&k, &binding, &spec, &out).unwrap(), json);
    }

    #[test]
    fn fpe_alphanumeric_round_trips_upper_case(id in "[A-Z0-9]{4,20}") {
        let k = key("passport", 1, KeyKind::Ff1);
        let spec = fpe_spec(0, 0, false, Alphabet::Alphanumeric);
        let spec = FpeSpec { min_length: 4, ..spec };
        let binding = Binding::class("passport");
        let json = format!("\"{id}\"");
        let out = fpe::encrypt(&k, &binding, &spec, &json).unwrap();
        prop_assert_eq!(fpe::decrypt(&k, &binding, &spec, &out).unwrap(), json.clone());
        let lower = json.to_lowercase();
        prop_assert_eq!(fpe::encrypt(&k, &binding, &spec, &lower).unwrap(), out);
    }

    /// The masked view is the mask of the decryption, whether or not it decrypts: any
    /// layout, case, kept prefix and suffix, and mask (stored values in any case, as a
    /// value stored in clear before protection could be).
    #[test]
    fn fpe_masked_view_is_the_mask_of_the_decryption(
        value in "[0-9a-zA-Z]{4}[ -]?[0-9a-zA-Z]{4}[ -./]?[0-9a-zA-Z]{4,10}",
        alphanumeric in any::<bool>(),
        keep_prefix in 0usize..=6,
        keep_suffix in 0usize..=4,
        luhn_on in any::<bool>(),
        keep_first in 0usize..=8,
        keep_last in 0usize..=8,
        keep_separators in any::<bool>(),
    ) {
        let alphabet = if alphanumeric { Alphabet::Alphanumeric } else { Alphabet::Digits };
        let spec = FpeSpec { min_length: 6, ..fpe_spec(keep_prefix, keep_suffix, luhn_on, alphabet) };
        let mask = MaskSpec { keep_first, keep_last, keep_separators, ..MaskSpec::default() };
        let k = key("pan", 1, KeyKind::Ff1);
        let binding = Binding::class("pan");
        let value = if alphanumeric { value } else {
            value.chars().map(|c| if c.is_ascii_alphabetic() { '7' } else { c }).collect()
        };
        let json = format!("\"{value}\"");
        let slow = fpe::decrypt(&k, &binding, &spec, &json)
            .and_then(|clear| mask::mask(&mask, &binding, &clear));
        prop_assert_eq!(fpe::masked_view(&k, &binding, &spec, &mask, &json), slow);
    }

    #[test]
    fn date_shift_round_trips(days in 0i64..2_900_000, subject in "[a-z0-9]{1,10}", max_days in 1u32..=3653) {
        let date = time::Date::from_calendar_date(1000, time::Month::January, 1).unwrap()
            + time::Duration::days(days);
        let json = format!("\"{}\"", date_shift::format_date(date));
        let k = key("dob", 1, KeyKind::Hmac);
        let spec = DateShiftSpec { key: None, max_days, key_version: 1 };
        let binding = Binding { class: "dob", subject: Some(&subject) };
        let out = date_shift::shift(&k, &binding, &spec, &json).unwrap();
        prop_assert_ne!(&out, &json);
        prop_assert_eq!(date_shift::unshift(&k, &binding, &spec, &out).unwrap(), json);
    }
}

#[test]
fn fpe_refuses_short_and_foreign_input_at_runtime() {
    let k = key("pan", 1, KeyKind::Ff1);
    let spec = fpe_spec(6, 4, true, Alphabet::Digits);
    let binding = Binding::class("pan");
    for (input, outside) in [
        ("\"411111111\"", true),          // 9 digits: below min_length 16
        ("\"4111 1111 1111 111\"", true), // 15 digits
        ("\"4111-1111-1111-111X\"", false),
        ("4111111111111111", false), // a JSON number
        ("\"4111111111111111\"", false),
    ] {
        let result = fpe::encrypt(&k, &binding, &spec, input);
        match (result, input) {
            (Ok(_), "\"4111111111111111\"") => {}
            (Err(super::super::TransformError::OutsideDomain { .. }), _) if outside => {}
            (Err(super::super::TransformError::InputType { .. }), _) if !outside => {}
            (other, _) => panic!("{input}: {other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Parsing any string is total, and what parses prints back to the same string (one
    /// spelling per protected value, so tokens compare as strings).
    #[test]
    fn parsing_is_total_and_canonical(
        s in prop_oneof![
            any::<String>(),
            "pg[vth]1\\.[a-z.]{0,6}\\.[0-9]{0,11}\\.[A-Za-z0-9_=+/-]{0,12}",
        ]
    ) {
        if let Ok(parsed) = Ciphertext::parse_str(&s) {
            prop_assert_eq!(parsed.to_string(), s);
        }
    }

    /// FPE on any string either refuses it or round-trips it.
    #[test]
    fn fpe_on_any_string_refuses_or_round_trips(s in any::<String>(), digits in "[0-9 -]{0,24}") {
        let k = key("pan", 1, KeyKind::Ff1);
        let spec = fpe_spec(2, 2, true, Alphabet::Digits);
        let binding = Binding::class("pan");
        for text in [s, digits] {
            let json = serde_json::Value::from(text).to_string();
            if let Ok(out) = fpe::encrypt(&k, &binding, &spec, &json) {
                prop_assert_eq!(fpe::decrypt(&k, &binding, &spec, &out).unwrap(), json);
            }
        }
    }
}

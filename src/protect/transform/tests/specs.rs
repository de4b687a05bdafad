//! The fields.toml schema: parsing, and what validation refuses.

use super::super::fpe::domain_is_large_enough;
use super::super::spec::{Alphabet, FpeSpec, MaskSpec, ProtectSpec};
use crate::keys::KeyKind;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Fields {
    class: BTreeMap<String, Class>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Class {
    permission: Option<String>,
    protect: ProtectSpec,
    mask: Option<MaskSpec>,
}

const EXAMPLE: &str = r##"
[class.pan]
permission = "ReadPAN"
protect = { transform = "fpe", alphabet = "digits", keep_prefix = 6, keep_suffix = 4, luhn = true, min_length = 16 }
mask = { keep_last = 4 }
[class.email]
protect = { transform = "encrypt" }
mask = { keep_first = 1, keep_last = 0 }
[class.dob]
protect = { transform = "tokenize", allow_low_entropy = true }
[class.customer_id]
protect = { transform = "hash", key = "pseudonyms" }
[class.notes]
protect = { transform = "redact", mode = "constant", constant = { redacted = true } }
[class.salary]
protect = { transform = "generalize", bucket = 10000 }
[class.birth_date]
protect = { transform = "date_shift", max_days = 180 }
[class.postcode]
protect = { transform = "generalize", prefix = 3 }
[class.name]
protect = { transform = "mask", keep_first = 1, mask_char = "#" }
"##;

#[test]
fn the_example_parses_and_validates() {
    let fields: Fields = toml::from_str(EXAMPLE).unwrap();
    for (name, class) in &fields.class {
        class.protect.validate(name).unwrap();
        if let Some(mask) = &class.mask {
            mask.validate(name).unwrap();
        }
    }
    let kind = |c: &str| fields.class[c].protect.key_kind();
    assert_eq!(kind("pan"), Some(KeyKind::Ff1));
    assert_eq!(kind("email"), Some(KeyKind::Aead));
    assert_eq!(kind("dob"), Some(KeyKind::Siv));
    assert_eq!(kind("customer_id"), Some(KeyKind::Hmac));
    assert_eq!(kind("birth_date"), Some(KeyKind::Hmac));
    assert_eq!(kind("notes"), None);
    let key = |c: &'static str| fields.class[c].protect.key_name(c).map(str::to_owned);
    assert_eq!(key("customer_id").as_deref(), Some("pseudonyms"));
    assert_eq!(key("email").as_deref(), Some("email"));
    assert_eq!(key("salary"), None);
    assert_eq!(fields.class["pan"].mask.as_ref().unwrap().mask_char, '*');
}

#[test]
fn unknown_and_missing_keys_are_refused() {
    for bad in [
        r#"transform = "encrypt"
        kee = "x""#,
        r#"transform = "fpe"
        alphabet = "digits""#, // min_length is required
        r#"transform = "fpe"
        alphabet = "hex"
        min_length = 8"#,
        r#"transform = "rot13""#,
        r#"transform = "tokenize"
        allow_low_entropy = "yes""#,
        r#"transform = "date_shift""#,
    ] {
        assert!(toml::from_str::<ProtectSpec>(bad).is_err(), "{bad}");
    }
}

#[test]
fn fpe_domain_limit_is_exactly_a_million() {
    let fpe = |alphabet, min_length, keep_prefix, keep_suffix, luhn| {
        ProtectSpec::Fpe(FpeSpec {
            key: None,
            alphabet,
            keep_prefix,
            keep_suffix,
            luhn,
            min_length,
            allow_low_entropy: false,
            key_version: 1,
        })
    };
    use Alphabet::{Alphanumeric as Alnum, Digits};
    for (spec, ok) in [
        (fpe(Digits, 6, 0, 0, false), true), // 10^6 exactly
        (fpe(Digits, 5, 0, 0, false), false),
        (fpe(Digits, 16, 6, 4, true), true),
        (fpe(Digits, 15, 6, 4, true), false), // a 15-digit PAN keeps 5: 10^5
        (fpe(Digits, 3, 2, 2, false), false), // keeps more than it has
        (fpe(Alnum, 4, 0, 0, false), true),   // 36^4 = 1,679,616
        (fpe(Alnum, 3, 0, 0, false), false),  // 36^3 = 46,656
        (fpe(Alnum, 12, 0, 0, true), false),  // luhn needs digits
    ] {
        let result = spec.validate("pan");
        assert_eq!(result.is_ok(), ok, "{spec:?}: {result:?}");
        if let Err(message) = result {
            assert!(message.starts_with("class pan:"), "{message}");
        }
    }
    for (radix, len, ok) in [
        (10, 6, true),
        (10, 5, false),
        (1000, 2, true),
        (999, 2, false),
        (2, 20, true),
        (2, 19, false),
    ] {
        assert_eq!(domain_is_large_enough(radix, len), ok, "{radix}^{len}");
    }
}

#[test]
fn deterministic_transforms_on_low_entropy_classes_need_consent() {
    let tokenize = |allow_low_entropy| ProtectSpec::Tokenize {
        key: None,
        allow_low_entropy,
    };
    let hash = ProtectSpec::Hash {
        key: None,
        allow_low_entropy: false,
    };
    let encrypt = ProtectSpec::Encrypt { key: None };
    for (spec, class, declared, ok) in [
        (tokenize(false), "dob", false, false),
        (tokenize(true), "dob", false, true),
        (tokenize(false), "pan", false, true),
        (tokenize(false), "pin_hint", true, false),
        (hash.clone(), "gender", false, false),
        (hash, "customer_id", false, true),
        (encrypt, "dob", true, true),
    ] {
        let result = spec.validate_declared(class, declared);
        assert_eq!(result.is_ok(), ok, "{class} {spec:?}: {result:?}");
    }
}

#[test]
fn other_specs_are_checked() {
    for bad in [
        r#"transform = "redact"
        mode = "constant""#,
        r#"transform = "redact"
        mode = "null"
        constant = 1"#,
        r#"transform = "generalize""#,
        r#"transform = "generalize"
        bucket = 10
        prefix = 2"#,
        r#"transform = "generalize"
        bucket = 0"#,
        r#"transform = "date_shift"
        max_days = 0"#,
        r#"transform = "date_shift"
        max_days = 100000"#,
        r#"transform = "mask"
        mask_char = "x""#,
    ] {
        let spec: ProtectSpec = toml::from_str(bad).unwrap();
        assert!(spec.validate("c").is_err(), "{bad}");
    }
}

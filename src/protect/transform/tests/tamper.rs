//! Encrypt and tokenize refuse anything but the value they made, for the binding they made
//! it for, under the key version that made it.

use super::super::envelope::Ciphertext;
use super::super::{encrypt, tokenize, Binding, TransformError};
use super::key;
use crate::keys::{DataKey, KeyKind};
use zeroize::Zeroizing;

type Protect = fn(&DataKey, &Binding, &str) -> Result<String, TransformError>;
type Reveal = fn(&DataKey, &Binding, &Ciphertext) -> Result<String, TransformError>;

/// (kind, protect, reveal) for both authenticated transforms.
const SCHEMES: [(KeyKind, Protect, Reveal); 2] = [
    (KeyKind::Aead, encrypt::seal, open_parsed),
    (KeyKind::Siv, tokenize::tokenize, tokenize::detokenize),
];

/// [`encrypt::open`] of a parsed value the test keeps (it takes the value).
fn open_parsed(
    key: &DataKey,
    binding: &Binding,
    sealed: &Ciphertext,
) -> Result<String, TransformError> {
    encrypt::open(key, binding, sealed.clone())
}

const PAN: Binding = Binding {
    class: "pan",
    subject: None,
};

#[test]
fn exact_json_text_round_trips() {
    for (kind, protect, reveal) in SCHEMES {
        let k = key("pan", 1, kind);
        for json in [
            r#""4111 1111 1111 1111""#,
            "1.10",
            "123456789012345678901234567890",
            r#"{"a":1, "b" : [true,null]}"#,
            r#""caf\u00e9""#,
            "null",
            r#""""#,
        ] {
            let out = protect(&k, &PAN, json).unwrap();
            let parsed = Ciphertext::parse(&out).unwrap();
            assert_eq!((parsed.key_name(), parsed.version()), ("pan", 1));
            assert_eq!(reveal(&k, &PAN, &parsed).unwrap(), json, "{kind:?}");
        }
        assert!(matches!(
            protect(&k, &PAN, "not json"),
            Err(TransformError::InputType { .. })
        ));
    }
}

#[test]
fn any_flipped_payload_bit_fails() {
    for (kind, protect, reveal) in SCHEMES {
        let k = key("pan", 1, kind);
        let good = Ciphertext::parse(&protect(&k, &PAN, r#""4111111111111111""#).unwrap()).unwrap();
        for bit in 0..good.payload().len() * 8 {
            let mut payload = good.payload().to_vec();
            payload[bit / 8] ^= 1 << (bit % 8);
            let bad = Ciphertext::new(good.scheme(), "pan", 1, payload);
            let err = reveal(&k, &PAN, &bad).unwrap_err();
            assert!(
                matches!(err, TransformError::DoesNotAuthenticate { .. }),
                "{kind:?} bit {bit}"
            );
        }
    }
}

#[test]
fn another_class_or_subject_fails() {
    for (kind, protect, reveal) in SCHEMES {
        let k = key("k", 1, kind);
        let of = |class, subject| Binding { class, subject };
        let original = of("email", Some("c-1"));
        let sealed =
            Ciphertext::parse(&protect(&k, &original, r#""a@b.example""#).unwrap()).unwrap();
        assert!(reveal(&k, &original, &sealed).is_ok());
        for moved in [
            of("phone", Some("c-1")),
            of("email", Some("c-2")),
            of("email", None),
            of("email", Some("")),
        ] {
            let err = reveal(&k, &moved, &sealed).unwrap_err();
            assert!(
                matches!(err, TransformError::DoesNotAuthenticate { .. }),
                "{kind:?} {moved:?}"
            );
        }
    }
}

#[test]
fn another_key_version_fails() {
    for (kind, protect, reveal) in SCHEMES {
        let v1 = key("pan", 1, kind);
        let sealed = Ciphertext::parse(&protect(&v1, &PAN, r#""x""#).unwrap()).unwrap();
        let v2 = key("pan", 2, kind);
        assert!(matches!(
            reveal(&v2, &PAN, &sealed),
            Err(TransformError::KeyMismatch { .. })
        ));
        // Relabelled as v2 and opened with a v2 key holding v1's secret: the version is in the
        // associated data, so it still fails.
        let same_secret =
            DataKey::new("pan", 2, kind, Zeroizing::new(v1.secret().to_vec())).unwrap();
        let relabelled = Ciphertext::new(sealed.scheme(), "pan", 2, sealed.payload().to_vec());
        let err = reveal(&same_secret, &PAN, &relabelled).unwrap_err();
        assert!(
            matches!(err, TransformError::DoesNotAuthenticate { .. }),
            "{kind:?}"
        );
        let other_name = key("iban", 1, kind);
        assert!(matches!(
            reveal(&other_name, &PAN, &sealed),
            Err(TransformError::KeyMismatch { .. })
        ));
    }
}

#[test]
fn tokens_are_deterministic_ciphertexts_are_not() {
    let siv = key("pan", 1, KeyKind::Siv);
    let a = tokenize::tokenize(&siv, &PAN, r#""4111""#).unwrap();
    assert_eq!(a, tokenize::tokenize(&siv, &PAN, r#""4111""#).unwrap());
    assert_ne!(a, tokenize::tokenize(&siv, &PAN, r#""4112""#).unwrap());
    assert_ne!(
        a,
        tokenize::tokenize(&siv, &Binding::class("iban"), r#""4111""#).unwrap()
    );
    assert!(a.starts_with("\"pgt1.pan.1."), "{a}");
    let gcm = key("pan", 1, KeyKind::Aead);
    let c = encrypt::seal(&gcm, &PAN, r#""4111""#).unwrap();
    assert_ne!(c, encrypt::seal(&gcm, &PAN, r#""4111""#).unwrap());
    assert!(c.starts_with("\"pgv1.pan.1."), "{c}");
}

#[test]
fn wrong_kind_and_scheme_are_refused_and_errors_hold_no_value() {
    let gcm = key("pan", 1, KeyKind::Aead);
    let siv = key("pan", 1, KeyKind::Siv);
    let err = encrypt::seal(&siv, &PAN, r#""4111111111111111""#).unwrap_err();
    assert!(matches!(err, TransformError::WrongKeyKind { .. }));
    let err = tokenize::tokenize(&gcm, &PAN, r#""4111111111111111""#).unwrap_err();
    assert!(matches!(err, TransformError::WrongKeyKind { .. }));
    let token =
        Ciphertext::parse(&tokenize::tokenize(&siv, &PAN, r#""4111111111111111""#).unwrap())
            .unwrap();
    assert!(matches!(
        encrypt::open(&gcm, &PAN, token),
        Err(TransformError::Malformed { .. })
    ));
    let sealed =
        Ciphertext::parse(&encrypt::seal(&gcm, &PAN, r#""4111111111111111""#).unwrap()).unwrap();
    let errors = [
        encrypt::open(&gcm, &Binding::class("iban"), sealed.clone()).unwrap_err(),
        tokenize::detokenize(&siv, &PAN, &sealed).unwrap_err(),
        encrypt::seal(&gcm, &PAN, "4111111111111111 oops").unwrap_err(),
    ];
    for err in errors {
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("4111"), "{shown}");
    }
}

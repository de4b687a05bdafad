//! `protect` and `reveal` route each spec to its transform and key.

use super::super::spec::ProtectSpec;
use super::super::{protect, reveal, Binding, Edit, TransformError};
use super::key;
use crate::keys::aead::Nonces;

fn spec(toml: &str) -> ProtectSpec {
    let spec: ProtectSpec = toml::from_str(toml).unwrap();
    spec.validate("c").unwrap();
    spec
}

#[test]
fn reversible_specs_round_trip_through_protect_and_reveal() {
    let binding = Binding {
        class: "c",
        subject: Some("s-1"),
    };
    for (toml, json) in [
        (r#"transform = "encrypt""#, "1.10"),
        (r#"transform = "tokenize""#, r#""GB82WEST12345698765432""#),
        (
            "transform = \"fpe\"\nalphabet = \"digits\"\nmin_length = 6\nluhn = true",
            r#""4111-1111-1111-1111""#,
        ),
        (
            "transform = \"date_shift\"\nmax_days = 30",
            r#""2001-02-03""#,
        ),
    ] {
        let spec = spec(toml);
        assert!(spec.is_reversible(), "{toml}");
        let k = key("c", 1, spec.key_kind().unwrap());
        let Edit::Replace(out) =
            protect(&spec, Some(&k), &binding, json, &mut Nonces::expecting(1)).unwrap()
        else {
            panic!("{toml}: removed");
        };
        assert_ne!(out, json, "{toml}");
        assert_eq!(
            reveal(&spec, Some(&k), &binding, &out).unwrap(),
            json,
            "{toml}"
        );
        let missing = protect(&spec, None, &binding, json, &mut Nonces::expecting(1)).unwrap_err();
        assert!(
            matches!(missing, TransformError::MissingKey { .. }),
            "{toml}"
        );
    }
}

#[test]
fn one_way_specs_protect_and_refuse_to_reveal() {
    let binding = Binding::class("c");
    for (toml, json, want) in [
        (
            "transform = \"mask\"\nkeep_last = 2",
            r#""secret""#,
            Edit::Replace(r#""****et""#.into()),
        ),
        (
            "transform = \"redact\"\nmode = \"remove\"",
            "1",
            Edit::Remove,
        ),
        (
            "transform = \"generalize\"\ndate = \"year\"",
            r#""1999-12-31""#,
            Edit::Replace(r#""1999""#.into()),
        ),
    ] {
        let spec = spec(toml);
        assert_eq!(
            protect(&spec, None, &binding, json, &mut Nonces::expecting(1)).unwrap(),
            want,
            "{toml}"
        );
        let err = reveal(&spec, None, &binding, json).unwrap_err();
        assert!(
            matches!(err, TransformError::NotReversible { .. }),
            "{toml}"
        );
    }
    let hash = spec(r#"transform = "hash""#);
    let k = key("c", 3, crate::keys::KeyKind::Hmac);
    let Edit::Replace(a) =
        protect(&hash, Some(&k), &binding, "42", &mut Nonces::expecting(1)).unwrap()
    else {
        panic!("removed")
    };
    assert!(a.starts_with("\"pgh1.c.3."), "{a}");
    assert_eq!(
        protect(&hash, Some(&k), &binding, "42", &mut Nonces::expecting(1)).unwrap(),
        Edit::Replace(a.clone())
    );
    let other_class = protect(
        &hash,
        Some(&k),
        &Binding::class("d"),
        "42",
        &mut Nonces::expecting(1),
    )
    .unwrap();
    assert_ne!(other_class, Edit::Replace(a));
}

/// Whatever fails, the error names no part of the value.
#[test]
fn no_error_carries_the_value() {
    let binding = Binding::class("c");
    for toml in [
        r#"transform = "encrypt""#,
        r#"transform = "tokenize""#,
        "transform = \"fpe\"\nalphabet = \"digits\"\nmin_length = 6",
        "transform = \"date_shift\"\nmax_days = 30",
        r#"transform = "mask""#,
        r#"transform = "hash""#,
        "transform = \"generalize\"\nbucket = 10",
        "transform = \"generalize\"\ndate = \"month\"",
    ] {
        let spec = spec(toml);
        let k = spec.key_kind().map(|kind| key("c", 1, kind));
        for bad in [
            r#"{"pan": "SECRET4111"}"#,
            r#""SECRET4111"#,
            "SECRET4111",
            r#""pgv1.c.1.SECRET4111""#,
        ] {
            for result in [
                protect(&spec, k.as_ref(), &binding, bad, &mut Nonces::expecting(1)).map(|_| ()),
                reveal(&spec, k.as_ref(), &binding, bad).map(|_| ()),
            ] {
                if let Err(err) = result {
                    let shown = format!("{err} {err:?}");
                    assert!(
                        !shown.contains("SECRET") && !shown.contains("4111"),
                        "{shown}"
                    );
                }
            }
        }
    }
}

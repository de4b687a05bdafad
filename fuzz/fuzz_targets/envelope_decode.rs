//! The envelope decoders: `pgv1`/`pgt1`/`pgh1` strings parse only in their one canonical
//! layout; and on the shipped response rules a value that claims to be one of the gateway's
//! ciphertexts or tokens but does not open is never shown in any form (the body is refused),
//! while the format-preserving class (`pan`) reveals to a value of the same length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privgate::decision::FieldView;
use privgate::fuzzing::ShippedRules;
use privgate::protect::transform::Ciphertext;
use serde_json::{json, Value};

fuzz_target!(|text: &str| {
    if let Ok(c) = Ciphertext::parse_str(text) {
        let head = format!("{}.{}.{}.", c.scheme().prefix(), c.key_name(), c.version());
        assert!(text.starts_with(&head), "parsed to another layout");
    }
    let looks_sealed = text.starts_with("pgv1.") || text.starts_with("pgt1.");
    let rules = ShippedRules::get();
    for (member, view) in [
        ("email", FieldView::Clear),
        ("iban", FieldView::Clear),
        ("email", FieldView::Masked),
        ("card_number", FieldView::Clear),
    ] {
        let body = json!({ "id": "c-1", member: text }).to_string();
        let Ok(shown) = rules.reveal("customers", body.as_bytes(), Some("c-1"), view) else {
            continue;
        };
        assert!(!looks_sealed, "a forged {member} value was shown");
        let shown: Value = serde_json::from_str(&shown).expect("revealed body is JSON");
        let value = shown[member].as_str().expect("still a string");
        match (member, view) {
            // Not ours: data stored before protection, shown as it is.
            (_, FieldView::Clear) if member != "card_number" => assert_eq!(value, text),
            ("card_number", _) => {
                assert_eq!(
                    value.chars().count(),
                    text.chars().count(),
                    "FPE changed length"
                )
            }
            _ => {}
        }
    }
});

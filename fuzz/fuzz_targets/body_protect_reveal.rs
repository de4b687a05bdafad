//! The onboarding route's request body (`customer_create`, the shipped field rules):
//! whatever is protected on the way upstream reveals, in the clear view, as the same JSON;
//! the members the rules bind never go upstream in clear (encrypted or tokenized, or the
//! body is refused).
#![no_main]

use libfuzzer_sys::fuzz_target;
use privgate::decision::FieldView;
use privgate::fuzzing::ShippedRules;
use privgate::protect::rules::BodySide;
use serde_json::Value;

/// Top-level members the shipped rules bind on `customer_create`, sealed (not FPE).
const SEALED: [&str; 6] = [
    "name",
    "email",
    "phone",
    "national_id",
    "date_of_birth",
    "iban",
];

fuzz_target!(|body: &[u8]| {
    let rules = ShippedRules::get();
    let route = "customer_create";
    let Ok(Some(stored)) = rules.protect(route, BodySide::Request, body, None) else {
        return;
    };
    let original: Value = serde_json::from_slice(body).expect("protected, so it was JSON");
    let sent: Value = serde_json::from_slice(&stored).expect("protected body is JSON");
    for member in SEALED {
        match (original.get(member), sent.get(member)) {
            (Some(Value::Null) | None, _) => {}
            (Some(_), Some(Value::String(s))) => assert!(
                s.starts_with("pgv1.") || s.starts_with("pgt1."),
                "{member} went upstream unsealed"
            ),
            (Some(_), other) => panic!("{member} went upstream as {other:?}"),
        }
    }
    let revealed = rules
        .reveal(route, &stored, None, FieldView::Clear)
        .expect("what the gateway protected reveals");
    let revealed: Value = serde_json::from_str(&revealed).expect("revealed body is JSON");
    assert_eq!(original, revealed, "protect then reveal changed the body");
});

//! Any upstream response body on the shipped response rules, in every view: a body or a
//! refusal, never a panic, and what comes back is JSON (`envelope_decode` checks what a
//! forged ciphertext turns into). The body is also read as a document and compared with
//! serde_json: same acceptance, same value, spans that hold their values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privgate::decision::FieldView;
use privgate::fuzzing::ShippedRules;

const VIEWS: [FieldView; 4] = [
    FieldView::Clear,
    FieldView::Masked,
    FieldView::Token,
    FieldView::Removed,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if let Err(differs) = privgate::protect::document::check_against_serde_json(body) {
        panic!("the document reader and serde_json differ: {differs}");
    }
    let rules = ShippedRules::get();
    let routes: Vec<&str> = ShippedRules::routes().collect();
    let route = routes[usize::from(selector) % routes.len()];
    let view = VIEWS[usize::from(selector / 16) % VIEWS.len()];
    let subject = (selector & 1 == 0).then_some("c-1");
    if let Ok(shown) = rules.reveal(route, body, subject, view) {
        serde_json::from_str::<serde_json::Value>(&shown).expect("a revealed body is JSON");
    }
});

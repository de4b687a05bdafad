//! The admin API's bodies (`POST /consents`, `POST /operations`): any bytes are accepted or
//! refused with a message, never a panic, and a refusal never quotes a value the caller
//! sent (serde's own messages do: `invalid type: string "900-12-3456"`).
//!
//! Input: one selector byte (even: a consent grant; odd: an operation), then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let Err(message) = privgate::fuzzing::admin_body(selector % 2 == 0, body) else {
        return;
    };
    let Ok(sent) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let mut values = Vec::new();
    scalars(&sent, &mut values);
    for value in values {
        for quoted in [format!("\"{value}\""), format!("`{value}`")] {
            assert!(
                !message.contains(&quoted),
                "refusal quotes a value: {message}"
            );
        }
    }
});

/// String and number values that could be personal data (with a digit, `@` or a space:
/// a bare lower-case word may be a member name the message rightly quotes).
fn scalars(v: &Value, out: &mut Vec<String>) {
    let looks_personal = |s: &str| {
        s.chars()
            .any(|c| c.is_ascii_digit() || c == '@' || c == ' ')
    };
    match v {
        Value::String(s) if looks_personal(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|i| scalars(i, out)),
        // Purposes and permissions included: an unknown one is named by its position,
        // never by what was sent (free text typed where a code belongs).
        Value::Object(m) => m.values().for_each(|i| scalars(i, out)),
        _ => {}
    }
}

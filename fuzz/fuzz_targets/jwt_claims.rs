//! JWT parsing and claim validation behind a real signature check: the target holds the
//! one HS256 issuer's secret (the deterministic stand-in for an identity provider), so the
//! header and claims the fuzzer writes are signed and reach the claim logic.
//!
//! Input: header JSON, a NUL byte, claims JSON (signed here); without a NUL, the input is
//! presented as the token itself. An accepted token always has the issuer's `iss`, one of
//! its audiences, an unexpired `exp`, a string `sub`, `alg` HS256 and no `crit`; the same
//! token with its signature altered is always refused.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use privgate::fuzzing::{token_gate, TokenGate, AUDIENCE, ISSUER, LEEWAY_S};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let gate = token_gate();
    let (token, signed) = match data.iter().position(|b| *b == 0) {
        Some(at) => (TokenGate::sign(&data[..at], &data[at + 1..]), true),
        None => match std::str::from_utf8(data) {
            Ok(text) => (text.to_owned(), false),
            Err(_) => return,
        },
    };
    let Ok(outcome) = gate.identify(&token, now) else {
        return;
    };
    let mut parts = token.split('.');
    let (Some(header), Some(claims)) = (parts.next(), parts.next()) else {
        panic!("accepted a token that is not a compact JWS");
    };
    let header = decode(header);
    let claims = decode(claims);
    assert_eq!(header["alg"], "HS256");
    assert!(header.get("crit").is_none(), "accepted a critical header");
    assert_eq!(claims["iss"], ISSUER);
    match &claims["aud"] {
        Value::String(a) => assert_eq!(a, AUDIENCE),
        Value::Array(a) => assert!(a.iter().any(|a| a == AUDIENCE), "audience"),
        other => panic!("accepted aud {other}"),
    }
    let exp = claims["exp"]
        .as_f64()
        .expect("accepted without numeric exp");
    assert!(
        exp + LEEWAY_S as f64 + 5.0 >= now as f64,
        "accepted an expired token"
    );
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64) {
        assert!(nbf <= (now + LEEWAY_S + 5) as f64, "accepted before nbf");
    }
    assert_eq!(claims["sub"].as_str(), Some(outcome.subject.as_str()));
    for (_, value) in &outcome.forwarded {
        // A tab is allowed inside a field value (RFC 9110 section 5.5); CR, LF, NUL are not.
        let bad = |c: char| c.is_control() && c != '\t';
        assert!(!value.chars().any(bad), "control character forwarded");
    }
    if signed {
        // The first signature character changed: another signature, never accepted.
        let at = token.rfind('.').expect("three parts") + 1;
        let mut forged = token.clone().into_bytes();
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).expect("ASCII");
        assert!(
            gate.identify(&forged, now).is_err(),
            "forged signature accepted"
        );
    }
});

fn decode(part: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .expect("accepted, so its parts are base64url");
    serde_json::from_slice(&bytes).expect("accepted, so its parts are JSON")
}

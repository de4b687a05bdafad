//! JWKS documents: any bytes are a key set or a refusal, never a panic. Every key kept can
//! verify at least one algorithm, never an HMAC one (a symmetric key from a JWKS would let
//! whoever reads the set sign tokens), and a token without `kid` finds a key only when the
//! set has exactly one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(listing) = privgate::fuzzing::jwks_algorithms(data) else {
        return;
    };
    assert_eq!(listing.len, listing.keys.len());
    for (_, algorithms) in &listing.keys {
        assert!(!algorithms.is_empty(), "a key with no algorithm kept");
        assert!(
            algorithms.iter().all(|a| !a.starts_with("HS")),
            "a JWKS key verifies HMAC"
        );
    }
    assert_eq!(listing.answers_without_kid, listing.len == 1);
});

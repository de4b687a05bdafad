//! FHE contributions (a proven compact ciphertext list) as the gateway reads them from a
//! contributor: any bytes are a parsed list or a refusal, never a panic; and a genuine
//! contribution with the input's edits applied passes parsing, the width check and the
//! zero-knowledge proof only if the edits left its bytes unchanged.
//!
//! Input: first byte odd: the rest is the contribution as sent; even: the rest is edits
//! (position high, position low, byte) to a contribution encrypted here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privgate::analytics::fhe::{contribution, params::Sizing};
use std::sync::OnceLock;

const BITS: u32 = 16;

fn genuine() -> &'static (Vec<u8>, Vec<u8>) {
    static GENUINE: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let metadata = contribution::metadata("agg-1", "branch-1", "nonce-1");
        let bytes = contribution::encrypt(privgate::fuzzing::fhe_public(), 1234, BITS, &metadata)
            .expect("encrypt");
        (bytes, metadata)
    })
}

fuzz_target!(|data: &[u8]| {
    let public = privgate::fuzzing::fhe_public();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        if let Ok(list) = contribution::parse(rest, public) {
            let sizing = Sizing::new(BITS, 1).expect("sizing");
            let _ = contribution::check_width(&list, &sizing);
        }
        return;
    }
    let (sent, metadata) = genuine();
    let mut edited = sent.clone();
    for edit in rest.chunks(3) {
        let [hi, lo, byte] = edit else { break };
        let at = (usize::from(*hi) << 8 | usize::from(*lo)) % edited.len();
        edited[at] = *byte;
    }
    let accepted = contribution::parse(&edited, public).is_ok_and(|list| {
        let sizing = Sizing::new(BITS, 1).expect("sizing");
        contribution::check_width(&list, &sizing).is_ok()
            && contribution::verify(&list, public, metadata).is_ok()
    });
    if edited != *sent {
        assert!(!accepted, "an edited contribution passed its proof");
    } else {
        assert!(accepted, "a genuine contribution was refused");
    }
});

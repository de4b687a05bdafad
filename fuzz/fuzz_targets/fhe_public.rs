//! FHE public material as a contributor downloads it: any public-key and CRS bytes are
//! conformant material or a refusal, never a panic (size limits before allocation, version
//! header, parameter conformance).
//!
//! Input: the public key bytes, then the CRS bytes, split at the first input byte's value
//! (as a fraction of the rest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use privgate::analytics::fhe::keyset;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = rest.len() * usize::from(split) / 255;
    let (public_key, crs) = rest.split_at(at);
    let _ = keyset::public_from_bytes(public_key.to_vec(), crs.to_vec());
});

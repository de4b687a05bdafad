//! Tests across transforms: known-answer vectors, tampering, round-trip properties and the
//! fields.toml schema.

mod dispatch;
mod properties;
mod specs;
mod tamper;
mod vectors;

use crate::keys::{DataKey, KeyKind};
use zeroize::Zeroizing;

/// A test key whose secret differs by name, version and kind.
pub(super) fn key(name: &str, version: u32, kind: KeyKind) -> DataKey {
    let seed = name
        .bytes()
        .fold(version as u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    let secret = (0..kind.secret_len())
        .map(|i| seed.wrapping_add(i as u8))
        .collect();
    DataKey::new(name, version, kind, Zeroizing::new(secret)).unwrap()
}

/// Bytes from hex (test vectors).
pub(super) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

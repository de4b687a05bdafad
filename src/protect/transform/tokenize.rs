//! Deterministic tokens: AES-256-SIV (RFC 5297, S2V over CMAC, 512-bit keys) from the
//! `aes-siv` crate, output `"pgt1.<key>.<version>.<base64url(siv || ciphertext)>"`.
//!
//! The same associated data as [`encrypt`](super::encrypt) (scheme `pgt1`, key, version,
//! class, subject) is the one S2V header; there is no nonce, so equal JSON texts under the
//! same key and binding give equal tokens (usable for joins and lookups) and the token is
//! still authenticated: [`detokenize`] restores the exact JSON text.
//!
//! Hides: the value. Does NOT hide: equality (two records with the same value have the same
//! token), hence frequencies; the length of the JSON text. Tokens of a small domain (dates
//! of birth, short numbers) can be tabulated by anyone who can submit values and see
//! tokens, which is why `spec` refuses deterministic transforms on low-entropy classes.
//! Equality is of the JSON text: `"A"` and `"\u0041"` give different tokens.

use super::encrypt::{does_not_authenticate, original_json, require_json};
use super::envelope::{associated_data, Ciphertext, Scheme};
use super::{require_kind, Binding, TransformError};
use crate::keys::{DataKey, KeyKind};
use aes_siv::{siv::Aes256Siv, KeyInit};

/// The token of one JSON value; the output is a JSON string.
pub fn tokenize(key: &DataKey, binding: &Binding, json: &str) -> Result<String, TransformError> {
    let mut siv = cipher(key)?;
    require_json(json, "tokenize", binding)?;
    let ad = associated_data(Scheme::Token.prefix(), key.name(), key.version(), binding);
    let token = siv
        .encrypt([ad.as_slice()], json.as_bytes())
        .map_err(|_| does_not_authenticate(binding))?;
    Ok(Ciphertext::new(Scheme::Token, key.name(), key.version(), token).to_json())
}

/// The original JSON text of a `pgt1` token made under `key` for `binding`.
pub fn detokenize(
    key: &DataKey,
    binding: &Binding,
    token: &Ciphertext,
) -> Result<String, TransformError> {
    let mut siv = cipher(key)?;
    token.check(Scheme::Token, key)?;
    let ad = associated_data(Scheme::Token.prefix(), key.name(), key.version(), binding);
    let plain = zeroize::Zeroizing::new(
        siv.decrypt([ad.as_slice()], token.payload())
            .map_err(|_| does_not_authenticate(binding))?,
    );
    original_json(plain, binding)
}

fn cipher(key: &DataKey) -> Result<Aes256Siv, TransformError> {
    require_kind(key, KeyKind::Siv)?;
    // DataKey guarantees 64 bytes for a Siv key; the error arm is unreachable but typed.
    Aes256Siv::new_from_slice(key.secret()).map_err(|_| TransformError::WrongKeyKind {
        key: key.name().to_owned(),
        expected: KeyKind::Siv,
        found: key.kind(),
    })
}

//! Randomized encryption: AES-256-GCM through [`crate::keys::aead`], output
//! `"pgv1.<key>.<version>.<base64url(nonce || ciphertext || tag)>"`.
//!
//! The plaintext is the exact JSON text of the value, so [`open`] restores its type and
//! bytes. The associated data binds scheme, key name, version, field class and subject: a
//! ciphertext copied into another class or subject, or relabelled with another key version,
//! does not open. Hides: the value, and whether two values are equal. Does NOT hide: the
//! length of the JSON text (to the byte), that a value is present, which key version made it.

use super::envelope::{associated_data, Ciphertext, Scheme};
use super::{require_kind, Binding, TransformError};
use crate::keys::aead::{self, Nonces};
use crate::keys::{DataKey, KeyKind};
use zeroize::Zeroizing;

/// Encrypts one JSON value; the output is a JSON string.
pub fn seal(key: &DataKey, binding: &Binding, json: &str) -> Result<String, TransformError> {
    seal_with(key, binding, json, &mut Nonces::expecting(1))
}

/// [`seal`] under the next of `nonces` (a body's members share one draw).
pub fn seal_with(
    key: &DataKey,
    binding: &Binding,
    json: &str,
    nonces: &mut Nonces,
) -> Result<String, TransformError> {
    require_kind(key, KeyKind::Aead)?;
    require_json(json, "encrypt", binding)?;
    let aad = associated_data(Scheme::Encrypt.prefix(), key.name(), key.version(), binding);
    let aead = key.aead().map_err(|_| does_not_authenticate(binding))?;
    let sealed = aead
        .seal_with(nonces, &aad, json.as_bytes())
        .map_err(|e| match e {
            aead::AeadError::Random => TransformError::Random,
            _ => does_not_authenticate(binding),
        })?;
    Ok(Ciphertext::new(Scheme::Encrypt, key.name(), key.version(), sealed).to_json())
}

/// Decrypts a `pgv1` value made under `key` for `binding`: the original JSON text.
pub fn open(
    key: &DataKey,
    binding: &Binding,
    sealed: Ciphertext,
) -> Result<String, TransformError> {
    require_kind(key, KeyKind::Aead)?;
    sealed.check(Scheme::Encrypt, key)?;
    let aad = associated_data(Scheme::Encrypt.prefix(), key.name(), key.version(), binding);
    let aead = key.aead().map_err(|_| does_not_authenticate(binding))?;
    let plain = aead
        .open_owned(&aad, sealed.into_payload())
        .map_err(|_| does_not_authenticate(binding))?;
    original_json(plain, binding)
}

/// Refuses text that is not one JSON value, so that what opens is always JSON.
pub(super) fn require_json(
    json: &str,
    transform: &'static str,
    binding: &Binding,
) -> Result<(), TransformError> {
    serde_json::from_str::<serde::de::IgnoredAny>(json)
        .map(|_| ())
        .map_err(|_| super::input_type(transform, binding, "JSON values"))
}

/// The authenticated plaintext back as text (it was JSON text when sealed), taken over
/// without a copy; bytes that are not UTF-8 are zeroized with the refusal.
pub(super) fn original_json(
    mut plain: Zeroizing<Vec<u8>>,
    binding: &Binding,
) -> Result<String, TransformError> {
    String::from_utf8(std::mem::take(&mut *plain)).map_err(|refused| {
        drop(Zeroizing::new(refused.into_bytes()));
        does_not_authenticate(binding)
    })
}

pub(super) fn does_not_authenticate(binding: &Binding) -> TransformError {
    TransformError::DoesNotAuthenticate {
        class: binding.class.to_owned(),
    }
}

//! Keyed pseudonyms: HMAC-SHA256 (ring) over the associated data of scheme `pgh1` (key
//! name, version, class, subject) followed by the length-prefixed JSON text; output
//! `"pgh1.<key>.<version>.<base64url(32-byte tag)>"`.
//!
//! One-way for anyone without the key. Hides: the value. Does NOT hide: equality within a
//! class and key version (a pseudonym is linkable by design: the same customer id gives the
//! same pseudonym in every record), frequencies; and a holder of the key can tabulate any
//! domain. A new key version gives new, unlinkable pseudonyms.

use super::encrypt::require_json;
use super::envelope::{associated_data, put, Ciphertext, Scheme};
use super::{require_kind, Binding, TransformError};
use crate::keys::{DataKey, KeyKind};
use ring::hmac;

/// The pseudonym of one JSON value; the output is a JSON string.
pub fn pseudonym(key: &DataKey, binding: &Binding, json: &str) -> Result<String, TransformError> {
    require_kind(key, KeyKind::Hmac)?;
    require_json(json, "hash", binding)?;
    let mut message = associated_data(Scheme::Hash.prefix(), key.name(), key.version(), binding);
    put(&mut message, json.as_bytes());
    let tag = hmac::sign(key.hmac(), &message);
    let payload = tag.as_ref().to_vec();
    Ok(Ciphertext::new(Scheme::Hash, key.name(), key.version(), payload).to_json())
}

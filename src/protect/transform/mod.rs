//! What happens to ONE protected JSON value.
//!
//! Every transform takes the exact JSON text of the value (`"4111..."`, `1.10`, `{"a":1}`)
//! and returns the JSON text to put in its place, so that the reversible ones give back the
//! original bytes: `1.10` stays `1.10`, an integer beyond 2^53 stays exact, a string keeps
//! its escapes. Keys come in as [`DataKey`]s (the keyring fetches them; nothing here does),
//! and each transform checks the key's [`KeyKind`] before touching its secret.
//!
//! A [`Binding`] (field class, and the data subject when per-subject keys are on) is bound
//! into keyed outputs as associated data (encrypt, tokenize, hash: a value moved to another
//! class or subject does not open) or HMAC input (date shift); FPE takes the class alone
//! as its tweak (moved to another class, it decrypts to a wrong value).
//!
//! Errors never carry the value, the plaintext or key bytes: only class and key names,
//! versions and the kind of failure.
//!
//! | transform | reversible | output |
//! | --- | --- | --- |
//! | [`encrypt`] | yes (key version in the output) | `"pgv1.<key>.<version>.<b64url>"` |
//! | [`tokenize`] | yes, deterministic | `"pgt1.<key>.<version>.<b64url>"` |
//! | [`fpe`] | yes, deterministic, no version, no integrity | same format as the input |
//! | [`mask`] | no | `"****1111"` |
//! | [`redact`] | no | member removed, `null` or a constant |
//! | [`hash`] | no, deterministic | `"pgh1.<key>.<version>.<b64url>"` |
//! | [`generalize`] | no | `"1000..1999"`, `"1987"`, `"SW1A"` |
//! | [`date_shift`] | yes given key and subject | a date |

pub mod date_shift;
pub mod encrypt;
mod envelope;
mod ff1;
pub mod fpe;
pub mod generalize;
pub mod hash;
pub mod luhn;
pub mod mask;
pub mod redact;
pub mod spec;
pub mod tokenize;

#[cfg(test)]
mod tests;

pub use crate::protect::document::Edit;
pub use envelope::{Ciphertext, Scheme};
pub use spec::{MaskSpec, ProtectSpec};

use crate::keys::aead::Nonces;
use crate::keys::{DataKey, KeyKind};

/// What a protected value is bound to: its field class and, when per-subject keys are on,
/// the data subject it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The field class name (`pan`, `email`, ...).
    pub class: &'a str,
    /// The data subject id, when the class uses per-subject keys.
    pub subject: Option<&'a str>,
}

impl<'a> Binding<'a> {
    /// A binding to a class only.
    pub fn class(class: &'a str) -> Self {
        Self {
            class,
            subject: None,
        }
    }
}

/// Why a transform failed. Messages name classes, keys, versions and the kind of failure,
/// never the value, the plaintext or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The protected value is not a well-formed value of the expected scheme.
    #[error("not a well-formed {expected} value")]
    Malformed {
        /// What was expected (`pgv1 ciphertext`, `pgt1 token`, ...).
        expected: &'static str,
    },
    /// The key given is not of the kind the transform needs.
    #[error("key {key} is a {found:?} key; this transform needs a {expected:?} key")]
    WrongKeyKind {
        /// Key name.
        key: String,
        /// The kind the transform needs.
        expected: KeyKind,
        /// The kind it got.
        found: KeyKind,
    },
    /// The value names another key or key version than the one given.
    #[error(
        "value is protected under key {wanted} v{wanted_version}, not {given} v{given_version}"
    )]
    KeyMismatch {
        /// Key named in the value.
        wanted: String,
        /// Version named in the value.
        wanted_version: u32,
        /// Key given.
        given: String,
        /// Version given.
        given_version: u32,
    },
    /// Authentication failed: wrong key, another class or subject, or a modified value.
    #[error("class {class}: protected value does not authenticate")]
    DoesNotAuthenticate {
        /// Field class.
        class: String,
    },
    /// The JSON value is not of a type (or shape) the transform accepts.
    #[error("{transform} on class {class} accepts {accepts} only")]
    InputType {
        /// Transform name.
        transform: &'static str,
        /// Field class.
        class: String,
        /// What it accepts.
        accepts: &'static str,
    },
    /// The value is too short for the FPE domain (radix^length below 10^6, or below the
    /// class's declared `min_length`).
    #[error("class {class}: value too short for format-preserving encryption")]
    OutsideDomain {
        /// Field class.
        class: String,
    },
    /// The transform needs a key and none was given.
    #[error("class {class}: {transform} needs a key")]
    MissingKey {
        /// Transform name.
        transform: &'static str,
        /// Field class.
        class: String,
    },
    /// The transform needs a data subject and the binding has none.
    #[error("class {class}: {transform} needs a data subject")]
    MissingSubject {
        /// Transform name.
        transform: &'static str,
        /// Field class.
        class: String,
    },
    /// The class's transform is one-way.
    #[error("class {class}: {transform} is not reversible")]
    NotReversible {
        /// Transform name.
        transform: &'static str,
        /// Field class.
        class: String,
    },
    /// The system random generator failed.
    #[error("random generator unavailable")]
    Random,
}

/// Protects one value as `spec` says: the JSON text that replaces it, or removal.
/// `nonces`: where `encrypt` takes its nonce (one draw for a body's members).
pub fn protect(
    spec: &ProtectSpec,
    key: Option<&DataKey>,
    binding: &Binding,
    json: &str,
    nonces: &mut Nonces,
) -> Result<Edit, TransformError> {
    let need = |transform| key.ok_or_else(|| missing_key(transform, binding));
    let out = match spec {
        ProtectSpec::Encrypt { .. } => encrypt::seal_with(need("encrypt")?, binding, json, nonces)?,
        ProtectSpec::Tokenize { .. } => tokenize::tokenize(need("tokenize")?, binding, json)?,
        ProtectSpec::Fpe(fpe) => fpe::encrypt(need("fpe")?, binding, fpe, json)?,
        ProtectSpec::Mask(mask) => mask::mask(mask, binding, json)?,
        ProtectSpec::Redact(redact) => return Ok(redact::redact(redact)),
        ProtectSpec::Hash { .. } => hash::pseudonym(need("hash")?, binding, json)?,
        ProtectSpec::Generalize(g) => generalize::generalize(g, binding, json)?,
        ProtectSpec::DateShift(d) => date_shift::shift(need("date_shift")?, binding, d, json)?,
    };
    Ok(Edit::Replace(out))
}

/// Reverses [`protect`] for the reversible transforms (encrypt, tokenize, fpe, date
/// shift): the original JSON text. For encrypt and tokenize, parse the value with
/// [`Ciphertext::parse`] first to learn which key version to fetch.
pub fn reveal(
    spec: &ProtectSpec,
    key: Option<&DataKey>,
    binding: &Binding,
    protected: &str,
) -> Result<String, TransformError> {
    let need = |transform| key.ok_or_else(|| missing_key(transform, binding));
    match spec {
        ProtectSpec::Encrypt { .. } | ProtectSpec::Tokenize { .. } => {
            let key = need(spec.name())?;
            reveal_sealed(spec, key, binding, Ciphertext::parse(protected)?)
        }
        ProtectSpec::Fpe(fpe) => fpe::decrypt(need("fpe")?, binding, fpe, protected),
        ProtectSpec::DateShift(d) => {
            date_shift::unshift(need("date_shift")?, binding, d, protected)
        }
        other => Err(TransformError::NotReversible {
            transform: other.name(),
            class: binding.class.to_owned(),
        }),
    }
}

/// [`reveal`] of an `encrypt` or `tokenize` value already parsed as an envelope (taken:
/// an encrypted value opens in its own decoded payload).
pub fn reveal_sealed(
    spec: &ProtectSpec,
    key: &DataKey,
    binding: &Binding,
    sealed: Ciphertext,
) -> Result<String, TransformError> {
    match spec {
        ProtectSpec::Encrypt { .. } => encrypt::open(key, binding, sealed),
        ProtectSpec::Tokenize { .. } => tokenize::detokenize(key, binding, &sealed),
        other => Err(TransformError::NotReversible {
            transform: other.name(),
            class: binding.class.to_owned(),
        }),
    }
}

fn missing_key(transform: &'static str, binding: &Binding) -> TransformError {
    TransformError::MissingKey {
        transform,
        class: binding.class.to_owned(),
    }
}

/// Refuses a key of another kind than the transform needs.
fn require_kind(key: &DataKey, expected: KeyKind) -> Result<(), TransformError> {
    if key.kind() == expected {
        Ok(())
    } else {
        Err(TransformError::WrongKeyKind {
            key: key.name().to_owned(),
            expected,
            found: key.kind(),
        })
    }
}

/// The string inside a JSON string value, or the transform's type error.
fn json_string(
    json: &str,
    transform: &'static str,
    binding: &Binding,
) -> Result<String, TransformError> {
    serde_json::from_str::<String>(json).map_err(|_| input_type(transform, binding, "strings"))
}

/// The characters of a JSON string literal in which nothing is escaped (and nothing
/// needs to be): `json` is exactly `"`, characters other than `"`, `\` and the controls
/// below U+0020, `"`. What serde_json would read from it, without a parse.
pub(super) fn unescaped_string(json: &str) -> Option<&str> {
    let text = json.strip_prefix('"')?.strip_suffix('"')?;
    // Byte by byte (every byte JSON escapes is ASCII, and no byte of a longer UTF-8
    // sequence is), without stopping at the first: a loop with no exit is vectorised, and
    // these texts are a few dozen bytes.
    let escaped = text
        .bytes()
        .fold(false, |seen, b| seen | escaped_in_json(char::from(b)));
    (!escaped).then_some(text)
}

/// Whether JSON writes `c` escaped inside a string.
pub(super) fn escaped_in_json(c: char) -> bool {
    c == '"' || c == '\\' || c < ' '
}

/// `s` as a JSON string literal (serialised from the borrow: no `Value` copy in between).
pub(crate) fn to_json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a str always serialises")
}

fn input_type(transform: &'static str, binding: &Binding, accepts: &'static str) -> TransformError {
    TransformError::InputType {
        transform,
        class: binding.class.to_owned(),
        accepts,
    }
}

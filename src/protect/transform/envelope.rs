//! The self-describing string format of keyed outputs, and the associated data that binds
//! them.
//!
//! `<scheme>.<key name>.<version>.<payload>` where scheme is `pgv1` (randomized AES-256-GCM),
//! `pgt1` (AES-256-SIV token) or `pgh1` (HMAC-SHA256 pseudonym), the version is a decimal
//! u32 without leading zeros and the payload is base64url without padding (canonical: a
//! payload has exactly one spelling, which keeps tokens comparable as strings). The key
//! name may itself contain dots: the version and payload are the last two fields.
//!
//! Associated data is length-prefixed (`u64` big-endian length before every string), so no
//! two different (scheme, key, version, class, subject) tuples encode alike; a one-byte
//! flag tells "no subject" from "empty subject".

use super::{Binding, TransformError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::fmt;

/// Which keyed transform produced a protected string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `pgv1`: randomized AES-256-GCM ([`encrypt`](super::encrypt)).
    Encrypt,
    /// `pgt1`: deterministic AES-256-SIV token ([`tokenize`](super::tokenize)).
    Token,
    /// `pgh1`: HMAC-SHA256 pseudonym ([`hash`](super::hash)); one-way.
    Hash,
}

impl Scheme {
    /// The prefix naming the scheme in protected strings.
    pub const fn prefix(self) -> &'static str {
        match self {
            Scheme::Encrypt => "pgv1",
            Scheme::Token => "pgt1",
            Scheme::Hash => "pgh1",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Self> {
        [Scheme::Encrypt, Scheme::Token, Scheme::Hash]
            .into_iter()
            .find(|s| s.prefix() == prefix)
    }

    /// What a value of this scheme is called in errors.
    pub(crate) const fn expected(self) -> &'static str {
        match self {
            Scheme::Encrypt => "pgv1 ciphertext",
            Scheme::Token => "pgt1 token",
            Scheme::Hash => "pgh1 pseudonym",
        }
    }
}

/// A parsed protected string: scheme, key name and version (so the caller can fetch that
/// key version), and the payload. `Debug` leaves the payload out.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext {
    scheme: Scheme,
    key: String,
    version: u32,
    payload: Vec<u8>,
}

const MALFORMED: TransformError = TransformError::Malformed {
    expected: "pgv1/pgt1/pgh1 protected",
};

impl Ciphertext {
    /// Parses the JSON text of a protected value (a JSON string, quotes included).
    pub fn parse(json: &str) -> Result<Self, TransformError> {
        // Ours never need escapes: read in place, without a JSON parse.
        if let Some(content) = super::unescaped_string(json) {
            return Self::parse_str(content);
        }
        // Anything else is decoded first (and is then refused by `parse_str` unless its
        // escapes spell a well-formed value).
        match serde_json::from_str::<&str>(json) {
            Ok(s) => Self::parse_str(s),
            Err(_) => {
                let s = serde_json::from_str::<String>(json).map_err(|_| MALFORMED)?;
                Self::parse_str(&s)
            }
        }
    }

    /// Parses the content of a protected string (no JSON quotes).
    pub fn parse_str(s: &str) -> Result<Self, TransformError> {
        let (prefix, rest) = s.split_once('.').ok_or(MALFORMED)?;
        let scheme = Scheme::from_prefix(prefix).ok_or(MALFORMED)?;
        // The payload and version are the last two fields: the last two dots are found from
        // the end (a vectorised search: every revealed value passes here, and the payload,
        // base64url without dots, is most of its length).
        let payload_dot = memchr::memrchr(b'.', rest.as_bytes()).ok_or(MALFORMED)?;
        let version_dot =
            memchr::memrchr(b'.', &rest.as_bytes()[..payload_dot]).ok_or(MALFORMED)?;
        let (key, version, payload) = (
            &rest[..version_dot],
            &rest[version_dot + 1..payload_dot],
            &rest[payload_dot + 1..],
        );
        if key.is_empty() || payload.is_empty() {
            return Err(MALFORMED);
        }
        let canonical_version = version.bytes().all(|b| b.is_ascii_digit())
            && !(version.len() > 1 && version.starts_with('0'));
        let version = match version.parse::<u32>() {
            Ok(v) if canonical_version => v,
            _ => return Err(MALFORMED),
        };
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| MALFORMED)?;
        Ok(Self {
            scheme,
            key: key.to_owned(),
            version,
            payload,
        })
    }

    /// Which transform produced it.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The name of the key it was made under.
    pub fn key_name(&self) -> &str {
        &self.key
    }

    /// The version of that key.
    pub fn version(&self) -> u32 {
        self.version
    }

    pub(crate) fn new(scheme: Scheme, key: &str, version: u32, payload: Vec<u8>) -> Self {
        Self {
            scheme,
            key: key.to_owned(),
            version,
            payload,
        }
    }

    pub(crate) fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload, taken: opening decrypts in the decoded bytes themselves.
    pub(crate) fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// The protected string as JSON text (quoted, escaped where the key name needs it).
    /// Written straight into one buffer: every protected value of every body passes here.
    pub(crate) fn to_json(&self) -> String {
        // The prefix, the version's digits and base64url never need escaping in JSON; a
        // key name could (the format allows any name), and then serde_json escapes all.
        if self.key.chars().any(super::escaped_in_json) {
            return super::to_json_string(&self.to_string());
        }
        let mut json = String::with_capacity(self.key.len() + self.payload.len() * 4 / 3 + 24);
        json.push('"');
        self.push_to(&mut json);
        json.push('"');
        json
    }

    /// Appends the protected string to `out`, the payload encoded in place.
    fn push_to(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str(self.scheme.prefix());
        out.push('.');
        out.push_str(&self.key);
        // Writing to a String cannot fail.
        let _ = write!(out, ".{}.", self.version);
        URL_SAFE_NO_PAD.encode_string(&self.payload, out);
    }

    /// Refuses a value of another scheme, or one made under another key or version than
    /// `key`, before any crypto runs.
    pub(crate) fn check(
        &self,
        scheme: Scheme,
        key: &crate::keys::DataKey,
    ) -> Result<(), TransformError> {
        if self.scheme != scheme {
            return Err(TransformError::Malformed {
                expected: scheme.expected(),
            });
        }
        if self.key != key.name() || self.version != key.version() {
            return Err(TransformError::KeyMismatch {
                wanted: self.key.clone(),
                wanted_version: self.version,
                given: key.name().to_owned(),
                given_version: key.version(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.push_to(&mut text);
        f.write_str(&text)
    }
}

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ciphertext")
            .field("scheme", &self.scheme)
            .field("key", &self.key)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Associated data binding a keyed output to its scheme (`label`), key name and version,
/// field class and subject.
pub(crate) fn associated_data(label: &str, key: &str, version: u32, binding: &Binding) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + key.len() + binding.class.len());
    out.extend_from_slice(b"privgate");
    put(&mut out, label.as_bytes());
    put(&mut out, key.as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    put(&mut out, binding.class.as_bytes());
    match binding.subject {
        None => out.push(0),
        Some(subject) => {
            out.push(1);
            put(&mut out, subject.as_bytes());
        }
    }
    out
}

/// Appends `bytes` with its length in front.
pub(crate) fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_well_formed_strings() {
        let ok = Ciphertext::parse("\"pgv1.pan.3.AAEC\"").unwrap();
        assert_eq!(
            (ok.scheme(), ok.key_name(), ok.version()),
            (Scheme::Encrypt, "pan", 3)
        );
        assert_eq!(ok.payload(), &[0, 1, 2]);
        assert_eq!(ok.to_json(), "\"pgv1.pan.3.AAEC\"");
        let dotted = Ciphertext::parse_str("pgt1.subject.c-17.12.AAEC").unwrap();
        assert_eq!((dotted.key_name(), dotted.version()), ("subject.c-17", 12));
        for bad in [
            "pgv1.pan.3.AAEC",              // not JSON
            "\"pgx1.pan.3.AAEC\"",          // unknown scheme
            "\"pgv1.pan.03.AAEC\"",         // non-canonical version
            "\"pgv1.pan.+3.AAEC\"",         // sign
            "\"pgv1.pan.4294967296.AAEC\"", // beyond u32
            "\"pgv1..3.AAEC\"",             // empty key
            "\"pgv1.pan.3.\"",              // empty payload
            "\"pgv1.pan.3.AAEC=\"",         // padding
            "\"pgv1.pan.3.AAF\"",           // non-canonical trailing bits
            "\"pgv1.pan.3.AA+C\"",          // not url-safe
            "\"pgv1.3.AAEC\"",              // missing field
            "17",
        ] {
            assert!(Ciphertext::parse(bad).is_err(), "{bad}");
        }
        assert!(!format!("{ok:?}").contains("AAEC"));
    }

    proptest::proptest! {
        /// The JSON text written in one buffer is what serde_json writes for the string,
        /// for any key name (quotes, backslashes, control characters, other scripts) and
        /// payload, and it parses back to the same value.
        #[test]
        fn json_text_is_serde_jsons(
            key in proptest::prop_oneof!["[a-z_.-]{1,12}", ".{1,12}", "[\\x00-\\x1f\"\\\\a]{1,6}", "[\\x00\\x1e\\x1f\\x20\\x7f\"\\\\a]{1,4}"],
            version in proptest::prelude::any::<u32>(),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..80),
            scheme in proptest::sample::select(vec![Scheme::Encrypt, Scheme::Token, Scheme::Hash]),
        ) {
            let sealed = Ciphertext::new(scheme, &key, version, payload);
            let json = sealed.to_json();
            proptest::prop_assert_eq!(&json, &crate::protect::transform::to_json_string(&sealed.to_string()));
            proptest::prop_assert_eq!(Ciphertext::parse(&json).ok(), Some(sealed));
        }

        /// `parse` reads a literal as serde_json does, whether it takes the path without a
        /// parse (nothing escaped) or not: the same value from an escaped spelling, the same
        /// refusal of a raw quote, backslash or control character.
        #[test]
        fn parses_what_serde_json_reads(
            key in "[a-z]{1,8}",
            version in 0u32..1000,
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40),
            edit in 0usize..3,
            at in proptest::prelude::any::<proptest::sample::Index>(),
            extra in proptest::sample::select(vec!['"', '\\', '\u{1}', '\n', 'a', '\u{7f}', 'é', '.']),
        ) {
            let json = Ciphertext::new(Scheme::Encrypt, &key, version, payload).to_json();
            // All ASCII: every index is a character boundary.
            let inner = &json[1..json.len() - 1];
            let i = at.index(inner.len());
            let edited = match edit {
                0 => json.clone(),
                1 => format!("\"{}\\u{:04x}{}\"", &inner[..i], inner.as_bytes()[i], &inner[i + 1..]),
                _ => format!("\"{}{}{}\"", &inner[..i], extra, &inner[i..]),
            };
            let read = serde_json::from_str::<String>(&edited)
                .ok()
                .and_then(|s| Ciphertext::parse_str(&s).ok());
            proptest::prop_assert_eq!(Ciphertext::parse(&edited).ok(), read);
        }
    }

    #[test]
    fn associated_data_is_unambiguous() {
        let ad = |key, class, subject| associated_data("pgv1", key, 1, &Binding { class, subject });
        assert_ne!(ad("ab", "c", None), ad("a", "bc", None));
        assert_ne!(ad("k", "c", None), ad("k", "c", Some("")));
        assert_ne!(ad("k", "c", Some("1")), ad("k", "c", Some("2")));
        assert_ne!(
            associated_data("pgv1", "k", 1, &Binding::class("c")),
            associated_data("pgt1", "k", 1, &Binding::class("c"))
        );
        assert_ne!(
            associated_data("pgv1", "k", 1, &Binding::class("c")),
            associated_data("pgv1", "k", 2, &Binding::class("c"))
        );
    }
}

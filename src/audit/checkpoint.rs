//! Checkpoints: (replica, seq, hash) of the chain's head, MAC'd and written to a separate
//! sink, so whoever controls the log file cannot silently rewrite and re-chain it, nor cut
//! its tail off before the last checkpoint.

use super::record::hex;
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::Zeroizing;

/// Shortest checkpoint key accepted: 256 bits, HMAC-SHA256's full strength.
pub const MIN_KEY_BYTES: usize = 32;

/// A checkpoint line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Replica whose chain it pins.
    pub replica: String,
    /// Sequence number of the record it pins.
    pub seq: u64,
    /// That record's hash.
    pub hash: String,
    /// When it was written, Unix ms.
    pub time_ms: i64,
    /// HMAC-SHA256 (hex) over `replica`, `seq`, `hash`, `time_ms`.
    pub mac: String,
}

/// An HMAC-SHA256 key of the audit trail: one MACs checkpoints, another (a separate file)
/// turns data-subject ids into pseudonyms.
pub struct AuditKey(ring::hmac::Key);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// Reads a key file (raw bytes, at least [`MIN_KEY_BYTES`]); errors name the file and
    /// never show content.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        Self::read(path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// [`from_file`](Self::from_file) for callers that name the file themselves (the
    /// configuration's problems): the error is what is wrong with it, without its path.
    pub fn read(path: &Path) -> Result<Self, String> {
        let bytes =
            Zeroizing::new(std::fs::read(path).map_err(|e| format!("cannot read audit key: {e}"))?);
        Self::from_bytes(&bytes)
    }

    /// A key from raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!("audit key must be at least {MIN_KEY_BYTES} bytes"));
        }
        Ok(Self(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes)))
    }

    fn message(replica: &str, seq: u64, hash: &str, time_ms: i64) -> Vec<u8> {
        // Length-prefixed so that no two different field tuples give the same message.
        let mut m = Vec::new();
        for part in [
            replica.as_bytes(),
            &seq.to_be_bytes(),
            hash.as_bytes(),
            &time_ms.to_be_bytes(),
        ] {
            m.extend_from_slice(&(part.len() as u64).to_be_bytes());
            m.extend_from_slice(part);
        }
        m
    }

    /// A checkpoint for the record (`seq`, `hash`) of `replica`.
    pub fn checkpoint(&self, replica: &str, seq: u64, hash: &str, time_ms: i64) -> Checkpoint {
        let tag = ring::hmac::sign(&self.0, &Self::message(replica, seq, hash, time_ms));
        Checkpoint {
            replica: replica.into(),
            seq,
            hash: hash.into(),
            time_ms,
            mac: hex(tag.as_ref()),
        }
    }

    /// The pseudonym of a data subject: HMAC-SHA256 of its id, hex. Stable for one key, so
    /// the trail can answer "who saw customer X" for whoever holds the key, and only them.
    pub fn pseudonym(&self, subject: &str) -> String {
        hex(ring::hmac::sign(&self.0, format!("subject:{subject}").as_bytes()).as_ref())
    }

    /// Whether a checkpoint's MAC is valid under this key (constant-time comparison).
    pub fn verifies(&self, c: &Checkpoint) -> bool {
        let Some(tag) = unhex(&c.mac) else {
            return false;
        };
        ring::hmac::verify(
            &self.0,
            &Self::message(&c.replica, c.seq, &c.hash, c.time_ms),
            &tag,
        )
        .is_ok()
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The pseudonym of a data subject under the subject's own keyring key (`s:` + hex
/// HMAC-SHA256 of its id): it can be recomputed only while the subject's keys exist, so it
/// dies with a crypto-shred and the trail can no longer be tied to the person.
pub fn subject_key_pseudonym(key: &crate::keys::DataKey, subject: &str) -> String {
    format!(
        "s:{}",
        super::hex(ring::hmac::sign(key.hmac(), subject.as_bytes()).as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231_test_case_2() {
        // RFC 4231 4.3: key "Jefe", data "what do ya want for nothing?". ring is the
        // primitive; this pins that we use HMAC-SHA256 and hex it as the standard does.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let tag = ring::hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn checkpoints_verify_only_unchanged_and_under_the_same_key() {
        let key = AuditKey::from_bytes(&[7u8; 32]).unwrap();
        let c = key.checkpoint("gw-1", 10, "ab", 1);
        assert!(key.verifies(&c));
        for forged in [
            Checkpoint {
                seq: 11,
                ..c.clone()
            },
            Checkpoint {
                hash: "ac".into(),
                ..c.clone()
            },
            Checkpoint {
                replica: "gw-2".into(),
                ..c.clone()
            },
            Checkpoint {
                mac: "00".into(),
                ..c.clone()
            },
        ] {
            assert!(!key.verifies(&forged), "{forged:?}");
        }
        assert!(!AuditKey::from_bytes(&[8u8; 32]).unwrap().verifies(&c));
        assert!(AuditKey::from_bytes(&[7u8; 31]).is_err());
        assert_eq!(format!("{key:?}"), "AuditKey(..)");
        let p = key.pseudonym("42");
        assert_eq!((p.len(), p == key.pseudonym("42")), (64, true));
        assert_ne!(p, key.pseudonym("43"));
        assert_ne!(p, AuditKey::from_bytes(&[9u8; 32]).unwrap().pseudonym("42"));
    }
}

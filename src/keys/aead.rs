//! The one AEAD wrapper: AES-256-GCM from ring, with a random 96-bit nonce per message.
//!
//! Sealed output is `nonce (12) || ciphertext || tag (16)`. Random nonces are safe up to
//! 2^32 messages per key (NIST SP 800-38D, 8.3); the keyring counts uses per key version
//! and rotates far below that. ring is already in the tree for TLS (no second AES
//! implementation to audit); `benches/transforms.rs` measures it against aes-gcm.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Key length in bytes.
pub const KEY_LEN: usize = 32;
/// Bytes `seal` adds to the plaintext (nonce and tag).
pub const OVERHEAD: usize = NONCE_LEN + 16;

/// Why sealing or opening failed. Deliberately says nothing more: a failed open is a wrong
/// key, wrong associated data or a modified ciphertext, and telling them apart helps only an
/// attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    /// The key is not 32 bytes.
    #[error("AEAD key must be 32 bytes")]
    KeyLength,
    /// The system random generator failed.
    #[error("random generator unavailable")]
    Random,
    /// Authentication failed (or the input is too short to be a sealed message).
    #[error("ciphertext does not authenticate")]
    Open,
}

/// An AES-256-GCM key as ring uses it (round keys and GHASH tables expanded, about 350 ns
/// of work): built once per data key version ([`crate::keys::DataKey::aead`]) rather than
/// per message. Like ring's own keys it is not zeroized on drop; the secret it came from is.
pub struct AeadKey(LessSafeKey);

impl AeadKey {
    /// The key for a 32-byte secret.
    pub fn new(secret: &[u8]) -> Result<Self, AeadError> {
        let unbound = UnboundKey::new(&AES_256_GCM, secret).map_err(|_| AeadError::KeyLength)?;
        Ok(Self(LessSafeKey::new(unbound)))
    }

    /// Encrypts `plaintext` bound to `aad` under a fresh random nonce.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
        self.seal_with(&mut Nonces::expecting(1), aad, plaintext)
    }

    /// [`seal`](Self::seal) under the next of `nonces`, for callers that seal several
    /// messages at once (a body's members).
    pub fn seal_with(
        &self,
        nonces: &mut Nonces,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, AeadError> {
        let nonce = nonces.take()?;
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| AeadError::Open)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts a message from [`AeadKey::seal`]; the plaintext is zeroized when dropped.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, AeadError> {
        self.open_owned(aad, sealed.to_vec())
    }

    /// [`open`](Self::open) in the caller's buffer (a protected value's decoded payload):
    /// the ciphertext is decrypted where it lies and the plaintext moved over the nonce, with
    /// no second buffer and no copy of the ciphertext. The buffer is zeroized when dropped,
    /// whether or not the message authenticates.
    pub fn open_owned(&self, aad: &[u8], sealed: Vec<u8>) -> Result<Zeroizing<Vec<u8>>, AeadError> {
        let mut buf = Zeroizing::new(sealed);
        if buf.len() < OVERHEAD {
            return Err(AeadError::Open);
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&buf[..NONCE_LEN]).map_err(|_| AeadError::Open)?;
        // In place, then shifted: ring's in-place open is its fast path (opening "within"
        // at an offset measured slower than copying the ciphertext out first).
        let len = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut buf[NONCE_LEN..])
            .map_err(|_| AeadError::Open)?
            .len();
        buf.copy_within(NONCE_LEN..NONCE_LEN + len, 0);
        buf.truncate(len);
        Ok(buf)
    }
}

/// Random nonces for the messages one task seals, drawn from the operating system's
/// generator (ring's `SystemRandom`) as they are needed, several per draw, each given out
/// once. Drawing costs a system call whatever its size (about 0.5 µs on this project's
/// machines): a body with seven encrypted members made seven, a sixth of protecting it.
/// The nonces are the same generator's bytes as before, never reused: only the calls are
/// fewer. Held by one task for one body (never shared or kept, so no copy of it can
/// outlive a fork); unused nonces are zeroed with it.
pub struct Nonces {
    drawn: Zeroizing<Vec<u8>>,
    /// How many nonces the next draw takes.
    batch: usize,
}

/// The most nonces one draw takes (a body with more members draws again).
const NONCE_BATCH_MAX: usize = 64;

impl Nonces {
    /// Nonces for about `count` messages: the first one asked for draws that many (at
    /// least one, at most 64); nothing is drawn before.
    pub fn expecting(count: usize) -> Self {
        Self {
            drawn: Zeroizing::new(Vec::new()),
            batch: count.clamp(1, NONCE_BATCH_MAX),
        }
    }

    /// The next unused nonce.
    fn take(&mut self) -> Result<[u8; NONCE_LEN], AeadError> {
        if self.drawn.is_empty() {
            self.drawn.resize(self.batch * NONCE_LEN, 0);
            if SystemRandom::new().fill(&mut self.drawn).is_err() {
                // Nothing of a failed draw is ever given out: the next take draws again.
                self.drawn.clear();
                return Err(AeadError::Random);
            }
        }
        let mut nonce = [0u8; NONCE_LEN];
        let rest = self.drawn.len() - NONCE_LEN;
        nonce.copy_from_slice(&self.drawn[rest..]);
        // Given out once: zeroed and cut from what is left.
        self.drawn[rest..].fill(0);
        self.drawn.truncate(rest);
        Ok(nonce)
    }
}

/// Encrypts `plaintext` bound to `aad` under a fresh random nonce.
pub fn seal(secret: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
    AeadKey::new(secret)?.seal(aad, plaintext)
}

/// Decrypts a message from [`seal`]; the plaintext is zeroized when dropped.
pub fn open(secret: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, AeadError> {
    AeadKey::new(secret)?.open(aad, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_drawn_in_batches_and_given_out_once() {
        let key = AeadKey::new(&[7u8; KEY_LEN]).unwrap();
        // Fewer expected than taken: the batch runs out and the next take draws again.
        let mut nonces = Nonces::expecting(3);
        let sealed: Vec<Vec<u8>> = (0..7)
            .map(|i| key.seal_with(&mut nonces, b"ad", &[i]).unwrap())
            .collect();
        let mut used: Vec<&[u8]> = sealed.iter().map(|s| &s[..NONCE_LEN]).collect();
        used.sort();
        used.dedup();
        assert_eq!(used.len(), 7, "a nonce was given out twice");
        assert!(used.iter().all(|n| n.iter().any(|&b| b != 0)));
        for (i, s) in sealed.iter().enumerate() {
            assert_eq!(&key.open(b"ad", s).unwrap()[..], &[i as u8]);
        }
        // What a draw leaves unused is all that remains, and nothing given out stays.
        assert_eq!(nonces.drawn.len(), 2 * NONCE_LEN);
        assert!(nonces
            .drawn
            .chunks(NONCE_LEN)
            .all(|left| !used.contains(&left)));
        // Nothing is drawn before the first take, and a batch is bounded.
        assert!(Nonces::expecting(1_000_000).drawn.is_empty());
        let mut big = Nonces::expecting(1_000_000);
        big.take().unwrap();
        assert_eq!(big.drawn.len(), (NONCE_BATCH_MAX - 1) * NONCE_LEN);
    }

    /// NIST GCM test vector (gcmEncryptExtIV256.rsp, [Keylen = 256] [IVlen = 96]
    /// [PTlen = 128] [AADlen = 128] [Taglen = 128], Count = 0), checked through `open`
    /// since `seal` picks its own nonce.
    #[test]
    fn opens_a_nist_gcm_vector() {
        let hex = |s: &str| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        let key = hex("92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b");
        let iv = hex("ac93a1a6145299bde902f21a");
        let pt = hex("2d71bcfa914e4ac045b2aa60955fad24");
        let aad = hex("1e0889016f67601c8ebea4943bc23ad6");
        let ct = hex("8995ae2e6df3dbf96fac7b7137bae67f");
        let tag = hex("eca5aa77d51d4a0a14d9c51e1da474ab");
        let sealed = [iv, ct, tag].concat();
        assert_eq!(open(&key, &aad, &sealed).unwrap().as_slice(), pt.as_slice());
    }

    #[test]
    fn round_trips_and_rejects_any_change() {
        let key = [7u8; KEY_LEN];
        let sealed = seal(&key, b"aad", b"secret").unwrap();
        assert_eq!(sealed.len(), 6 + OVERHEAD);
        assert_eq!(open(&key, b"aad", &sealed).unwrap().as_slice(), b"secret");
        assert_ne!(
            seal(&key, b"aad", b"secret").unwrap(),
            sealed,
            "nonces are fresh"
        );
        for bit in 0..sealed.len() * 8 {
            let mut flipped = sealed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                open(&key, b"aad", &flipped),
                Err(AeadError::Open),
                "bit {bit}"
            );
        }
        assert_eq!(open(&key, b"other", &sealed), Err(AeadError::Open));
        assert_eq!(open(&[8u8; KEY_LEN], b"aad", &sealed), Err(AeadError::Open));
        assert_eq!(
            open(&key, b"aad", &sealed[..OVERHEAD - 1]),
            Err(AeadError::Open)
        );
        assert_eq!(seal(&[0u8; 16], b"", b"x"), Err(AeadError::KeyLength));
    }
}

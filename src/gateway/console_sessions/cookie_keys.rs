//! What a console cookie's id gives, and the store does not: the key its row is found by,
//! the key that seals what the row holds, and the session's CSRF token.
//!
//! A cookie id is 256 random bits (base64url). The row key is its SHA-256, so a store dump
//! names no cookie. The sealing key and the CSRF token come from HKDF-SHA256 (RFC 5869,
//! ring's `hkdf`) over the id, each under its own `info` label, so neither tells anything
//! of the other or of the row key; whoever reads the store without the cookie can open no
//! sealed token or verifier, and every replica given the cookie derives the same values.
//! Sealing is the keyring's one AEAD wrapper (AES-256-GCM, random nonce), with the row key
//! and the sealed value's purpose as associated data, so a sealed value moved to another
//! row or column does not open.

use crate::keys::aead;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hkdf::{Salt, HKDF_SHA256};
use zeroize::Zeroizing;

/// HKDF's salt (RFC 5869 3.1: optional with uniformly random input keying material; a
/// fixed one here only separates privgate's console from any other use of the same bits).
const SALT: &[u8] = b"privgate console cookie v1";

/// What a derived value is for; each is a distinct HKDF `info` and AEAD associated data.
#[derive(Clone, Copy)]
pub(super) enum Purpose {
    /// The key sealing a session's access token.
    SessionToken,
    /// A session's CSRF token.
    Csrf,
    /// The key sealing a sign-in's PKCE verifier.
    SignInVerifier,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::SessionToken => b"privgate console session access token",
            Self::Csrf => b"privgate console session csrf",
            Self::SignInVerifier => b"privgate console sign-in pkce verifier",
        }
    }
}

/// A cookie's id, decoded: only a value this gateway could have issued (43 base64url
/// characters, 256 bits) is one.
pub(super) struct CookieId {
    bits: Zeroizing<[u8; 32]>,
    /// SHA-256 of the cookie value, base64url: the store's row key.
    digest: String,
}

impl CookieId {
    /// The id a cookie value carries; `None` for anything not shaped like one of ours.
    pub(super) fn parse(cookie: &str) -> Option<Self> {
        let decoded = Zeroizing::new(URL_SAFE_NO_PAD.decode(cookie).ok()?);
        let mut bits = Zeroizing::new([0u8; 32]);
        if decoded.len() != bits.len() {
            return None;
        }
        bits.copy_from_slice(&decoded);
        Some(Self {
            bits,
            digest: digest(cookie),
        })
    }

    /// The store's key for this cookie's row.
    pub(super) fn digest(&self) -> &str {
        &self.digest
    }

    /// The session's CSRF token (base64url, 43 characters).
    pub(super) fn csrf(&self) -> Option<String> {
        Some(URL_SAFE_NO_PAD.encode(self.derive(Purpose::Csrf)?.as_ref()))
    }

    /// `plaintext` sealed for this cookie's row, base64url.
    pub(super) fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> Option<String> {
        let key = self.derive(purpose)?;
        let sealed = aead::seal(key.as_ref(), &self.aad(purpose), plaintext).ok()?;
        Some(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// What [`CookieId::seal`] sealed; `None` when it does not open under this cookie
    /// (another cookie's row, another purpose, or altered).
    pub(super) fn open(&self, purpose: Purpose, sealed: &str) -> Option<Zeroizing<String>> {
        let sealed = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let key = self.derive(purpose)?;
        let plain = aead::open(key.as_ref(), &self.aad(purpose), &sealed).ok()?;
        let text = std::str::from_utf8(&plain).ok()?;
        Some(Zeroizing::new(text.to_owned()))
    }

    fn aad(&self, purpose: Purpose) -> Vec<u8> {
        [purpose.label(), b"\0", self.digest.as_bytes()].concat()
    }

    fn derive(&self, purpose: Purpose) -> Option<Zeroizing<[u8; 32]>> {
        let prk = Salt::new(HKDF_SHA256, SALT).extract(self.bits.as_ref());
        // HKDF_SHA256 as the output length: 32 bytes, an AES-256 key or a CSRF token.
        let info = [purpose.label()];
        let okm = prk.expand(&info, HKDF_SHA256).ok()?;
        let mut out = Zeroizing::new([0u8; 32]);
        okm.fill(out.as_mut()).ok()?;
        Some(out)
    }
}

/// SHA-256 of `value`, base64url: how the store names a cookie or an OAuth `state`.
pub(super) fn digest(value: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

//! A KEK that never leaves a PKCS#11 module (an HSM, or SoftHSM2): an AES-256 secret key
//! object, non-extractable and sensitive, that wraps and unwraps data keys inside the module
//! with CKM_AES_GCM. The output has the same layout as [`super::aead::seal`] (12-byte
//! nonce, ciphertext, 16-byte tag); the nonce is drawn here from the system CSPRNG, since
//! modules differ in whether they generate GCM IVs themselves.

use super::{random, KeyError};
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

const NONCE_LEN: usize = 12;
const TAG_BITS: u64 = 128;

/// Where the KEK lives in a PKCS#11 module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmLocation<'a> {
    /// The module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: &'a Path,
    /// Label of the token holding the key.
    pub token_label: &'a str,
    /// Label of the AES key object.
    pub key_label: &'a str,
}

/// A logged-in session and the KEK's handle in it.
#[derive(Clone)]
pub struct HsmKek {
    session: Arc<Mutex<Session>>,
    key: ObjectHandle,
    label: String,
}

impl fmt::Debug for HsmKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HsmKek")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

fn hsm_error(what: &str) -> impl Fn(cryptoki::error::Error) -> KeyError + '_ {
    move |e| KeyError::KekSource(format!("PKCS#11: {what}: {e}"))
}

fn login(at: &HsmLocation<'_>, pin: &str) -> Result<Session, KeyError> {
    let module = Pkcs11::new(at.module).map_err(hsm_error("cannot load the module"))?;
    match module.initialize(CInitializeArgs::OsThreads) {
        Ok(()) | Err(cryptoki::error::Error::AlreadyInitialized) => {}
        Err(e) => return Err(hsm_error("cannot initialise the module")(e)),
    }
    let slots = module
        .get_slots_with_token()
        .map_err(hsm_error("cannot list slots"))?;
    let slot = slots
        .into_iter()
        .find(|s| {
            module
                .get_token_info(*s)
                .is_ok_and(|t| t.label().trim_end() == at.token_label)
        })
        .ok_or_else(|| {
            KeyError::KekSource(format!("PKCS#11: no token labelled `{}`", at.token_label))
        })?;
    let session = module
        .open_rw_session(slot)
        .map_err(hsm_error("cannot open a session"))?;
    session
        .login(UserType::User, Some(&AuthPin::new(pin.to_owned())))
        .map_err(hsm_error("login refused (wrong PIN?)"))?;
    Ok(session)
}

fn key_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

impl HsmKek {
    /// Logs in and finds the KEK object by label (exactly one must exist).
    pub fn open(at: &HsmLocation<'_>, pin: &str) -> Result<Self, KeyError> {
        let session = login(at, pin)?;
        let found = session
            .find_objects(&key_template(at.key_label))
            .map_err(hsm_error("cannot search for the key"))?;
        let [key] = found[..] else {
            return Err(KeyError::KekSource(format!(
                "PKCS#11: expected one AES key labelled `{}` on the token, found {}",
                at.key_label,
                found.len()
            )));
        };
        Ok(Self {
            session: Arc::new(Mutex::new(session)),
            key,
            label: at.key_label.to_owned(),
        })
    }

    /// Makes a new AES-256 KEK in the module: token object, sensitive, never extractable.
    /// Refuses if a key with that label exists.
    pub fn generate(at: &HsmLocation<'_>, pin: &str) -> Result<(), KeyError> {
        let session = login(at, pin)?;
        let existing = session
            .find_objects(&key_template(at.key_label))
            .map_err(hsm_error("cannot search for the key"))?;
        if !existing.is_empty() {
            return Err(KeyError::KekSource(format!(
                "PKCS#11: a key labelled `{}` exists already",
                at.key_label
            )));
        }
        let template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::ValueLen(32.into()),
            Attribute::Label(at.key_label.as_bytes().to_vec()),
        ];
        session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(hsm_error("cannot generate the key"))?;
        Ok(())
    }

    /// The key object's label (stored with the keyring).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Seals inside the module: `nonce || ciphertext || tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let mut iv = nonce;
        let params =
            GcmParams::new(&mut iv, aad, TAG_BITS.into()).map_err(hsm_error("GCM parameters"))?;
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let sealed = session
            .encrypt(&Mechanism::AesGcm(params), self.key, plaintext)
            .map_err(hsm_error("wrap failed"))?;
        Ok([&nonce[..], &sealed].concat())
    }

    /// Opens inside the module; `None` if it does not authenticate.
    pub fn open_sealed(&self, aad: &[u8], sealed: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let mut iv = [0u8; NONCE_LEN];
        iv.copy_from_slice(nonce);
        let params = GcmParams::new(&mut iv, aad, TAG_BITS.into()).ok()?;
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        session
            .decrypt(&Mechanism::AesGcm(params), self.key, body)
            .ok()
            .map(zeroize::Zeroizing::new)
    }
}

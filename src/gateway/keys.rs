//! The gateway's keys for field protection: the keyring, as protection asks for keys.
//! New values get the newest version (AES-GCM uses counted against the usage bound, keys
//! created at version 1 on first use); old values get the version they name; per-subject
//! keys come from the subject index, and a shredded subject is reported as such.

use crate::keys::{DataKey, KeyError, KeyKind, Keyring};
use crate::protect::{KeySource, KeyUnavailable};
use std::sync::Arc;

/// The keyring behind protected routes; without one (no `[keys]`), every key asked for is
/// unavailable, so a protected body fails closed while routes that need no key still work.
pub struct GatewayKeys(pub Option<Keyring>);

impl GatewayKeys {
    fn keyring(&self) -> Result<&Keyring, KeyUnavailable> {
        self.0
            .as_ref()
            .ok_or_else(|| KeyUnavailable::Unavailable("no keyring configured ([keys])".into()))
    }
}

fn unavailable(e: KeyError) -> KeyUnavailable {
    match e {
        KeyError::Shredded => KeyUnavailable::Shredded,
        KeyError::Unknown { .. } | KeyError::Retired { .. } => {
            KeyUnavailable::Unknown(e.to_string())
        }
        other => KeyUnavailable::Unavailable(other.to_string()),
    }
}

impl KeySource for GatewayKeys {
    async fn current(&self, name: &str, kind: KeyKind) -> Result<Arc<DataKey>, KeyUnavailable> {
        // `ensure` creates version 1 on first use and refuses a name of another kind.
        let newest = self
            .keyring()?
            .ensure(name, kind)
            .await
            .map_err(unavailable)?;
        if kind != KeyKind::Aead {
            return Ok(newest);
        }
        // One encryption: counted against the version's usage bound (rotating at it).
        self.keyring()?
            .encryption_key(name, 1)
            .await
            .map_err(unavailable)
    }

    async fn version(&self, name: &str, version: u32) -> Result<Arc<DataKey>, KeyUnavailable> {
        self.keyring()?
            .version(name, version)
            .await
            .map_err(unavailable)
    }

    async fn subject_key(
        &self,
        subject: &str,
        kind: KeyKind,
    ) -> Result<Arc<DataKey>, KeyUnavailable> {
        self.keyring()?
            .subject_key(subject, kind)
            .await
            .map_err(unavailable)
    }
}

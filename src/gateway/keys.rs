//! The gateway's keys for field protection: the keyring when `[keys]` is configured.

use crate::keys::{DataKey, KeyKind, Keyring};
use crate::protect::{KeySource, KeyUnavailable};
use std::sync::Arc;

/// The keyring behind protected routes; without one (no `[keys]`), every key asked for is
/// unavailable, so a protected body fails closed while routes that need no key still work.
pub(crate) struct GatewayKeys(pub Option<Keyring>);

impl GatewayKeys {
    fn keyring(&self) -> Result<&Keyring, KeyUnavailable> {
        self.0
            .as_ref()
            .ok_or_else(|| KeyUnavailable::Unavailable("no keyring configured ([keys])".into()))
    }
}

impl KeySource for GatewayKeys {
    async fn current(&self, name: &str, kind: KeyKind) -> Result<Arc<DataKey>, KeyUnavailable> {
        KeySource::current(self.keyring()?, name, kind).await
    }

    async fn version(&self, name: &str, version: u32) -> Result<Arc<DataKey>, KeyUnavailable> {
        KeySource::version(self.keyring()?, name, version).await
    }

    async fn subject_key(
        &self,
        subject: &str,
        kind: KeyKind,
    ) -> Result<Arc<DataKey>, KeyUnavailable> {
        KeySource::subject_key(self.keyring()?, subject, kind).await
    }

    async fn subject_shredded(&self, subject: &str) -> Result<bool, KeyUnavailable> {
        match &self.0 {
            Some(keyring) => KeySource::subject_shredded(keyring, subject).await,
            // Shredding needs the keyring: without one no subject can have been shredded.
            None => Ok(false),
        }
    }
}

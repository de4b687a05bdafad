//! The gateway's keys for field protection: the keyring when `[keys]` is configured.

use crate::keys::{DataKey, KeyKind, Keyring, SubjectTag};
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
    /// `None` without a keyring: no subject key can be had, and none was shredded.
    type Subject = Option<SubjectTag>;

    fn subject(&self, subject_id: &str) -> Option<SubjectTag> {
        self.0
            .as_ref()
            .map(|keyring| keyring.subject_tag(subject_id))
    }

    async fn current(&self, name: &str, kind: KeyKind) -> Result<Arc<DataKey>, KeyUnavailable> {
        KeySource::current(self.keyring()?, name, kind).await
    }

    async fn version(&self, name: &str, version: u32) -> Result<Arc<DataKey>, KeyUnavailable> {
        KeySource::version(self.keyring()?, name, version).await
    }

    async fn subject_key(
        &self,
        subject: &Option<SubjectTag>,
        kind: KeyKind,
    ) -> Result<Arc<DataKey>, KeyUnavailable> {
        match (self.keyring()?, subject) {
            (keyring, Some(tag)) => KeySource::subject_key(keyring, tag, kind).await,
            // Not met: a subject gets its tag whenever there is a keyring.
            (_, None) => Err(KeyUnavailable::Unavailable(
                "a subject without its tag".into(),
            )),
        }
    }

    async fn subject_shredded(&self, subject: &Option<SubjectTag>) -> Result<bool, KeyUnavailable> {
        match (&self.0, subject) {
            (Some(keyring), Some(tag)) => KeySource::subject_shredded(keyring, tag).await,
            // Shredding needs the keyring: without one no subject can have been shredded.
            _ => Ok(false),
        }
    }
}

//! The gateway's keys for field protection: the keyring, as protection asks for keys.
//! (Placeholder until the keyring lands: every key is unavailable, so protected routes fail
//! closed.)

use crate::keys::{DataKey, KeyKind};
use crate::protect::{KeySource, KeyUnavailable};
use std::sync::Arc;

/// The keyring behind protected routes.
pub struct GatewayKeys;

impl KeySource for GatewayKeys {
    async fn current(&self, _: &str, _: KeyKind) -> Result<Arc<DataKey>, KeyUnavailable> {
        Err(KeyUnavailable::Unavailable("no keyring".into()))
    }
    async fn version(&self, _: &str, _: u32) -> Result<Arc<DataKey>, KeyUnavailable> {
        Err(KeyUnavailable::Unavailable("no keyring".into()))
    }
    async fn subject_key(&self, _: &str, _: KeyKind) -> Result<Arc<DataKey>, KeyUnavailable> {
        Err(KeyUnavailable::Unavailable("no keyring".into()))
    }
}

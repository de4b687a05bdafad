//! Running an approved operation: the same keyring and store calls as the direct
//! `privgate keys` and `privgate token` commands, so an approved operation does exactly
//! what the command would have done.

use super::Operation;
use crate::config::KeysConfig;
use crate::keys::kek::read_material;
use crate::keys::{admin, Keyring};
use crate::store::{now_ms, Store, TokenRevocation};

/// What an operation needs to run: the store, and for key operations the keyring (the
/// gateway's open one) or the `[keys]` section to open it from (the CLI).
pub struct Executor<'a> {
    /// The store operations and approvals live in.
    pub store: &'a Store,
    /// An open keyring, when the caller has one (the gateway).
    pub keyring: Option<&'a Keyring>,
    /// `[keys]`, to open the keyring (or read the KEK for a restore).
    pub keys: Option<&'a KeysConfig>,
}

impl Executor<'_> {
    /// Runs `op`; the error's text names keys by name only (it is stored as the outcome).
    pub async fn run(&self, op: &Operation) -> anyhow::Result<()> {
        match op {
            Operation::KeysShred { subject } => {
                self.keyring().await?.shred(subject).await?;
            }
            Operation::KeysRetire { name, min_version } => {
                self.keyring().await?.retire(name, *min_version).await?;
            }
            Operation::KeysRestore { backup, force } => {
                let material = read_material(&self.keys_config()?.kek)?;
                admin::restore(self.store, &material, backup, *force).await?;
                if let Some(ring) = self.keyring {
                    ring.reload().await?;
                }
            }
            Operation::TokenRevoke { jti, sub } => {
                let (what, value) = match (jti, sub) {
                    (Some(jti), _) => (TokenRevocation::Jti, jti),
                    (None, Some(sub)) => (TokenRevocation::Subject, sub),
                    (None, None) => anyhow::bail!("neither jti nor sub"),
                };
                self.store.revoke_token(what, value, now_ms()).await?;
            }
        }
        Ok(())
    }

    fn keys_config(&self) -> anyhow::Result<&KeysConfig> {
        self.keys
            .ok_or_else(|| anyhow::anyhow!("no [keys] section: key operations need the keyring"))
    }

    async fn keyring(&self) -> anyhow::Result<KeyringRef<'_>> {
        Ok(match self.keyring {
            Some(ring) => KeyringRef::Borrowed(ring),
            None => KeyringRef::Owned(
                Keyring::open_configured(self.store.clone(), self.keys_config()?).await?,
            ),
        })
    }
}

/// The gateway's open keyring, or one opened for this operation.
enum KeyringRef<'a> {
    Borrowed(&'a Keyring),
    Owned(Keyring),
}

impl std::ops::Deref for KeyringRef<'_> {
    type Target = Keyring;

    fn deref(&self) -> &Keyring {
        match self {
            Self::Borrowed(ring) => ring,
            Self::Owned(ring) => ring,
        }
    }
}

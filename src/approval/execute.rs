//! Running an approved operation: the same keyring and store calls as the direct
//! `privgate keys` and `privgate token` commands, so an approved operation does exactly
//! what the command would have done.

use super::Operation;
use crate::config::subject::SubjectIds;
use crate::config::KeysConfig;
use crate::keys::kek::read_material;
use crate::keys::{maintenance, Keyring};
use crate::store::{now_ms, Store, TokenRevocation};

/// A consent revocation's outcome summary when it withdrew the consent.
pub(crate) const CONSENT_REVOKED: &str = "consent revoked";

/// What an operation needs to run: the store, and for key operations the keyring (the
/// gateway's open one) or the `[keys]` section to open it from (the CLI).
pub(crate) struct Executor<'a> {
    /// The store operations and approvals live in.
    pub store: &'a Store,
    /// An open keyring, when the caller has one (the gateway).
    pub keyring: Option<&'a Keyring>,
    /// `[keys]`, to open the keyring (or read the KEK for a restore).
    pub keys: Option<&'a KeysConfig>,
    /// The spellings the routes give subject ids: an operation naming a subject in another
    /// is refused before it is recorded.
    pub subject_ids: SubjectIds,
}

impl Executor<'_> {
    /// Runs `op` and says what it did, for the operation's recorded outcome. Neither the
    /// summary nor an error's text names a data subject or holds key material (keys appear
    /// by name only).
    pub(crate) async fn run(&self, op: &Operation) -> anyhow::Result<String> {
        Ok(match op {
            Operation::KeysShred { subject } => match self.keyring().await?.shred(subject).await? {
                true => crate::keys::SHRED_DONE,
                false => "subject was already shredded",
            }
            .to_owned(),
            Operation::KeysRetire { name, min_version } => {
                let retired = self.keyring().await?.retire(name, *min_version).await?;
                format!("{name}: {retired} version(s) below v{min_version} retired")
            }
            Operation::KeysRestore { backup, force } => {
                let material = read_material(&self.keys_config()?.kek)?;
                let tables = maintenance::restore(self.store, &material, backup, *force).await?;
                if let Some(ring) = self.keyring {
                    ring.reload().await?;
                }
                format!(
                    "restored keyring {} ({} data key version(s), {} subject key(s))",
                    tables.keyring.keyring_id,
                    tables.data_keys.len(),
                    tables.subject_keys.len()
                )
            }
            Operation::TokenRevoke { jti, sub } => {
                let (what, value) = match (jti, sub) {
                    (Some(jti), _) => (TokenRevocation::Jti, jti),
                    (None, Some(sub)) => (TokenRevocation::Subject, sub),
                    (None, None) => anyhow::bail!("neither jti nor sub"),
                };
                self.store.revoke_token(what, value, now_ms()).await?;
                match what {
                    TokenRevocation::Jti => "token revoked",
                    TokenRevocation::Subject => "the subject's tokens issued until now revoked",
                }
                .to_owned()
            }
            Operation::ConsentRevoke { consent, subject } => {
                match super::consents::revoke(self.store, consent, subject, now_ms()).await? {
                    crate::store::Revocation::AlreadyRevoked => "consent was already revoked",
                    _ => CONSENT_REVOKED,
                }
                .to_owned()
            }
            Operation::RiskClear { principal } => {
                match self.store.risk_clear(principal, now_ms()).await? {
                    true => "risk suspension cleared",
                    false => "no risk suspension in force",
                }
                .to_owned()
            }
        })
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

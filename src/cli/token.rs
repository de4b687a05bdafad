//! `privgate token revoke`: put an access token (by `jti`) or every token of a subject
//! issued so far (by `sub`) on the deny-list in the configured store. Every replica reads
//! the list on each token-authenticated request, so the revocation holds everywhere once
//! this command returns.

use crate::config;
use crate::store::{now_ms, Store, TokenRevocation};
use anyhow::Context;
use std::path::PathBuf;

/// Arguments of `privgate token`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// Configuration file (its `[store]` section is used).
    #[arg(
        long,
        global = true,
        default_value = "privgate.toml",
        env = "PRIVGATE_CONFIG"
    )]
    config: PathBuf,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Refuse a token from now on.
    Revoke {
        /// The token's `jti`.
        #[arg(long, conflicts_with = "sub", required_unless_present = "sub")]
        jti: Option<String>,
        /// Every token of this subject issued up to now (`iat`).
        #[arg(long)]
        sub: Option<String>,
    },
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let store = Store::open_configured(&config.store)
        .await
        .context("opening the store")?;
    let Action::Revoke { jti, sub } = args.action;
    let (what, value) = match (jti, sub) {
        (Some(jti), _) => (TokenRevocation::Jti, jti),
        (None, Some(sub)) => (TokenRevocation::Subject, sub),
        (None, None) => anyhow::bail!("give --jti or --sub"),
    };
    if value.is_empty() {
        anyhow::bail!("the value must not be empty");
    }
    store.revoke_token(what, &value, now_ms()).await?;
    store.close().await;
    println!("revoked");
    Ok(())
}

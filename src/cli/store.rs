//! `privgate store migrate`: applies the store's pending schema migrations (sqlx's migrator)
//! as the role the configuration names, so that a gateway running with `[store] migrate =
//! false` and a role without DDL rights finds its schema ready.

use crate::config;
use crate::store::{Schema, Store};
use anyhow::Context;
use std::path::PathBuf;

/// Arguments of `privgate store`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// Configuration file (its `[store]` section is used; `migrate` is ignored here).
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
    /// Apply every pending schema migration (run it as a role that may create tables); a
    /// store made before sqlx's migrator has its recorded versions taken over first.
    Migrate,
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let Action::Migrate = args.action;
    let store = Store::open_configured_as(&config.store, Schema::Migrate)
        .await
        .context("migrating the store")?;
    store.close().await;
    println!("store schema is up to date");
    Ok(())
}

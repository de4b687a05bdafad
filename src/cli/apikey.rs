//! `privgate apikey`: create service API keys (printed once), list them (never a secret),
//! revoke them (effective on every replica at once: keys are read from the store on each
//! use).

use super::output::{Listing, Output};
use crate::config;
use crate::identity::api_keys;
use crate::store::{now_ms, Store};
use anyhow::Context;
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `privgate apikey`.
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
    /// Create a key for a service and print it once.
    Create {
        /// The service's principal id (Cedar `PrivGate::Service`).
        #[arg(long)]
        service: String,
        /// Roles, comma-separated.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Purposes the service may act for, comma-separated.
        #[arg(long, value_delimiter = ',')]
        purposes: Vec<String>,
    },
    /// List keys: id, service, roles, purposes, created, revoked.
    List {
        /// How to print the list (default: tab-separated, header first).
        #[arg(long, value_enum, default_value = "tsv")]
        output: Output,
    },
    /// Revoke a key by its id (the part after `pgk_`).
    Revoke {
        /// The key id.
        id: String,
    },
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let store = Store::open_configured(&config.store)
        .await
        .context("opening the store")?;
    let result = act(args.action, &store).await;
    store.close().await;
    result
}

async fn act(action: Action, store: &Store) -> anyhow::Result<()> {
    match action {
        Action::Create {
            service,
            roles,
            purposes,
        } => {
            if service.is_empty() {
                anyhow::bail!("--service must not be empty");
            }
            let new = api_keys::create(&service, roles, purposes, now_ms())?;
            store.insert_api_key(&new.row).await?;
            eprintln!("key {} for {service}; it is shown only now:", new.row.id);
            println!("{}", new.key.as_str());
        }
        Action::List { output } => {
            let mut listing = Listing::new([
                "id",
                "service",
                "roles",
                "purposes",
                "created_ms",
                "revoked_ms",
            ]);
            for row in store.api_keys().await? {
                listing.push(vec![
                    json!(row.id),
                    json!(row.service),
                    json!(row.roles),
                    json!(row.purposes),
                    json!(row.created_at),
                    json!(row.revoked_at),
                ]);
            }
            listing.print(output)?;
        }
        Action::Revoke { id } => match store.revoke_api_key(&id, now_ms()).await? {
            true => println!("revoked"),
            false => anyhow::bail!("no unrevoked key has id {id}"),
        },
    }
    Ok(())
}

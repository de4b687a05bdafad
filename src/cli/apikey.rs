//! `privgate apikey`: create service API keys (printed once), list them (never a secret),
//! revoke them (effective on every replica at once: keys are read from the store on each
//! use).

use crate::config;
use crate::identity::api_keys;
use crate::store::{now_ms, Store};
use anyhow::Context;
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
    List,
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
        Action::List => {
            println!("id\tservice\troles\tpurposes\tcreated_ms\trevoked_ms");
            for row in store.api_keys().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    row.id,
                    row.service,
                    row.roles.join(","),
                    row.purposes.join(","),
                    row.created_at,
                    row.revoked_at.map_or("-".to_owned(), |t| t.to_string())
                );
            }
        }
        Action::Revoke { id } => match store.revoke_api_key(&id, now_ms()).await? {
            true => println!("revoked"),
            false => anyhow::bail!("no unrevoked key has id {id}"),
        },
    }
    Ok(())
}

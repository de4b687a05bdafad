//! `privgate consent`: grant, revoke, list and show consent records in the configured store.
//!
//! This is the operator's path; the gateway's admin API and console use the same code
//! (`crate::approval::consents`). A revocation is an approval-gated operation, run at once
//! when `[admin] consent_revocation_approvals` is 1 and refused here otherwise (request it
//! with `privgate admin request consent-revoke`); it takes effect for every decision made
//! after it executes.

use super::output::{Listing, Output};
use crate::approval::consents;
use crate::config;
use crate::consent::NewConsent;
use crate::store::{now_ms, Store};
use anyhow::Context;
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `privgate consent`.
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
    /// Record a consent; prints its id.
    Grant {
        /// The data subject (customer id).
        #[arg(long)]
        subject: String,
        /// Who may act on it (client id or organisation).
        #[arg(long)]
        grantee: String,
        /// A purpose of use it covers (repeat for several).
        #[arg(long = "purpose", required = true)]
        purposes: Vec<String>,
        /// A permission code it grants (repeat for several).
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        /// Lifetime, e.g. `90days`; no expiry if absent.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// Withdraw a consent, effective at once (refused when `[admin]
    /// consent_revocation_approvals` is above 1: use `privgate admin request consent-revoke`).
    Revoke {
        /// Consent id.
        id: String,
    },
    /// List consents with their status now.
    List {
        /// Only this subject's.
        #[arg(long)]
        subject: Option<String>,
        /// Only this grantee's.
        #[arg(long)]
        grantee: Option<String>,
        /// How to print the list.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show one consent (as JSON by default).
    Show {
        /// Consent id.
        id: String,
        /// How to print it: JSON, or its fields one per row.
        #[arg(long, value_enum, default_value = "json")]
        output: Output,
    },
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let store = Store::open_configured(&config.store)
        .await
        .context("opening the store")?;
    let now = now_ms();
    match args.action {
        Action::Grant {
            subject,
            grantee,
            purposes,
            permissions,
            expires_in,
        } => {
            let new = NewConsent {
                subject,
                grantee,
                purposes,
                permissions,
                expires_at: consents::expiry(now, expires_in),
            };
            let subject_ids = config::subject::SubjectIds::of(&config.routes);
            let record = consents::grant(&store, &subject_ids, &new, now).await?;
            println!("{}", record.id);
        }
        Action::Revoke { id } => {
            // Through the approval flow, like the console and the admin API: refused here
            // when [admin] consent_revocation_approvals asks for more than one person.
            store.close().await;
            return super::admin::run_direct(&config, async |store| {
                super::admin::consent_revocation(store, &id).await
            })
            .await;
        }
        Action::List {
            subject,
            grantee,
            output,
        } => {
            let records = store
                .consents(subject.as_deref(), grantee.as_deref())
                .await?;
            let mut listing = Listing::new([
                "id",
                "subject",
                "grantee",
                "status",
                "purposes",
                "permissions",
            ]);
            for r in &records {
                listing.push(vec![
                    json!(r.id),
                    json!(r.subject),
                    json!(r.grantee),
                    json!(format!("{:?}", r.status(now))),
                    json!(r.purposes),
                    json!(r.permissions),
                ]);
            }
            listing.print(output)?;
        }
        Action::Show { id, output } => {
            let record = store
                .consent(&id)
                .await?
                .with_context(|| format!("no consent with id {id}"))?;
            super::output::print_one(
                &serde_json::to_value(consents::shown(&record, now))?,
                output,
            )?;
        }
    }
    store.close().await;
    Ok(())
}

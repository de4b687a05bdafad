//! `privgate risk show`: a principal's (or an organisation's) risk indicators per window,
//! read from the configured store with every replica's counts merged, and its suspension.

use super::output::{Listing, Output};
use crate::config;
use crate::store::{now_ms, Store};
use anyhow::Context;
use std::path::PathBuf;

/// Arguments of `privgate risk`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// Configuration file (its `[store]` and `[risk]` sections are used).
    #[arg(long, global = true, default_value = "privgate.toml")]
    config: PathBuf,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Print the indicators of one principal or organisation.
    Show {
        /// The principal as audit records name it (`User:alice`, `Service:client:app`).
        #[arg(
            long,
            conflicts_with = "organisation",
            required_unless_present = "organisation"
        )]
        principal: Option<String>,
        /// An organisation: all its principals together.
        #[arg(long)]
        organisation: Option<String>,
        /// How to print the indicators: `json` is one object (key, windows, suspension);
        /// `table`, `tsv` and `csv` one row per window and indicator.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let risk = config
        .risk
        .as_ref()
        .context("no [risk] section: no indicators are kept")?;
    let Action::Show {
        principal,
        organisation,
        output,
    } = args.action;
    let key = crate::risk::scope_key(principal.as_deref(), organisation.as_deref())
        .context("give --principal or --organisation")?;
    let store = Store::open_configured(&config.store)
        .await
        .context("opening the store")?;
    let now = now_ms();
    let shown = crate::risk::show(risk, &store, &key, now).await;
    let suspension = match &principal {
        Some(p) => store.risk_suspension(p).await.map_err(anyhow::Error::from),
        None => Ok(None),
    };
    store.close().await;
    let (windows, suspension) = (shown.map_err(anyhow::Error::msg)?, suspension?);
    if output == Output::Json {
        let windows: serde_json::Map<String, serde_json::Value> = windows
            .into_iter()
            .map(|(w, values)| (w, serde_json::json!(values)))
            .collect();
        let out = serde_json::json!({
            "key": key,
            "windows": windows,
            "suspended": suspension.as_ref().map(|s| serde_json::json!({
                "threshold": s.threshold, "since_ms": s.suspended_at,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let mut listing = Listing::new(["window", "indicator", "value"]).right_aligned("value");
    for (window, values) in windows {
        for (indicator, value) in values {
            listing.push(vec![
                serde_json::json!(window),
                serde_json::json!(indicator),
                serde_json::json!(value),
            ]);
        }
    }
    // Around the rows: the key and any suspension, on stderr for programs.
    output.note(&key);
    listing.print(output)?;
    if let Some(s) = suspension {
        output.note(&format!(
            "suspended by threshold `{}` {} s ago (clear: privgate admin request risk-clear --principal ...)",
            s.threshold,
            (now - s.suspended_at) / 1000
        ));
    }
    Ok(())
}

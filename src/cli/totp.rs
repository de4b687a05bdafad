//! `privgate totp`: operators list and remove users' TOTP enrollments (secrets are never
//! shown), and provision one (`provision`: the operator enrollment path of
//! `[totp.enrollment] mode = "operator"`). `provision` enrolls and confirms a user and
//! prints the secret's URI for the operator to hand over out of band (in person, a sealed
//! letter); `dev-enroll` does the same for development and demos, saying so.

use super::output::{Listing, Output};
use crate::config::{self, TotpAlgorithm};
use crate::identity::totp::{self, CodeUse, TotpContext};
use crate::keys::Keyring;
use crate::store::{now_ms, Store};
use anyhow::Context;
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `privgate totp`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// Configuration file (its `[store]`, `[keys]` and `[totp]` sections are used).
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
    /// List enrollments: user, algorithm, digits, state, lock (never the secret).
    List {
        /// How to print the list (default: tab-separated, header first).
        #[arg(long, value_enum, default_value = "tsv")]
        output: Output,
    },
    /// Remove a user's enrollment (lost device); the user can then enroll again.
    Remove {
        /// The user id (token `sub`).
        #[arg(long)]
        user: String,
    },
    /// Enroll and confirm a user, printing the otpauth URI (the secret) once, for the
    /// operator to hand to the user out of band after checking who they are.
    Provision {
        /// The user id (token `sub`).
        #[arg(long)]
        user: String,
    },
    /// DEVELOPMENT ONLY: enroll and confirm a user, printing the otpauth URI (the secret).
    DevEnroll {
        /// The user id (token `sub`).
        #[arg(long)]
        user: String,
    },
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let store = Store::open_configured(&config.store)
        .await
        .context("opening the store")?;
    let result = match args.action {
        Action::List { output } => list(&store, output).await,
        Action::Remove { user } => match store.remove_totp_enrollment(&user).await? {
            true => {
                println!("removed the TOTP enrollment of {user}");
                Ok(())
            }
            false => Err(anyhow::anyhow!("{user} has no TOTP enrollment")),
        },
        Action::Provision { user } => {
            eprintln!(
                "the URI below is {user}'s TOTP secret: hand it over out of band, then clear it from this terminal"
            );
            provision(&config, &store, &user).await
        }
        Action::DevEnroll { user } => {
            eprintln!(
                "warning: dev-enroll is for development only: it prints the user's TOTP secret"
            );
            provision(&config, &store, &user).await
        }
    };
    store.close().await;
    result
}

async fn list(store: &Store, output: Output) -> anyhow::Result<()> {
    let now = now_ms();
    let mut listing = Listing::new(["user", "algorithm", "digits", "state", "locked"]);
    for row in store.totp_enrollments().await? {
        let state = if row.active { "active" } else { "pending" };
        let locked = if row.locked_until > now {
            format!("{} s", (row.locked_until - now) / 1000)
        } else {
            "no".to_owned()
        };
        listing.push(vec![
            json!(row.user_id),
            json!(row.algorithm),
            json!(row.digits),
            json!(state),
            json!(locked),
        ]);
    }
    listing.print(output)
}

/// Enrolls and confirms `user` as the operator (no token session is involved: whoever
/// can run this holds the store and the KEK) and prints the URI.
async fn provision(config: &config::Config, store: &Store, user: &str) -> anyhow::Result<()> {
    let settings = config
        .totp
        .as_ref()
        .context("the configuration has no [totp] section")?;
    let keys = config
        .keys
        .as_ref()
        .context("the configuration has no [keys] section")?;
    let keyring = Keyring::open_configured(store.clone(), keys).await?;
    let ctx = TotpContext {
        settings,
        keyring: &keyring,
        store,
    };
    let algorithm: TotpAlgorithm = settings.algorithm;
    let now = now_ms();
    let session = totp::OPERATOR_SESSION;
    let enrollment = totp::enroll(ctx, user, session, algorithm, settings.digits, now).await?;
    // Confirm with the previous step's code, so the current code stays usable at once.
    let generator = totp_rs::TOTP::from_url_unchecked(enrollment.uri.as_str())
        .map_err(|_| anyhow::anyhow!("enrollment URI does not parse"))?;
    let previous = generator.generate(u64::try_from(now / 1000)?.saturating_sub(30));
    totp::check_code(ctx, user, &previous, CodeUse::Confirm { session }, now).await?;
    println!("{}", enrollment.uri.as_str());
    Ok(())
}

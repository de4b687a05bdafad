//! `privgate admin`: request, approve, list and show approval-gated operations (destructive
//! key operations, token and consent revocation) in the configured store: the same requests as the
//! gateway's `/admin/v1/operations`, so a request made through the API can be approved here
//! and the other way round. Here the approver is the operating-system account running the
//! command (`host-uid:N`): two approvals from one account count once.

use super::output::{Listing, Output};
use crate::approval::{self, ApprovalRules, Executor, Operation, OperationView};
use crate::config;
use crate::store::Store;
use anyhow::Context;
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `privgate admin`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// Configuration file (its `[store]`, `[keys]` and `[admin]` sections are used).
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
    /// Request an operation (you are its first approver); prints it. It executes at once
    /// when one approval is enough.
    Request {
        #[command(subcommand)]
        operation: Requested,
    },
    /// Approve an operation; it executes when this approval meets the threshold.
    Approve {
        /// Operation id.
        id: String,
    },
    /// Deny a pending operation: it will never be approved or executed.
    Deny {
        /// Operation id.
        id: String,
    },
    /// List operations, newest first.
    List {
        /// How to print the list.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show one operation (as JSON by default).
    Show {
        /// Operation id.
        id: String,
        /// How to print it: JSON, or its fields one per row.
        #[arg(long, value_enum, default_value = "json")]
        output: Output,
    },
}

#[derive(clap::Subcommand)]
enum Requested {
    /// Destroy a data subject's keys.
    Shred {
        /// The data subject (customer id).
        #[arg(long)]
        subject: String,
    },
    /// Retire a key's versions below N.
    Retire {
        /// Key name.
        name: String,
        /// Lowest version that stays usable.
        #[arg(long)]
        min_version: u32,
    },
    /// Restore a keyring backup (the file is read where the operation executes).
    Restore {
        /// Backup file.
        #[arg(long = "in")]
        input: PathBuf,
        /// Replace an existing keyring.
        #[arg(long)]
        force: bool,
    },
    /// Revoke a token (by jti) or every token of a subject.
    TokenRevoke {
        /// The token's `jti`.
        #[arg(long, conflicts_with = "sub", required_unless_present = "sub")]
        jti: Option<String>,
        /// Every token of this subject issued up to now.
        #[arg(long)]
        sub: Option<String>,
    },
    /// Revoke a consent on its data subject's behalf.
    ConsentRevoke {
        /// The consent's id (its subject is read from the record).
        #[arg(long)]
        consent: String,
    },
    /// Lift a principal's risk suspension.
    RiskClear {
        /// The principal as audit records name it (`User:alice`).
        #[arg(long)]
        principal: String,
    },
}

impl Requested {
    async fn operation(self, store: &Store) -> anyhow::Result<Operation> {
        Ok(match self {
            Self::Shred { subject } => Operation::KeysShred { subject },
            Self::Retire { name, min_version } => Operation::KeysRetire { name, min_version },
            Self::Restore { input, force } => Operation::restore(input, force),
            Self::TokenRevoke { jti, sub } => Operation::TokenRevoke { jti, sub },
            Self::ConsentRevoke { consent } => consent_revocation(store, &consent).await?,
            Self::RiskClear { principal } => Operation::RiskClear { principal },
        })
    }
}

/// The revocation of consent `id`, or a clear error when there is no such consent.
pub(super) async fn consent_revocation(store: &Store, id: &str) -> anyhow::Result<Operation> {
    match approval::consents::revocation(store, id).await {
        Err(approval::AdminError::NotFound) => anyhow::bail!("no consent with id {id}"),
        op => Ok(op?),
    }
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    with_executor(&config, async |exec, rules| {
        act(args.action, exec, rules).await
    })
    .await
}

/// Runs `f` with an executor over the configured store (keyring opened from `[keys]` when
/// an operation needs it), and closes the store afterwards.
async fn with_executor<T>(
    config: &config::Config,
    f: impl AsyncFnOnce(&Executor<'_>, ApprovalRules) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let store = Store::open_configured(&config.store)
        .await
        .context("opening the store")?;
    let exec = Executor {
        store: &store,
        keyring: None,
        keys: config.keys.as_ref(),
        subject_ids: config::subject::SubjectIds::of(&config.routes),
    };
    let result = f(&exec, ApprovalRules::from_config(&config.admin)).await;
    store.close().await;
    result
}

async fn act(action: Action, exec: &Executor<'_>, rules: ApprovalRules) -> anyhow::Result<()> {
    match action {
        Action::Request { operation } => {
            let operation = operation.operation(exec.store).await?;
            let view = approval::request(exec, rules, operation, &principal()?).await?;
            println!("{}", shown(&view));
        }
        Action::Approve { id } => {
            let view = approval::approve(exec, &id, &principal()?).await?;
            println!("{}", shown(&view));
        }
        Action::Deny { id } => {
            let view = approval::deny(exec.store, &id, &principal()?).await?;
            println!("{}", shown(&view));
        }
        Action::List { output } => {
            let now = crate::store::now_ms();
            let mut listing = Listing::new([
                "id",
                "kind",
                "status",
                "approvals",
                "approvals_required",
                "requested_by",
            ]);
            for row in exec.store.operations().await? {
                let view = OperationView::from_row(row, now)?;
                listing.push(vec![
                    json!(view.id),
                    json!(view.operation.action()),
                    serde_json::to_value(view.status)?,
                    json!(view.approvers.len()),
                    json!(view.approvals_required),
                    json!(view.requested_by),
                ]);
            }
            listing.print(output)?;
        }
        Action::Show { id, output } => super::output::print_one(
            &serde_json::to_value(approval::load(exec.store, &id).await?)?,
            output,
        )?,
    }
    Ok(())
}

/// Runs an approval-gated operation at once (`privgate keys shred|retire|restore`,
/// `privgate consent revoke`), allowed when one approval is enough for its kind: the
/// two-person rule is not bypassed through a direct command. Recorded like an approved
/// request (who, when, outcome) in the same table, requested and executed by the account
/// running the command. `operation` builds it from the store (a consent's subject is read
/// from its record).
pub(super) async fn run_direct(
    config: &config::Config,
    operation: impl AsyncFnOnce(&Store) -> anyhow::Result<Operation>,
) -> anyhow::Result<()> {
    let requester = principal()?;
    let view = with_executor(config, async |exec, rules| {
        let op = operation(exec.store).await?;
        approval::refuse_direct(&op, rules)?;
        Ok(approval::request(exec, rules, op, &requester).await?)
    })
    .await?;
    match view
        .outcome
        .as_deref()
        .and_then(|o| o.strip_prefix(approval::DONE))
    {
        Some(summary) => {
            println!(
                "{} (operation {})",
                summary.trim_start_matches(": "),
                view.id
            );
            Ok(())
        }
        None => anyhow::bail!(
            "{} (operation {})",
            view.outcome.as_deref().unwrap_or("not executed"),
            view.id
        ),
    }
}

fn shown(view: &OperationView) -> String {
    serde_json::to_string_pretty(view).unwrap_or_default()
}

/// The approver this command acts as: the account running it, by uid (names can be
/// reused or spoofed through the environment; the process's uid cannot).
fn principal() -> anyhow::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .context("reading this process's uid from /proc/self")?
        .uid();
    Ok(format!("host-uid:{uid}"))
}

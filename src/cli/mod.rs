//! The command line: one file per subcommand.

mod admin;
mod apikey;
mod audit;
mod certs;
mod check;
mod consent;
mod demo;
#[cfg(feature = "fhe")]
mod fhe;
mod keys;
mod manual;
mod output;
mod policy;
mod progress;
mod query;
mod risk;
mod serve;
mod store;
mod token;
mod totp;

use crate::telemetry::{self, LogFormat};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "privgate",
    version,
    about = "Privacy gateway for financial services"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Write the per-request access log to this file as JSON lines (`-`: stdout) instead of
    /// with the other logs.
    #[arg(long, global = true, env = "PRIVGATE_ACCESS_LOG", value_name = "FILE")]
    access_log: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(serve::Args),
    /// Validate a configuration and every file it references.
    Check(check::Args),
    /// Create development certificates.
    Certs(certs::Args),
    /// Make the audit checkpoint key; verify an audit chain.
    Audit(audit::Args),
    /// Grant, revoke, list and show consent records.
    Consent(consent::Args),
    /// Check policies, run policy test cases, explain decisions.
    Policy(policy::Args),
    /// Manage the keyring: init, list, rotate, retire, rewrap, backup, restore, shred.
    Keys(keys::Args),
    /// Revoke access tokens (by jti or subject) on every replica.
    Token(token::Args),
    /// List and remove users' TOTP enrollments (dev-enroll: development only).
    Totp(totp::Args),
    /// Create, list and revoke service API keys.
    Apikey(apikey::Args),
    /// Request, approve, list and show approval-gated operations (separation of duties).
    Admin(admin::Args),
    /// Apply the store's schema migrations (for `[store] migrate = false` deployments).
    Store(store::Args),
    /// Run a self-contained demo: sample core-banking upstream behind the gateway.
    Demo(demo::Args),
    /// Ask a differentially private question of a dataset through the gateway.
    Query(query::Args),
    /// Show a principal's or an organisation's live risk indicators.
    Risk(risk::Args),
    /// Encrypted sums: make keys, contribute, and the offline sum / decrypt split.
    #[cfg(feature = "fhe")]
    Fhe(fhe::Args),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(manual::CompletionsArgs),
    /// Print the man page, privgate(1), in roff; `--out DIR` writes one per command too.
    Man(manual::ManArgs),
}

/// Runs the command line; the exit code is non-zero on any failure.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let tracing = match &cli.command {
        Command::Serve(args) => serve::tracing_section(args),
        _ => None,
    };
    // Held to the end: dropping it flushes the last spans.
    let _trace_export =
        match telemetry::init(cli.log_format, cli.access_log.as_deref(), tracing.as_ref()) {
            Ok(export) => export,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
    let result = match cli.command {
        Command::Serve(args) => {
            serve::without_huge_pages();
            runtime().and_then(|rt| rt.block_on(serve::run(args)))
        }
        Command::Check(args) => check::run(&args),
        Command::Certs(args) => certs::run(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Consent(args) => runtime().and_then(|rt| rt.block_on(consent::run(args))),
        Command::Policy(args) => policy::run(&args),
        Command::Keys(args) => runtime().and_then(|rt| rt.block_on(keys::run(args))),
        Command::Token(args) => runtime().and_then(|rt| rt.block_on(token::run(args))),
        Command::Totp(args) => runtime().and_then(|rt| rt.block_on(totp::run(args))),
        Command::Apikey(args) => runtime().and_then(|rt| rt.block_on(apikey::run(args))),
        Command::Admin(args) => runtime().and_then(|rt| rt.block_on(admin::run(args))),
        Command::Store(args) => runtime().and_then(|rt| rt.block_on(store::run(args))),
        Command::Demo(args) => {
            serve::without_huge_pages();
            runtime().and_then(|rt| rt.block_on(demo::run(args)))
        }
        Command::Query(args) => runtime().and_then(|rt| rt.block_on(query::run(args))),
        Command::Risk(args) => runtime().and_then(|rt| rt.block_on(risk::run(args))),
        #[cfg(feature = "fhe")]
        Command::Fhe(args) => runtime().and_then(|rt| rt.block_on(fhe::run(args))),
        Command::Completions(args) => manual::completions(&args),
        Command::Man(args) => manual::man(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

//! `privgate audit`: make the checkpoint key, verify a chain, read the trail (`read`).

mod read;

use super::output::Output;
use crate::audit::{self, AuditKey, MIN_KEY_BYTES};
use crate::config;
use anyhow::Context;
use ring::rand::SecureRandom;
use std::path::{Path, PathBuf};

/// Arguments of `privgate audit`.
#[derive(clap::Args)]
pub(super) struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Write a new random audit key (checkpoint or pseudonym; mode 0600; never overwrites).
    Keygen {
        /// Key file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// List every recorded access to one data subject, from every replica's chain.
    WhoSaw {
        /// Configuration file (its `[audit]` section says where to look).
        #[arg(long, default_value = "privgate.toml", env = "PRIVGATE_CONFIG")]
        config: PathBuf,
        /// The data subject (customer id).
        #[arg(long)]
        subject: String,
        /// How to print the accesses (default: tab-separated, header first).
        #[arg(long, value_enum, default_value = "tsv")]
        output: Output,
    },
    /// Print the records that match, as written (JSON lines), from every replica's chain.
    Search {
        /// Configuration file (its `[audit]` section says where to look).
        #[arg(long, default_value = "privgate.toml", env = "PRIVGATE_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        filter: read::Filter,
        /// How to print them: `json` is each record as written, one per line (verifiable);
        /// `table`, `tsv` and `csv` show the main fields of each.
        #[arg(long, value_enum, default_value = "json")]
        output: Output,
    },
    /// Verify a replica's chain against its checkpoints; exit non-zero on any problem.
    Verify {
        /// Configuration file (its `[audit]` section says where to look).
        #[arg(long, default_value = "privgate.toml", env = "PRIVGATE_CONFIG")]
        config: PathBuf,
        /// Replica whose chain to verify (default: this host's, as configured); every
        /// record must name it, and every checkpoint of it in the sink must be reached.
        #[arg(long)]
        replica: Option<String>,
        /// Verify the chain whose first segment is this file instead (e.g. a copy on another
        /// machine); its later segments are read from beside it.
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

pub(super) fn run(args: &Args) -> anyhow::Result<()> {
    match &args.action {
        Action::Keygen { out } => {
            write_audit_key(out)?;
            println!("checkpoint key written to {}", out.display());
            Ok(())
        }
        Action::WhoSaw {
            config,
            subject,
            output,
        } => read::who_saw(config, subject, *output),
        Action::Search {
            config,
            filter,
            output,
        } => read::search(config, filter, *output),
        Action::Verify {
            config,
            replica,
            log,
        } => verify(config, replica.as_deref(), log.as_ref()),
    }
}

/// Writes a new random audit key (checkpoint or pseudonym) to `out` (mode 0600), refusing to replace a file.
pub(super) fn write_audit_key(out: &Path) -> anyhow::Result<()> {
    let mut key = zeroize::Zeroizing::new([0u8; MIN_KEY_BYTES]);
    ring::rand::SystemRandom::new()
        .fill(key.as_mut())
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    crate::private_file::write(out, key.as_ref(), crate::private_file::Existing::Refuse)
        .with_context(|| format!("{}: cannot create (it must not exist yet)", out.display()))
}

fn verify(config: &Path, replica: Option<&str>, log: Option<&PathBuf>) -> anyhow::Result<()> {
    let config = config::load(config)?;
    let mut audit_config = config.audit.context("the config has no [audit] section")?;
    if let Some(replica) = replica {
        audit_config.replica = Some(replica.to_owned());
    }
    let mut settings = audit::AuditSettings::from_config(&audit_config);
    if let Some(log) = log {
        settings.log.clone_from(log);
    }
    let key = AuditKey::from_file(&audit_config.checkpoint_key_file).map_err(anyhow::Error::msg)?;
    // The replica comes from the configuration or the flag, never from the chain: a chain
    // relabelled as another replica's must not pick the checkpoints it is checked against.
    let bar = super::progress::bytes(0, format!("verifying {}", settings.replica));
    let report = audit::verify_reporting(
        &settings.log,
        &settings.checkpoint_sink,
        &settings.replica,
        &key,
        |total| bar.set_length(total),
        |read| bar.inc(read),
    );
    bar.finish_and_clear();
    let report = report?;
    if report.problems.is_empty() {
        println!(
            "{}: ok, {} records of replica `{}` in {} segment(s); {} checkpoints, the last pinning record {} (records after it are not yet pinned)",
            settings.log.display(),
            report.records,
            settings.replica,
            report.segments,
            report.checkpoints,
            report.last_checkpoint_seq
        );
        if report.torn_bytes > 0 {
            println!(
                "the newest segment ends in {} bytes of a batch a crash left half-written (never acknowledged); they are not records, and the gateway cuts them off when it next opens the chain",
                report.torn_bytes
            );
        }
        if report.first_record > 1 {
            println!(
                "records 1 to {} were deleted under retention; the chain kept continues record {}, which a checkpoint pins",
                report.first_record - 1,
                report.first_record - 1
            );
        }
        return Ok(());
    }
    // Problems in a record name its segment file and line; the others name the replica.
    for problem in &report.problems {
        eprintln!("{problem}");
    }
    anyhow::bail!(
        "audit trail verification failed ({} problem(s))",
        report.problems.len()
    )
}

//! `privgate audit`: make the checkpoint key, verify a chain.

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
        /// Verify this chain file instead (e.g. a copy on another machine).
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
        Action::WhoSaw { config, subject } => who_saw(config, subject),
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

fn who_saw(config: &Path, subject: &str) -> anyhow::Result<()> {
    let config = config::load(config)?;
    let audit_config = config.audit.context("the config has no [audit] section")?;
    // The gateway refuses an id in another spelling before any lookup, so nothing was ever
    // recorded under it; saying so beats an empty list (and making it a key row).
    anyhow::ensure!(
        crate::config::subject::SubjectIds::of(&config.routes).accepts(subject),
        "the subject is not an id as the routes spell subject ids: the gateway refuses that \
         spelling, so no record names it (ask for the id in its one spelling)"
    );
    // A subject's records carry the audit-key pseudonym (refused requests) or the one under
    // the subject's own keyring key (allowed requests), which a shred makes unrecoverable.
    anyhow::ensure!(
        audit_config.pseudonym_key_file.is_some() || config.keys.is_some(),
        "no [audit] pseudonym_key_file and no [keys]: records name no subject"
    );
    let mut pseudonyms = Vec::new();
    if let Some(key_file) = &audit_config.pseudonym_key_file {
        let key = AuditKey::from_file(key_file).map_err(anyhow::Error::msg)?;
        pseudonyms.push(key.pseudonym(subject));
    }
    if let Some(keys) = &config.keys {
        let found = super::runtime()?.block_on(async {
            let store = crate::store::Store::open_configured(&config.store).await?;
            let keyring = crate::keys::Keyring::open_configured(store, keys).await?;
            match keyring
                .subject_key(subject, crate::keys::KeyKind::Hmac)
                .await
            {
                Ok(key) => Ok(Some(audit::subject_key_pseudonym(&key, subject))),
                Err(crate::keys::KeyError::Shredded) => Ok(None),
                Err(e) => Err(anyhow::Error::from(e)),
            }
        })?;
        match found {
            Some(p) => pseudonyms.push(p),
            None => eprintln!(
                "the subject's keys were shredded: records of what was shown to callers can no \
                 longer be tied to them (only refused requests are listed)"
            ),
        }
    }

    let mut chains: Vec<PathBuf> = std::fs::read_dir(&audit_config.dir)
        .with_context(|| format!("{}: cannot read", audit_config.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    chains.sort();
    println!("time_ms\treplica\tseq\tprincipal\troute\tmethod\tstatus\tdecision\tpurpose\tconsent");
    for chain in chains {
        let text = std::fs::read_to_string(&chain)
            .with_context(|| format!("{}: cannot read", chain.display()))?;
        for record in text
            .lines()
            .filter_map(|l| serde_json::from_str::<audit::AuditRecord>(l).ok())
        {
            let (b, e) = (&record.body, &record.body.event);
            if e.subject_pseudonym
                .as_ref()
                .is_some_and(|p| pseudonyms.contains(p))
            {
                let purpose = e.purpose.as_deref().unwrap_or("-");
                let consent = e.consent_id.as_deref().unwrap_or("-");
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{purpose}\t{consent}",
                    b.time_ms,
                    b.replica,
                    b.seq,
                    e.principal,
                    e.route,
                    e.method,
                    e.status,
                    e.decision
                );
            }
        }
    }
    Ok(())
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
    let report = audit::verify(
        &settings.log,
        &settings.checkpoint_sink,
        &settings.replica,
        &key,
    )?;
    if report.problems.is_empty() {
        println!(
            "{}: ok, {} records of replica `{}`; {} checkpoints, the last pinning record {} (records after it are not yet pinned)",
            settings.log.display(),
            report.records,
            settings.replica,
            report.checkpoints,
            report.last_checkpoint_seq
        );
        return Ok(());
    }
    for problem in &report.problems {
        eprintln!("{}: {problem}", settings.log.display());
    }
    anyhow::bail!(
        "audit trail verification failed ({} problem(s))",
        report.problems.len()
    )
}

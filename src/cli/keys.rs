//! `privgate keys`: create, list, rotate, retire, rewrap, back up and restore the keyring,
//! and shred a data subject's keys. The store and the KEK source come from the config's
//! `[store]` and `[keys]` sections. Nothing here prints key material, wrapped or not.

use super::output::{Listing, Output};
use crate::approval::Operation;
use crate::config::{self, KekSource, KeysConfig};
use crate::keys::hsm::{HsmKek, HsmLocation};
use crate::keys::kek::{read_material, read_new_material, read_pin, KekMaterial};
use crate::keys::maintenance;
use crate::keys::{KeyKind, Keyring, KeyringSettings};
use crate::store::Store;
use anyhow::Context;
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `privgate keys`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// Configuration file (its `[store]` and `[keys]` sections are used).
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
    /// Create the keyring (KEK salt and check value); refuses if one exists.
    Init,
    /// Make the KEK inside the PKCS#11 token `[keys] kek` names (AES-256, never extractable).
    HsmKeygen,
    /// List keys: names, kinds, versions, status, creation time and uses.
    List {
        /// How to print the list (`json`, `csv`: the keyring's headline and counts go to
        /// stderr).
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Create a key (version 1) if it does not exist; the gateway also creates the keys its
    /// field classes need when it loads.
    Create {
        /// Key name.
        name: String,
        /// What it is for: aead, siv, ff1 or hmac.
        #[arg(long, value_parser = parse_kind)]
        kind: KeyKind,
    },
    /// Add a new version of a key; new encryptions use it from now on.
    Rotate {
        /// Key name.
        name: String,
    },
    /// Retire a key's versions below N: data under them no longer decrypts.
    Retire {
        /// Key name.
        name: String,
        /// Lowest version that stays usable.
        #[arg(long)]
        min_version: u32,
    },
    /// Re-wrap every data key under a new KEK (new passphrase or salt, or a new key file).
    Rewrap {
        #[command(flatten)]
        new: NewKek,
    },
    /// Write the wrapped keyring (never plain keys) to a new file, mode 0600.
    Backup {
        /// File to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into this store, after checking the KEK opens all of it.
    Restore {
        /// Backup file.
        #[arg(long = "in")]
        input: PathBuf,
        /// Replace an existing keyring (its shred tombstones are kept).
        #[arg(long)]
        force: bool,
    },
    /// Destroy a data subject's keys: their per-subject values no longer decrypt, and the
    /// gateway shows every value it binds to them as erased (prints which classes are which).
    Shred {
        /// The data subject (customer id).
        #[arg(long)]
        subject: String,
    },
}

/// Where the new KEK of a rewrap comes from (exactly one).
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct NewKek {
    /// New passphrase from a file (mode 0600); the same file again means a fresh salt.
    #[arg(long)]
    new_passphrase_file: Option<PathBuf>,
    /// New passphrase from an inherited file descriptor.
    #[arg(long)]
    new_passphrase_fd: Option<u32>,
    /// New passphrase typed at the terminal.
    #[arg(long)]
    new_passphrase_prompt: bool,
    /// New raw key file (32 bytes or 64 hex digits, mode 0600).
    #[arg(long)]
    new_key_file: Option<PathBuf>,
    /// The `[keys] kek` of another configuration file (any source, PKCS#11 included).
    #[arg(long)]
    new_config: Option<PathBuf>,
}

impl NewKek {
    fn source(&self) -> anyhow::Result<KekSource> {
        Ok(if let Some(file) = &self.new_config {
            config::load(file)?
                .keys
                .with_context(|| format!("{}: no [keys] section", file.display()))?
                .kek
        } else if let Some(path) = &self.new_passphrase_file {
            KekSource::PassphraseFile { path: path.clone() }
        } else if let Some(fd) = self.new_passphrase_fd {
            KekSource::PassphraseFd { fd }
        } else if let Some(path) = &self.new_key_file {
            KekSource::KeyFile { path: path.clone() }
        } else {
            KekSource::PassphrasePrompt
        })
    }
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let keys = config
        .keys
        .clone()
        .context("the configuration has no [keys] section (it names the key-encryption key)")?;
    if let Some(op) = args.action.destructive() {
        let shred = matches!(op, Operation::KeysShred { .. });
        super::admin::run_direct(&config, async |_| Ok(op)).await?;
        if shred {
            print_shred_reach(&config);
        }
        return Ok(());
    }
    let store = Store::open_configured(&config.store)
        .await
        .context("opening the store")?;
    let result = act(args.action, &store, &keys).await;
    store.close().await;
    result
}

impl Action {
    /// The approval-gated operation this command is, if it is one.
    fn destructive(&self) -> Option<Operation> {
        match self {
            Self::Shred { subject } => Some(Operation::KeysShred {
                subject: subject.clone(),
            }),
            Self::Retire { name, min_version } => Some(Operation::KeysRetire {
                name: name.clone(),
                min_version: *min_version,
            }),
            Self::Restore { input, force } => Some(Operation::restore(input.clone(), *force)),
            _ => None,
        }
    }
}

async fn act(action: Action, store: &Store, keys: &KeysConfig) -> anyhow::Result<()> {
    let material = || -> anyhow::Result<KekMaterial> { Ok(read_material(&keys.kek)?) };
    match action {
        Action::Init => {
            let head =
                maintenance::init(store, &read_new_material(&keys.kek)?, keys.argon2).await?;
            println!("keyring {} created", head.keyring_id);
        }
        Action::HsmKeygen => {
            let KekSource::Pkcs11 {
                module,
                token_label,
                key_label,
                pin_file,
            } = &keys.kek
            else {
                anyhow::bail!("[keys] kek is not a pkcs11 source");
            };
            let location = HsmLocation {
                module,
                token_label,
                key_label,
            };
            HsmKek::generate(&location, &read_pin(pin_file)?)?;
            println!(
                "AES-256 key `{key_label}` generated in token `{token_label}` (not extractable)"
            );
        }
        Action::List { output } => print_listing(&maintenance::listing(store).await?, output)?,
        Action::Create { name, kind } => {
            let key = open(store, keys, &material()?)
                .await?
                .ensure(&name, kind)
                .await?;
            println!("{name} ({}) at v{}", kind.as_str(), key.version());
        }
        Action::Rotate { name } => {
            let version = open(store, keys, &material()?).await?.rotate(&name).await?;
            println!("{name} rotated: new encryptions use v{version}");
        }
        Action::Rewrap { new } => {
            let old = material()?;
            let new = read_new_material(&new.source()?)?;
            let spinner = super::progress::spinner("rewrapping every key under the new KEK");
            let done = maintenance::rewrap(store, &old, &new, keys.argon2).await;
            spinner.finish_and_clear();
            let done = done?;
            println!(
                "rewrapped {} data key version(s) and {} subject key(s) under the new KEK; restart every gateway with it and update [keys] kek",
                done.data_keys, done.subject_keys
            );
        }
        Action::Backup { out } => {
            let tables = maintenance::backup(store, &material()?, &out).await?;
            println!(
                "backup of {} data key version(s) and {} subject key(s) written to {}",
                tables.data_keys.len(),
                tables.subject_keys.len(),
                out.display()
            );
        }
        Action::Shred { .. } | Action::Retire { .. } | Action::Restore { .. } => {
            unreachable!("approval-gated operations run through run_direct")
        }
    }
    Ok(())
}

fn print_listing(keyring: &maintenance::KeyringListing, output: Output) -> anyhow::Result<()> {
    let mut listing = Listing::new(["name", "kind", "version", "status", "created", "uses"])
        .right_aligned("version")
        .right_aligned("uses");
    for k in &keyring.keys {
        listing.push(vec![
            json!(k.name),
            json!(k.kind),
            json!(k.version),
            json!(k.status),
            json!(k.created),
            json!(k.uses),
        ]);
    }
    output.note(&keyring.headline);
    listing.print(output)?;
    output.note(&keyring.counts);
    Ok(())
}

/// Which of the configured field classes a shred made unreadable, and how. The shred is
/// done by then; policies that do not load only lose this detail.
fn print_shred_reach(config: &config::Config) {
    let Some(policy) = &config.policy else {
        println!("no [policy]: this configuration has no field rules, so nothing else is erased");
        return;
    };
    let dir = &policy.dir;
    match crate::protect::Protection::load(dir, &config.routes) {
        Ok(protection) => println!("{}", protection.shred_reach()),
        Err(e) => eprintln!(
            "(the field classes in {} did not load, so they are not listed: {e})",
            dir.display()
        ),
    }
}

async fn open(store: &Store, keys: &KeysConfig, material: &KekMaterial) -> anyhow::Result<Keyring> {
    Ok(Keyring::open(store.clone(), material, KeyringSettings::from_config(keys)).await?)
}

fn parse_kind(text: &str) -> Result<KeyKind, String> {
    KeyKind::parse(text).ok_or_else(|| "one of aead, siv, ff1, hmac".to_owned())
}

//! `privgate completions SHELL` and `privgate man`: shell completions and the man page,
//! generated from the clap definition that parses the command line, so neither can drift
//! from the flags the binary accepts. The Debian package installs both (packaging/).

use anyhow::Context;
use clap::CommandFactory;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `privgate completions`.
#[derive(clap::Args)]
pub(super) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Writes the completion script for one shell to stdout.
pub(super) fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut command = super::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "privgate", &mut out);
    out.flush()?;
    Ok(())
}

/// Arguments of `privgate man`.
#[derive(clap::Args)]
pub(super) struct ManArgs {
    /// Write every page (privgate.1 and one per command, privgate-serve.1, ...) into this
    /// directory instead of printing privgate(1).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Prints `privgate(1)` (roff), or writes it with a page per command and subcommand.
pub(super) fn man(args: &ManArgs) -> anyhow::Result<()> {
    let command = super::Cli::command();
    match &args.out {
        Some(dir) => clap_mangen::generate_to(command, dir)
            .with_context(|| format!("{}: cannot write the man pages", dir.display())),
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command).render(&mut out)?;
            Ok(out.flush()?)
        }
    }
}

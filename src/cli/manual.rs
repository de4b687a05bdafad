//! `privgate completions SHELL` and `privgate man`: shell completions and the man page,
//! generated from the clap definition that parses the command line, so neither can drift
//! from the flags the binary accepts. The Debian package installs both (packaging/).

use clap::CommandFactory;
use std::io::Write;

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

/// Writes `privgate(1)` (roff) to stdout: the synopsis, global options and every command.
pub(super) fn man() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(super::Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(())
}

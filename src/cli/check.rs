//! `privgate check`: validate a configuration and everything it references.

use crate::gateway::Generation;
use std::path::PathBuf;

/// Arguments of `privgate check`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// Configuration file.
    #[arg(long, default_value = "privgate.toml", env = "PRIVGATE_CONFIG")]
    config: PathBuf,
    /// Once it passes, print the effective configuration (defaults filled in, paths
    /// resolved) as TOML on stdout, every secret replaced by "<redacted>" (the verdict goes
    /// to stderr).
    #[arg(long)]
    print_effective: bool,
}

pub(super) fn run(args: &Args) -> anyhow::Result<()> {
    // Upstream clients need a runtime context to be built, though nothing is started.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _guard = runtime.enter();
    match Generation::load(&args.config) {
        Ok(generation) => {
            for w in &generation.warnings {
                eprintln!("{}: warning: {}", w.file.display(), w.message);
            }
            let c = &generation.config;
            let verdict = format!(
                "{}: ok ({} listener(s), {} upstream(s), {} route(s))",
                args.config.display(),
                c.listeners.len(),
                c.upstreams.len(),
                c.routes.len()
            );
            if args.print_effective {
                print!("{}", crate::config::effective_toml(c)?);
                eprintln!("{verdict}");
            } else {
                println!("{verdict}");
            }
            Ok(())
        }
        Err(e) => {
            for p in &e.problems {
                eprintln!("{p}");
            }
            anyhow::bail!("{} problem(s) found", e.problems.len())
        }
    }
}

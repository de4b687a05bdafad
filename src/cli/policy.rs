//! `privgate policy`: check a policy set, run its test cases, explain decisions.

use crate::policy::{read_cases, run_case, PolicyEngine};
use std::path::PathBuf;

/// Arguments of `privgate policy`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// Policy directory (schema.cedarschema, fields.toml, *.cedar, tests/).
    #[arg(long, global = true, default_value = "policies")]
    dir: PathBuf,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Validate the set in strict mode against its schema.
    Check,
    /// Run the cases in `<dir>/tests/*.json`; exit non-zero if any fails.
    Test,
    /// Show which policies decided each case in FILE, and why each field got its view.
    Explain {
        /// A case file (JSON array of cases).
        #[arg(long)]
        case: PathBuf,
        /// Only the case with this name.
        #[arg(long)]
        name: Option<String>,
    },
}

pub(super) fn run(args: &Args) -> anyhow::Result<()> {
    let engine = match PolicyEngine::load(&args.dir) {
        Ok(engine) => engine,
        Err(e) => {
            for p in &e.problems {
                eprintln!("{}: {}", p.file.display(), p.message);
            }
            anyhow::bail!(
                "the policy set is invalid and would not be activated ({} problem(s))",
                e.problems.len()
            );
        }
    };
    match &args.action {
        Action::Check => {
            println!(
                "{}: ok, {} policies, sha256 {}",
                args.dir.display(),
                engine.policy_count(),
                engine.hash()
            );
            Ok(())
        }
        Action::Test => test(&engine, args),
        Action::Explain { case, name } => explain(&engine, case, name.as_deref()),
    }
}

fn test(engine: &PolicyEngine, args: &Args) -> anyhow::Result<()> {
    let cases = read_cases(&args.dir.join("tests"))?;
    let mut failed = 0;
    for (file, case) in &cases {
        let outcome = run_case(engine, file, case);
        if outcome.failures.is_empty() {
            println!("PASS  {}", outcome.name);
        } else {
            failed += 1;
            println!("FAIL  {} ({})", outcome.name, outcome.file.display());
            for f in &outcome.failures {
                println!("      {f}");
            }
        }
    }
    println!("{} passed, {failed} failed", cases.len() - failed);
    if failed > 0 {
        anyhow::bail!("{failed} policy case(s) failed");
    }
    Ok(())
}

fn explain(
    engine: &PolicyEngine,
    file: &std::path::Path,
    name: Option<&str>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)?;
    let cases: Vec<crate::policy::PolicyCase> = serde_json::from_str(&text)?;
    let selected: Vec<_> = cases
        .iter()
        .filter(|c| name.is_none_or(|n| c.name == n))
        .collect();
    if selected.is_empty() {
        anyhow::bail!("no case named {name:?} in {}", file.display());
    }
    for case in selected {
        let r = &case.request;
        let decision = engine.decide(r)?;
        println!("{}", case.name);
        println!(
            "  {:?} {} (roles {}) {} customer {} for purpose {}",
            r.caller.kind,
            r.caller.id,
            r.caller.roles.join(","),
            r.action,
            r.customer,
            r.purpose
        );
        if let Some(risk) = &r.risk {
            // The indicators the case gives `context.risk` (unnamed ones are 0).
            println!("  risk: {}", serde_json::to_string(risk)?);
        }
        let by = |ids: &[String]| {
            if ids.is_empty() {
                "no policy permits (default deny)".to_owned()
            } else {
                ids.join(", ")
            }
        };
        match &decision.refusal {
            None => println!("  route: ALLOW, by {}", by(&decision.policy_ids)),
            Some(refusal) => println!(
                "  route: DENY ({}), by {}",
                refusal.reason,
                by(&decision.policy_ids)
            ),
        }
        for (class, view) in &decision.views {
            let ids = decision
                .view_policy_ids
                .get(class)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let why = if ids.is_empty() {
                "no view permitted".to_owned()
            } else {
                format!("by {}", ids.join(", "))
            };
            println!("  {class}: {view:?}, {why}");
        }
        println!("  policy set sha256 {}", decision.policy_set_hash);
    }
    Ok(())
}

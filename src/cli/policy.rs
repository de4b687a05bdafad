//! `privgate policy`: check a policy set, run its test cases (and their coverage), explain
//! decisions, format the Cedar files, sign a set, and compare two sets.

use crate::policy::{read_cases, run_case, PolicyCase, PolicyEngine, PolicySnapshot};
use anyhow::Context;
use std::path::{Path, PathBuf};

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
    Test {
        /// Also list the policies no case exercises (none of the cases' decisions names
        /// them); exit non-zero if there are any.
        #[arg(long)]
        coverage: bool,
    },
    /// Show which policies decided each case in FILE, and why each field got its view.
    Explain {
        /// A case file (JSON array of cases).
        #[arg(long)]
        case: PathBuf,
        /// Only the case with this name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Format the `*.cedar` files in place (cedar-policy-formatter).
    Fmt {
        /// Change nothing: list the files that are not formatted and exit non-zero if any.
        #[arg(long)]
        check: bool,
    },
    /// Write a new Ed25519 policy signing key (PKCS#8, mode 0600) and `<FILE>.pub`.
    Keygen {
        /// Private key file to create (never overwritten); keep it off the gateway.
        #[arg(long)]
        out: PathBuf,
    },
    /// Validate the set and sign its content: writes `<dir>/policy-set.sig`.
    Sign {
        /// The private key from `privgate policy keygen`.
        #[arg(long)]
        key: PathBuf,
    },
    /// List the requests whose decision or views differ between two sets: the test cases
    /// of both, and a grid over principals, roles, actions, purposes, authentication,
    /// consent and field classes. Exit non-zero when any differ.
    Diff {
        /// The set as it is.
        old: PathBuf,
        /// The set as proposed.
        new: PathBuf,
    },
}

/// Loads a set, printing every problem; the error says it would not be activated.
fn load(dir: &Path) -> anyhow::Result<PolicyEngine> {
    PolicyEngine::load(dir).map_err(|e| {
        for p in &e.problems {
            eprintln!("{}: {}", p.file.display(), p.message);
        }
        anyhow::anyhow!(
            "the policy set is invalid and would not be activated ({} problem(s))",
            e.problems.len()
        )
    })
}

pub(super) fn run(args: &Args) -> anyhow::Result<()> {
    match &args.action {
        Action::Check => {
            let engine = load(&args.dir)?;
            println!(
                "{}: ok, {} policies, sha256 {}",
                args.dir.display(),
                engine.policy_count(),
                engine.hash()
            );
            Ok(())
        }
        Action::Test { coverage } => test(&load(&args.dir)?, args, *coverage),
        Action::Explain { case, name } => explain(&load(&args.dir)?, case, name.as_deref()),
        Action::Fmt { check } => fmt(&args.dir, *check),
        Action::Keygen { out } => {
            let (public, id) = crate::policy::generate_key(out)?;
            println!(
                "signing key written to {} (keep it off the gateway); public key {} (key id {id}): list it in [policy] trusted_keys",
                out.display(),
                public.display()
            );
            Ok(())
        }
        Action::Sign { key } => sign(&args.dir, key),
        Action::Diff { old, new } => diff(old, new),
    }
}

fn sign(dir: &Path, key: &Path) -> anyhow::Result<()> {
    let set = PolicySnapshot::read(dir).map_err(print_problems)?;
    // A set that would not load is not worth a signature; validated from the same bytes.
    PolicyEngine::from_snapshot(&set).map_err(print_problems)?;
    let signature = crate::policy::sign(&set, key).map_err(anyhow::Error::msg)?;
    let path = dir.join(crate::policy::SIGNATURE_FILE);
    // Replaced whole (rename), so a reload never reads half a signature.
    let staged = dir.join(format!(".{}.new", crate::policy::SIGNATURE_FILE));
    std::fs::write(&staged, signature)
        .with_context(|| format!("{}: cannot write", staged.display()))?;
    std::fs::rename(&staged, &path).with_context(|| format!("{}: cannot write", path.display()))?;
    println!(
        "{}: signed, content sha256 {}",
        path.display(),
        crate::audit::hex(&set.content_sha256())
    );
    Ok(())
}

fn print_problems(e: crate::config::ConfigError) -> anyhow::Error {
    for p in &e.problems {
        eprintln!("{}: {}", p.file.display(), p.message);
    }
    anyhow::anyhow!(
        "the policy set is invalid ({} problem(s))",
        e.problems.len()
    )
}

fn fmt(dir: &Path, check: bool) -> anyhow::Result<()> {
    let set = PolicySnapshot::read(dir).map_err(print_problems)?;
    let config = cedar_policy_formatter::Config::default();
    let mut unformatted = 0;
    for name in set.top_level("cedar") {
        let path = dir.join(name);
        let text = set
            .text(name)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let formatted = cedar_policy_formatter::policies_str_to_pretty(text, &config)
            .map_err(|e| anyhow::anyhow!("{}: cannot format: {e}", path.display()))?;
        if formatted == text {
            continue;
        }
        unformatted += 1;
        if check {
            println!("{}: not formatted", path.display());
        } else {
            std::fs::write(&path, formatted)
                .with_context(|| format!("{}: cannot write", path.display()))?;
            println!("{}: formatted", path.display());
        }
    }
    if check && unformatted > 0 {
        anyhow::bail!("{unformatted} file(s) not formatted (run `privgate policy fmt`)");
    }
    Ok(())
}

/// The cases of a set, none when it has no `tests/`.
fn cases_of(dir: &Path) -> anyhow::Result<Vec<PolicyCase>> {
    let tests = dir.join("tests");
    if !tests.exists() {
        return Ok(Vec::new());
    }
    Ok(read_cases(&tests)?
        .into_iter()
        .map(|(_, case)| case)
        .collect())
}

fn diff(old: &Path, new: &Path) -> anyhow::Result<()> {
    let (old_engine, new_engine) = (load(old)?, load(new)?);
    let mut cases = cases_of(old)?;
    cases.extend(cases_of(new)?);
    let diff = crate::policy::diff(&old_engine, &new_engine, &cases);
    for class in &diff.classes_in_one_set {
        println!("field class `{class}` is in one set only: its views are not compared");
    }
    for change in &diff.changes {
        println!(
            "CHANGED [{}] {}\n    old: {}\n    new: {}",
            change.origin, change.name, change.old, change.new
        );
    }
    println!(
        "{} request(s) compared ({} from cases, {} from the grid); {} answered differently",
        diff.from_cases + diff.from_grid,
        diff.from_cases,
        diff.from_grid,
        diff.changes.len()
    );
    if !diff.changes.is_empty() {
        anyhow::bail!("{} request(s) change", diff.changes.len());
    }
    Ok(())
}

fn test(engine: &PolicyEngine, args: &Args, coverage: bool) -> anyhow::Result<()> {
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
    if coverage {
        let cases: Vec<PolicyCase> = cases.into_iter().map(|(_, case)| case).collect();
        let uncovered = crate::policy::uncovered(engine, &cases);
        let total = engine.policy_count();
        for id in &uncovered {
            println!("UNCOVERED  {id}");
        }
        println!(
            "coverage: {} of {total} policies decide some case",
            total - uncovered.len()
        );
        if !uncovered.is_empty() {
            anyhow::bail!("{} policy(ies) no case exercises", uncovered.len());
        }
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
        let explanation = crate::policy::Explanation::of(engine, r)?;
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
        println!("  route: {}", explanation.route_line());
        for view in &explanation.views {
            println!("  {}: {:?}, {}", view.class, view.view, view.why());
        }
        println!("  policy set sha256 {}", explanation.policy_set_hash);
    }
    Ok(())
}

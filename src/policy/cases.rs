//! Policy test cases (`policies/tests/*.json`): each a request and the expected decision and
//! views. `privgate policy test` runs them; `privgate policy explain` shows why.

use super::{DecisionRequest, PolicyEngine};
use crate::config::ConfigError;
use crate::decision::FieldView;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyCase {
    /// What the case shows, in words.
    pub name: String,
    /// The question.
    pub request: DecisionRequest,
    /// The answer expected.
    pub expect: Expectation,
}

/// The expected answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// Whether the route is allowed.
    pub allowed: bool,
    /// The refusal reason, when refused.
    #[serde(default)]
    pub reason: Option<String>,
    /// Expected views (only the classes listed are checked).
    #[serde(default)]
    pub views: BTreeMap<String, FieldView>,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    /// File it came from.
    pub file: PathBuf,
    /// Case name.
    pub name: String,
    /// Every difference from the expectation; empty when it passed.
    pub failures: Vec<String>,
}

/// Reads every case file under `dir` (a JSON array of cases per file), sorted by name.
pub fn read_cases(dir: &Path) -> Result<Vec<(PathBuf, PolicyCase)>, ConfigError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ConfigError::one(dir, format!("cannot read test directory: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut cases = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::one(&path, format!("cannot read: {e}")))?;
        cases.extend(parse(&path, &text)?.into_iter().map(|c| (path.clone(), c)));
    }
    Ok(cases)
}

/// The cases in a snapshot's `tests/*.json` (the bytes a gateway activated), sorted by
/// file name as [`read_cases`] sorts them.
pub(super) fn of_snapshot(
    set: &super::PolicySnapshot,
) -> Result<Vec<(PathBuf, PolicyCase)>, String> {
    let mut cases = Vec::new();
    for name in set.named("tests/", ".json") {
        let path = set.dir().join(name);
        let text = set
            .text(name)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let parsed = parse(&path, text).map_err(|e| e.to_string())?;
        cases.extend(parsed.into_iter().map(|c| (path.clone(), c)));
    }
    Ok(cases)
}

/// One case file: a JSON array of cases.
fn parse(path: &Path, text: &str) -> Result<Vec<PolicyCase>, ConfigError> {
    serde_json::from_str(text)
        .map_err(|e| ConfigError::one(path, format!("invalid case file: {e}")))
}

/// Runs one case.
pub fn run_case(engine: &PolicyEngine, file: &Path, case: &PolicyCase) -> CaseOutcome {
    let mut failures = Vec::new();
    match engine.decide(&case.request) {
        Err(e) => failures.push(format!("could not decide: {e}")),
        Ok(decision) => {
            if decision.allowed() != case.expect.allowed {
                failures.push(format!(
                    "expected {}, got {} (policies: {})",
                    if case.expect.allowed { "allow" } else { "deny" },
                    if decision.allowed() { "allow" } else { "deny" },
                    decision.policy_ids.join(", ")
                ));
            }
            let reason = decision.refusal.as_ref().map(|r| r.reason.clone());
            if case.expect.reason.is_some() && reason != case.expect.reason {
                failures.push(format!(
                    "expected reason {:?}, got {reason:?}",
                    case.expect.reason
                ));
            }
            for (class, expected) in &case.expect.views {
                let got = decision.views.get(class);
                if got != Some(expected) {
                    failures.push(format!("{class}: expected {expected:?}, got {got:?}"));
                }
            }
        }
    }
    CaseOutcome {
        file: file.to_path_buf(),
        name: case.name.clone(),
        failures,
    }
}

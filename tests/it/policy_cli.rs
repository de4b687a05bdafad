//! `privgate policy check | test | explain` on a copy of the shipped policy set.

use crate::harness::privgate;
use std::path::{Path, PathBuf};

fn copy_policies() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    crate::harness::copy_shipped_policies(dir.path());
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// `privgate policy --dir DIR ARGS...`.
pub(crate) fn policy(dir: &Path, args: &[&str]) -> crate::harness::CliRun {
    let mut all = vec![
        "policy".to_owned(),
        "--dir".to_owned(),
        dir.display().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    privgate(all)
}

/// The policies in the set's `.cedar` files (as Cedar parses them) and the cases in its
/// `tests/*.json` files: what `check` and `test` must count.
fn shipped_counts(dir: &Path) -> (usize, usize) {
    let files = |sub: &Path, ext: &str| {
        let mut texts = Vec::new();
        for entry in std::fs::read_dir(sub).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == ext) {
                texts.push(std::fs::read_to_string(path).unwrap());
            }
        }
        texts
    };
    let policies = files(dir, "cedar")
        .iter()
        .map(|text| {
            text.parse::<cedar_policy::PolicySet>()
                .unwrap()
                .policies()
                .count()
        })
        .sum();
    let cases = files(&dir.join("tests"), "json")
        .iter()
        .map(|text| {
            serde_json::from_str::<Vec<serde_json::Value>>(text)
                .unwrap()
                .len()
        })
        .sum();
    assert!(policies > 0 && cases > 0);
    (policies, cases)
}

#[test]
fn check_test_and_explain_the_shipped_set() {
    let (_keep, dir) = copy_policies();
    let (policies, cases) = shipped_counts(&dir);
    let run = policy(&dir, &["check"]);
    assert!(
        run.ok
            && run
                .stdout
                .contains(&format!("ok, {policies} policies, sha256 ")),
        "{}",
        run.all()
    );
    let run = policy(&dir, &["test"]);
    assert!(
        run.ok && run.stdout.contains(&format!("{cases} passed, 0 failed")),
        "{}",
        run.all()
    );
    let case = dir.join("tests/story.json");
    let run = policy(
        &dir,
        &[
            "explain",
            "--case",
            case.to_str().unwrap(),
            "--name",
            "a partner without consent is refused",
        ],
    );
    assert!(run.ok, "{}", run.all());
    assert!(
        run.stdout
            .contains("route: DENY (consent_required), by partners-need-consent"),
        "{}",
        run.stdout
    );
}

/// `explain` on the shipped risk cases: the indicators the case gives, and the risk
/// policy that decided (the step-up past 200 customers; the clear card number withheld past
/// 20 refusals, the view falling back to masked).
#[test]
fn explain_shows_a_risk_case_and_the_risk_policy_deciding() {
    let (_keep, dir) = copy_policies();
    let case = dir.join("tests/risk.json");
    let explain = |name: &str| {
        let run = policy(
            &dir,
            &["explain", "--case", case.to_str().unwrap(), "--name", name],
        );
        assert!(run.ok, "{}", run.all());
        run.stdout
    };
    let out =
        explain("past 200 distinct customers in an hour, reading needs a fresh second factor");
    assert!(
        out.contains("\"last_1h\":{") && out.contains("\"distinct_subjects\":201"),
        "{out}"
    );
    assert!(
        out.contains("route: DENY (step_up_required), by bulk-readers-step-up"),
        "{out}"
    );
    let out = explain(
        "past 20 refusals in five minutes, the card number is masked even with a fresh second factor",
    );
    assert!(out.contains("\"refusals\":21"), "{out}");
    assert!(out.contains("route: ALLOW"), "{out}");
    assert!(
        out.contains("pan: Masked") && out.contains("name: Clear"),
        "{out}"
    );
    let out = explain("at 20 refusals in five minutes, the card number is still clear");
    assert!(out.contains("pan: Clear"), "{out}");
}

#[test]
fn a_failing_case_and_an_invalid_set_exit_non_zero() {
    let (_keep, dir) = copy_policies();
    // A case expecting what the policies do not do.
    let story = std::fs::read_to_string(dir.join("tests/story.json")).unwrap();
    let wrong = story.replacen(
        r#""views": { "pan": "clear" }"#,
        r#""views": { "pan": "token" }"#,
        1,
    );
    assert_ne!(wrong, story);
    std::fs::write(dir.join("tests/story.json"), wrong).unwrap();
    let run = policy(&dir, &["test"]);
    assert!(
        !run.ok
            && run
                .stdout
                .contains("FAIL  a fraud analyst with a fresh one-time code"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains("pan: expected Token, got Some(Clear)"),
        "{}",
        run.stdout
    );

    // A policy that does not type-check against the schema: never activated.
    std::fs::write(
        dir.join("broken.cedar"),
        "@id(\"b\")\npermit (principal, action, resource)\nwhen { principal.salary > 3 };\n",
    )
    .unwrap();
    let run = policy(&dir, &["check"]);
    assert!(!run.ok, "{}", run.all());
    assert!(
        run.stderr.contains("broken.cedar: line 3: policy `b`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("would not be activated"),
        "{}",
        run.stderr
    );
}

#[test]
fn diff_lists_what_an_edit_changes_and_nothing_for_a_reformat() {
    let (_keep_old, old) = copy_policies();
    let (_keep_new, new) = copy_policies();
    let diff =
        |a: &Path, b: &Path| privgate(["policy", "diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    let run = diff(&old, &new);
    assert!(
        run.ok && run.stdout.contains("0 answered differently"),
        "{}",
        run.all()
    );

    // Formatting changes the text, never a decision.
    let run = policy(&new, &["fmt"]);
    assert!(run.ok, "{}", run.all());
    let run = policy(&new, &["fmt", "--check"]);
    assert!(run.ok && run.stdout.is_empty(), "{}", run.all());
    let run = diff(&old, &new);
    assert!(
        run.ok && run.stdout.contains("0 answered differently"),
        "{}",
        run.all()
    );

    // The second factor's freshness relaxed from 5 minutes to 2 hours: the stale-factor
    // case and the grid's stale-factor requests change, nothing else.
    let access = std::fs::read_to_string(old.join("access.cedar")).unwrap();
    let relaxed = access.replacen("age_seconds <= 300", "age_seconds <= 7200", 1);
    assert_ne!(relaxed, access);
    std::fs::write(new.join("access.cedar"), relaxed).unwrap();
    let run = diff(&old, &new);
    assert!(!run.ok, "{}", run.all());
    assert!(
        run.stdout
            .contains("CHANGED [case] a fraud analyst whose second factor is stale sees it masked"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("pan=masked") && run.stdout.contains("pan=clear"),
        "{}",
        run.stdout
    );
    let grid_changes: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("CHANGED [grid]"))
        .collect();
    assert!(!grid_changes.is_empty(), "{}", run.stdout);
    for line in &grid_changes {
        assert!(
            line.contains("roles=[fraud_analyst]") && line.contains("age=3600s"),
            "{line}"
        );
    }
}

#[test]
fn coverage_lists_the_policies_no_case_exercises() {
    let (_keep, dir) = copy_policies();
    let baseline = policy(&dir, &["test", "--coverage"]);
    assert!(baseline.stdout.contains("coverage: "), "{}", baseline.all());
    assert!(!baseline
        .stdout
        .contains("UNCOVERED  auditors-read-customers"));
    std::fs::write(
        dir.join("auditors.cedar"),
        "@id(\"auditors-read-customers\")\npermit (principal in PrivGate::Role::\"auditor\", \
         action == PrivGate::Action::\"customers:read\", resource);\n",
    )
    .unwrap();
    let run = policy(&dir, &["test", "--coverage"]);
    assert!(!run.ok, "{}", run.all());
    assert!(
        run.stdout.contains("UNCOVERED  auditors-read-customers"),
        "{}",
        run.stdout
    );
    // A case for it covers it.
    std::fs::write(
        dir.join("tests/auditors.json"),
        r#"[{ "name": "an auditor reads a customer",
              "request": { "caller": { "kind": "User", "id": "al", "roles": ["auditor"], "purposes": ["audit"] },
                           "action": "customers:read", "customer": "42", "purpose": "audit" },
              "expect": { "allowed": true } }]"#,
    )
    .unwrap();
    let run = policy(&dir, &["test", "--coverage"]);
    assert!(
        !run.stdout.contains("UNCOVERED  auditors-read-customers"),
        "{}",
        run.all()
    );
}

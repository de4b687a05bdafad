//! `privgate policy check | test | explain` on a copy of the shipped policy set.

use crate::harness::privgate;
use std::path::{Path, PathBuf};

fn copy_policies() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    crate::harness::copy_shipped_policies(dir.path());
    let path = dir.path().to_path_buf();
    (dir, path)
}

fn policy(dir: &Path, args: &[&str]) -> crate::harness::CliRun {
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

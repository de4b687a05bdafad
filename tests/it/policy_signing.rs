//! Signed policy sets through the real binary: `policy keygen` and `policy sign`, `check`
//! and start refusing unsigned, altered or wrongly signed sets, and reloads that race edits
//! of the files and of the signature never activating a set that was not signed.

use crate::harness::*;
use crate::policy_cli::policy;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A workspace with a copy of the shipped set, a signing key, and a config trusting it.
fn signed_workspace(upstream: std::net::SocketAddr) -> (Workspace, PathBuf, PathBuf) {
    let ws = Workspace::new();
    let dir = ws.path("policies");
    copy_shipped_policies(&dir);
    std::fs::create_dir_all(ws.path("keys")).unwrap();
    let key = ws.path("keys/policy-signer.key");
    let run = privgate(["policy", "keygen", "--out", key.to_str().unwrap()]);
    assert!(run.ok && run.stdout.contains("key id"), "{}", run.all());
    let extra = format!(
        "\n[policy]\ndir = \"{}\"\ntrusted_keys = [\"{}.pub\"]\n",
        dir.display(),
        key.display()
    );
    let config = ws.write("privgate.toml", &config(&ws, upstream, "", &extra));
    (ws, dir, config)
}

fn check(config: &Path) -> CliRun {
    privgate(["check", "--config", config.to_str().unwrap()])
}

fn sign(dir: &Path, key: &Path) {
    let run = policy(dir, &["sign", "--key", key.to_str().unwrap()]);
    assert!(
        run.ok && run.stdout.contains("signed, content sha256"),
        "{}",
        run.all()
    );
}

/// The policy-set hash `policy check` reports (what the gateway's metrics name).
fn set_hash(dir: &Path) -> String {
    let run = policy(dir, &["check"]);
    assert!(run.ok, "{}", run.all());
    run.stdout.trim().rsplit(' ').next().unwrap().to_owned()
}

const PERMIT_ALL: &str = "\n@id(\"backdoor\")\npermit(principal, action, resource);\n";

#[tokio::test]
async fn only_a_set_signed_by_a_trusted_key_over_its_exact_content_is_activated() {
    let up = Upstream::start().await;
    let (ws, dir, config) = signed_workspace(up.addr);
    let key = ws.path("keys/policy-signer.key");
    let run = check(&config);
    assert!(
        !run.ok && run.all().contains("unsigned: no policy-set.sig"),
        "{}",
        run.all()
    );
    assert!(serve_refused(&config).contains("unsigned"));
    sign(&dir, &key);
    let run = check(&config);
    assert!(run.ok, "{}", run.all());
    let genuine = std::fs::read_to_string(dir.join("policy-set.sig")).unwrap();

    // (attack on the signed directory, what `check` must say); each undone after.
    type Attack = fn(&Path);
    let attacks: Vec<(&str, Attack, &str)> = vec![
        (
            "a policy added to a file",
            |d| {
                let text = std::fs::read_to_string(d.join("access.cedar")).unwrap();
                std::fs::write(d.join("access.cedar"), text + PERMIT_ALL).unwrap();
            },
            "not what was signed",
        ),
        (
            "an extra policy file",
            |d| std::fs::write(d.join("zz-extra.cedar"), PERMIT_ALL).unwrap(),
            "not what was signed",
        ),
        (
            "an extra file of any kind",
            |d| std::fs::write(d.join("notes.txt"), "hello").unwrap(),
            "not what was signed",
        ),
        (
            "a test case changed",
            |d| std::fs::write(d.join("tests/extra.json"), "[]").unwrap(),
            "not what was signed",
        ),
        (
            "a symlink",
            |d| std::os::unix::fs::symlink(d.join("access.cedar"), d.join("link.cedar")).unwrap(),
            "is a symlink",
        ),
        (
            "the signature deleted",
            |d| std::fs::remove_file(d.join("policy-set.sig")).unwrap(),
            "unsigned",
        ),
        (
            "a signature by an untrusted key",
            |d| {
                let other = d.parent().unwrap().join("keys/other.key");
                let _ = std::fs::remove_file(&other);
                let _ = std::fs::remove_file(other.with_extension("key.pub"));
                assert!(privgate(["policy", "keygen", "--out", other.to_str().unwrap()]).ok);
                sign(d, &other);
            },
            "which [policy] trusted_keys does not list",
        ),
        (
            "the trusted key's signature over another encoding of the same files",
            |d| forge_over_concatenation(d),
            "the signature does not verify",
        ),
    ];
    for (name, attack, expected) in attacks {
        attack(&dir);
        let run = check(&config);
        assert!(
            !run.ok && run.all().contains(expected),
            "{name}: {}",
            run.all()
        );
        assert!(serve_refused(&config).contains(expected), "{name}");
        // Undo: back to the copy of the shipped set and its genuine signature.
        std::fs::remove_dir_all(&dir).unwrap();
        copy_shipped_policies(&dir);
        std::fs::write(dir.join("policy-set.sig"), &genuine).unwrap();
        assert!(check(&config).ok, "{name}: undo");
    }

    // A trusted key kept inside the policy directory is refused outright.
    let inside = config_text_with_key_in(&ws, &dir, up.addr);
    let run = check(&inside);
    assert!(
        !run.ok && run.all().contains("must not be inside policy.dir"),
        "{}",
        run.all()
    );
}

/// A signature by the trusted key (read from the workspace, as an insider with the key but
/// not the tool might make one) over the files simply concatenated, with the correct
/// content hash written beside it: not the canonical form, so it must not verify.
fn forge_over_concatenation(dir: &Path) {
    use ring::signature::Ed25519KeyPair;
    let key_file = dir.parent().unwrap().join("keys/policy-signer.key");
    let pair = Ed25519KeyPair::from_pkcs8(&std::fs::read(key_file).unwrap()).unwrap();
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.ends_with("policy-set.sig"))
        .collect();
    names.sort();
    let mut concatenated = Vec::new();
    for name in names {
        concatenated.extend(std::fs::read(name).unwrap());
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &concatenated);
    let mut sig: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("policy-set.sig")).unwrap())
            .unwrap();
    use base64::Engine;
    sig["signature"] = base64::engine::general_purpose::STANDARD
        .encode(pair.sign(digest.as_ref()).as_ref())
        .into();
    std::fs::write(dir.join("policy-set.sig"), sig.to_string()).unwrap();
}

fn config_text_with_key_in(ws: &Workspace, dir: &Path, upstream: std::net::SocketAddr) -> PathBuf {
    std::fs::copy(
        ws.path("keys/policy-signer.key.pub"),
        ws.path("policy-signer.pub"),
    )
    .unwrap();
    let inside = dir.join("trusted.pub");
    let extra = format!(
        "\n[policy]\ndir = \"{}\"\ntrusted_keys = [\"{}\"]\n",
        dir.display(),
        inside.display()
    );
    ws.write("inside.toml", &config(ws, upstream, "", &extra))
}

/// The policy-set hashes `/metrics` names as active, over and over until `until`.
async fn active_hashes(gw: &Gateway, until: Instant) -> Vec<String> {
    let mut seen = Vec::new();
    while Instant::now() < until {
        gw.signal(Signal::SIGHUP);
        let (_, metrics) = gw.admin_get("/metrics").await;
        for line in metrics
            .lines()
            .filter(|l| l.starts_with("privgate_config_info{"))
        {
            if let Some(rest) = line.split("policy_set_hash=\"").nth(1) {
                seen.push(rest.split('"').next().unwrap().to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

#[tokio::test]
async fn reloads_racing_edits_and_the_signature_never_activate_an_unsigned_set() {
    let up = Upstream::start().await;
    let (ws, dir, config) = signed_workspace(up.addr);
    let key = ws.path("keys/policy-signer.key");
    // Two signed sets that differ in two files, so a half-written change of either is a
    // third, unsigned set.
    let set_a = ws.path("set-a");
    let set_b = ws.path("set-b");
    for (set, extra) in [(&set_a, ""), (&set_b, PERMIT_ALL)] {
        copy_shipped_policies(set);
        let access = std::fs::read_to_string(set.join("access.cedar")).unwrap() + extra;
        std::fs::write(set.join("access.cedar"), access).unwrap();
        let fields = std::fs::read_to_string(set.join("fields.toml")).unwrap()
            + if extra.is_empty() { "" } else { "\n# b\n" };
        std::fs::write(set.join("fields.toml"), fields).unwrap();
        sign(set, &key);
    }
    let (hash_a, hash_b) = (set_hash(&set_a), set_hash(&set_b));
    let install = |set: &Path, file: &str| {
        std::fs::copy(set.join(file), dir.join(file)).unwrap();
    };
    for file in ["access.cedar", "fields.toml", "policy-set.sig"] {
        install(&set_a, file);
    }
    let gw = Gateway::start(&config);

    // Unsigned edit: rejected, A keeps serving.
    let text = std::fs::read_to_string(dir.join("access.cedar")).unwrap();
    std::fs::write(dir.join("access.cedar"), text + PERMIT_ALL).unwrap();
    gw.signal(Signal::SIGHUP);
    let rejected = gw.wait_for_log("rejected");
    assert!(
        rejected["problems"]
            .as_str()
            .unwrap()
            .contains("policy set not activated"),
        "{rejected}"
    );
    install(&set_a, "access.cedar");

    // A writer switching between A and B one file at a time, signature last or first,
    // while reloads run as fast as they can be asked for.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (dir, set_a, set_b, stop) = (dir.clone(), set_a.clone(), set_b.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut round = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let set = if round.is_multiple_of(2) {
                    &set_b
                } else {
                    &set_a
                };
                let mut files = ["access.cedar", "fields.toml", "policy-set.sig"];
                if round % 4 < 2 {
                    files.reverse();
                }
                for file in files {
                    // Written in place (not renamed): readers can see any prefix state.
                    std::fs::write(dir.join(file), std::fs::read(set.join(file)).unwrap()).unwrap();
                    std::thread::sleep(Duration::from_millis(3));
                }
                round += 1;
            }
        })
    };
    let seen = active_hashes(&gw, Instant::now() + Duration::from_secs(4)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(!seen.is_empty());
    for hash in &seen {
        assert!(
            *hash == hash_a || *hash == hash_b,
            "an unsigned set was activated: {hash} (A {hash_a}, B {hash_b})"
        );
    }
    let (_, metrics) = gw.admin_get("/metrics").await;
    let rejected = metrics
        .lines()
        .find_map(|l| l.strip_prefix("privgate_config_reloads_total{outcome=\"rejected\"} "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        rejected >= 2,
        "the race never produced a mixed set: {metrics}"
    );
    assert!(seen.contains(&hash_b), "B was never activated: {seen:?}");
}

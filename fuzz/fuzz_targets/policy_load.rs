//! Policy loading: any text added to the shipped policy set as one more `.cedar` file gives
//! a policy set or problems naming the file, never a panic; a set that loads loads again
//! to the same content hash (the hash every audit record carries).
#![no_main]

use libfuzzer_sys::fuzz_target;
use privgate::policy::PolicyEngine;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A copy of the shipped policy directory, with `fuzz.cedar` to write.
fn policy_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = privgate::fuzzing::scratch_dir("policies");
        for entry in std::fs::read_dir(privgate::fuzzing::shipped_policies()).expect("policies") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
            }
        }
        dir
    })
}

fuzz_target!(|text: &[u8]| {
    let dir = policy_dir();
    std::fs::write(dir.join("fuzz.cedar"), text).expect("write policy");
    match PolicyEngine::load(dir) {
        Err(e) => assert!(!e.problems.is_empty()),
        Ok(engine) => {
            let again = PolicyEngine::load(dir).expect("loads twice");
            assert_eq!(engine.hash(), again.hash());
        }
    }
});

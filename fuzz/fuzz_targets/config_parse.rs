//! Any text given as `privgate.toml` yields a config or a list of problems; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = privgate::config::parse(std::path::Path::new("/fuzz/privgate.toml"), text) {
            assert!(!e.problems.is_empty());
        }
    }
});

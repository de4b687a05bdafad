//! Any text given as `privgate.toml` yields a config or a list of problems, never a panic;
//! and a config that loads loads the same once its TOML is written out again (what an
//! operator's tooling re-serialising the file must not change).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/privgate.toml");
    match privgate::config::parse(path, text) {
        Err(e) => assert!(!e.problems.is_empty()),
        Ok(config) => {
            let table: toml::Table = toml::from_str(text).expect("loaded, so it is TOML");
            let again = toml::to_string(&table).expect("a TOML table writes out");
            let reloaded = privgate::config::parse(path, &again).expect("the same config loads");
            assert_eq!(config, reloaded, "re-serialised config differs");
        }
    }
});

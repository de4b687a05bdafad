//! JSONPath rule loading: any `routes.toml` text compiles against the shipped field classes
//! or is refused with its problems, never a panic; compiled rules bind any JSON body (or
//! refuse it), and every value they bind is really in the body.
//!
//! Input: the `routes.toml` text, a NUL byte, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privgate::protect::document::Document;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let (Some(rules), Some(body)) = (parts.next(), parts.next()) else {
        return;
    };
    let Ok(rules) = std::str::from_utf8(rules) else {
        return;
    };
    let Ok(doc) = Document::parse(body) else {
        return;
    };
    if let Ok(located) = privgate::fuzzing::bind_routes(rules, &doc) {
        for found in located {
            assert!(
                doc.text_at(&found.path).is_some(),
                "bound {:?} which the body does not have",
                found.path
            );
        }
    }
});

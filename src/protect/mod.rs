//! Field protection: what happens to personal data in JSON bodies on the way to and from
//! upstream services.

pub mod document;

//! The demo: a synthetic core-banking API to put the gateway in front of.

pub mod analytics;
pub mod data;
#[cfg(feature = "fhe")]
pub mod fhe;
pub mod issuer;
pub mod upstream;

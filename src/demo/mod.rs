//! The demo: a synthetic core-banking API to put the gateway in front of.

pub(crate) mod analytics;
pub mod data;
#[cfg(feature = "fhe")]
pub(crate) mod fhe;
pub(crate) mod issuer;
pub(crate) mod risk;
pub(crate) mod sign_in;
pub mod upstream;

//! The demo: a synthetic core-banking API to put the gateway in front of.

pub mod analytics;
pub mod data;
pub mod issuer;
pub mod upstream;

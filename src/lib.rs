//! privgate: a privacy gateway for financial services.
//!
//! A TLS reverse proxy that checks who is calling, decides what they may do, and protects
//! PII fields in JSON bodies on their way to and from internal services. See README.md for
//! users' documentation and docs/architecture.md for the architecture.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod analytics;
pub mod audit;
pub mod cli;
pub mod config;
pub mod consent;
pub mod decision;
pub mod demo;
pub mod gateway;
pub mod identity;
pub mod keys;
pub mod policy;
pub mod private_file;
pub mod protect;
pub mod store;
pub mod telemetry;

//! Integration tests: the real `privgate` binary between real TLS clients and real upstream
//! servers on ephemeral loopback ports. One test binary, so everything links once.

mod access_log;
mod admin_api;
mod analytics;
mod audit;
mod audit_ops;
mod check;
mod cli_output;
mod consent_cli;
mod consent_flow;
mod console;
mod demo;
mod faults;
#[cfg(feature = "fhe")]
mod fhe;
mod framing;
mod harness;
mod hostile;
mod identity;
mod keys;
mod keys_cli;
mod keys_hsm;
mod lifecycle;
mod limits;
mod monitoring;
mod operations;
mod outbound;
mod policy_cli;
mod policy_signing;
mod protect;
mod proxy;
mod risk;
mod routes;
mod store;
mod store_migrate;
mod tls;
mod traces;

//! The gateway: TLS listeners, the request path, upstream forwarding and the operations
//! listener (health, readiness, metrics).
//!
//! The request path is assembled in one place, `proxy`, in the order (and for the reasons)
//! docs/architecture.md gives: route, identify, decide, protect, forward, reveal, record.
//! Every phase takes the request's context (`context::RequestContext`) and its own input.
//! Phases return data or a [`GatewayError`]; `rescue` alone turns errors into responses.
//!
//! Modules are private to the crate; public only what the fuzz target needs ([`router`],
//! and [`GatewayError`] its answers carry). Nothing inside the gateway imports this root:
//! shared types live in leaves (`state`, `proxy_body`, `error`), so the only circles left
//! are between a served API's own files.

mod accept;
mod activity;
mod admin_api;
#[cfg(feature = "fuzzing")]
pub(crate) use admin_api::fuzzing as admin_api_fuzzing;
mod analytics_api;
mod body;
mod connection;
mod console;
mod console_sessions;
mod context;
mod decide;
mod error;
#[cfg(feature = "fhe")]
mod fhe_api;
mod framing;
mod generation;
pub(crate) mod headers;
mod identify;
mod keys;
mod lanes;
mod ops_listener;
mod proxy;
mod proxy_body;
mod rate_limit;
mod record;
mod reloads;
mod rescue;
mod respond;
mod reveal;
mod risk;
pub mod router;
mod scrape;
mod served;
mod server;
mod state;
mod subject;
pub(crate) mod tls;
mod totp_api;
mod trace_context;
mod upstream;

pub use error::GatewayError;
pub(crate) use generation::Generation;
pub(crate) use server::{Control, Server};

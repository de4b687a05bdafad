//! The gateway: TLS listeners, the request path, upstream forwarding and the operations
//! listener (health, readiness, metrics).
//!
//! The request path is assembled in one place, `proxy`, in the order (and for the reasons)
//! docs/architecture.md gives: route, identify, decide, protect, forward, reveal, record.
//! Every phase takes the request's context (`context::RequestContext`) and its own input.
//! Phases return data or a [`GatewayError`]; `rescue` alone turns errors into responses.
//!
//! Modules are private to the crate; public only what the fuzz target needs ([`router`],
//! and [`GatewayError`] its answers carry) and [`tls`] (its peer certificate is in the
//! identity service's public interface).

mod activity;
mod admin_api;
mod analytics_api;
mod body;
mod connection;
mod context;
mod decide;
mod error;
#[cfg(feature = "fhe")]
mod fhe_api;
mod generation;
pub(crate) mod headers;
mod identify;
mod keys;
mod mfa;
mod ops_listener;
mod proxy;
mod rate_limit;
mod record;
mod rescue;
mod respond;
mod reveal;
pub mod router;
mod served;
mod server;
mod state;
mod subject;
pub mod tls;
mod upstream;

pub use error::GatewayError;
pub(crate) use generation::Generation;
pub(crate) use server::{Control, Server};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

/// Error type carried by proxied bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type used on both sides of the proxy.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

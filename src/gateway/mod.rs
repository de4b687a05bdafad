//! The gateway: TLS listeners, the request path, upstream forwarding and the operations
//! listener (health, readiness, metrics).
//!
//! The request path is assembled in one place, [`proxy`], in the order of ../DESIGN.md:
//! route, identify, decide, protect, forward, reveal, record. Phases return data or a
//! [`GatewayError`]; [`rescue`] alone turns errors into responses.

mod activity;
mod admin_api;
mod analytics_api;
mod body;
mod connection;
mod context;
mod decide;
pub mod error;
#[cfg(feature = "fhe")]
mod fhe_api;
mod generation;
pub mod headers;
mod identify;
mod keys;
mod mfa;
mod ops_listener;
mod proxy;
mod rate_limit;
mod record;
pub mod rescue;
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
pub use generation::Generation;
pub use server::{Control, Server};
pub use state::ConnectionInfo;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

/// Error type carried by proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type used on both sides of the proxy.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

//! The body type on both sides of the proxy, and the error it carries.
//!
//! A leaf: the phases, the served APIs, rescue and the upstream client all name these types,
//! so they live where none of those has to import the gateway's root (which re-exports the
//! server and would close a circle through every module).

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

/// Error type carried by proxied bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type used on both sides of the proxy.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

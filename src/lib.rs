//! privgate: a privacy gateway for financial services.
//!
//! A TLS reverse proxy that checks who is calling, decides what they may do, and protects
//! PII fields in JSON bodies on their way to and from internal services. See README.md for
//! users' documentation and docs/architecture.md for the architecture.
//!
//! # Public surface
//!
//! The library exists for one binary and its test tools, not for other crates, and none of
//! it is a stable API. A module is public only where one of them uses it; who needs what:
//!
//! - `src/main.rs` (a separate crate): [`cli::run`].
//! - fuzz targets (`fuzz/`): [`config::parse`], [`config::RouteConfig`], the gateway's
//!   router, the field protection and audit surfaces above, and `fuzzing` (only with the
//!   `fuzzing` feature, never in the binary): entry points to the crate-private parsers.
//! - benches (`benches/`): field protection ([`protect`], [`decision`]) over a keyring
//!   ([`keys`]) in a [`store`].
//! - integration tests (`tests/it`): beside those, what they set up or read back without
//!   the binary: [`analytics`] (the DP engine and the FHE key set), [`audit`] records,
//!   [`consent`] records, [`policy`] and [`demo`] (the sample upstream and bank data).
//!
//! Modules only the crate uses (approval-gated operations, identity, certificates,
//! telemetry, private files) are private, and the gateway's items are `pub(crate)` but for
//! the router and its error. Inside the other public modules an item is `pub` when it is
//! reachable from what those users take (every section a [`config::Config`] holds, the
//! error types in public signatures), which is wider than what they call by name; an item
//! nothing outside the crate can reach is `pub(crate)` (the `unreachable_pub` lint finds
//! any that is not).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod analytics;
pub(crate) mod approval;
pub mod audit;
pub(crate) mod certs;
pub mod cli;
pub(crate) mod client_asserted;
pub mod config;
pub mod consent;
pub mod decision;
pub mod demo;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub(crate) mod identity;
pub(crate) mod jsonpath;
pub mod keys;
pub mod outbound;
pub mod policy;
pub(crate) mod private_file;
pub mod protect;
pub mod risk;
pub mod store;
pub(crate) mod telemetry;

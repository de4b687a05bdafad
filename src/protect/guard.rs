//! Placeholder until the PII guard lands (merged from the transforms branch).

/// The guard configuration of a route.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct GuardSpec {}

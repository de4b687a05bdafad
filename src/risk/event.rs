//! What a threshold newly exceeded says in the log line, the audit record and the metric:
//! names only (a leaf, so the audit record can carry it without depending on the tracker).

/// A threshold newly exceeded: what the log line, the audit record and the metric say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RiskEvent {
    /// The threshold's name.
    pub threshold: String,
    /// Its indicator.
    pub indicator: String,
    /// Its window (`1h`).
    pub window: String,
    /// `principal` or `organisation`.
    pub scope: String,
    /// The response it asks for.
    pub response: String,
}

//! The last configuration reloads, kept in memory where the reload happens
//! ([`super::server`]): when, whether the new generation was applied or rejected, and the
//! hashes it came with. The console's Overview shows them; a restart starts the history
//! again (the log and the `config_reloads` metric keep the long view).

use std::collections::VecDeque;
use std::sync::Mutex;

/// Reloads kept: enough to see a morning's edits, small enough to show on one page.
pub(crate) const RELOADS_KEPT: usize = 20;

/// One start or reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reload {
    /// Unix time in milliseconds.
    pub(crate) at_ms: i64,
    /// `started`, `applied` or `rejected`.
    pub(crate) outcome: &'static str,
    /// SHA-256 of the configuration file as read (empty when it could not be read).
    pub(crate) config_sha256: String,
    /// The policy set's hash of the generation applied (none when rejected).
    pub(crate) policy_set_hash: Option<String>,
    /// Problems that rejected it (0 when applied).
    pub(crate) problems: usize,
}

/// The last [`RELOADS_KEPT`] reloads, oldest first.
#[derive(Debug, Default)]
pub(crate) struct ReloadHistory(Mutex<VecDeque<Reload>>);

impl ReloadHistory {
    /// Adds one, dropping the oldest beyond [`RELOADS_KEPT`].
    pub(crate) fn record(&self, reload: Reload) {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == RELOADS_KEPT {
            kept.pop_front();
        }
        kept.push_back(reload);
    }

    /// The reloads kept, newest first.
    pub(crate) fn newest_first(&self) -> Vec<Reload> {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_reloads_newest_first() {
        let history = ReloadHistory::default();
        for at_ms in 0..(RELOADS_KEPT as i64 + 5) {
            history.record(Reload {
                at_ms,
                outcome: "applied",
                config_sha256: String::new(),
                policy_set_hash: None,
                problems: 0,
            });
        }
        let kept = history.newest_first();
        assert_eq!(kept.len(), RELOADS_KEPT);
        assert_eq!(kept[0].at_ms, RELOADS_KEPT as i64 + 4);
        assert_eq!(kept[RELOADS_KEPT - 1].at_ms, 5);
    }
}

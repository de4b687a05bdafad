//! What one principal (or organisation) did in one slice of time: the counts behind every
//! indicator, mergeable (slices into a window, replicas into one view) and serialisable
//! (the store's `risk_slices.tally`).
//!
//! Distinct subjects are a HyperLogLog++ sketch (`cardinality-estimator`, precision 12,
//! 6-bit registers): exact up to 128 subjects (a sorted array), then a standard error of
//! 1.04/sqrt(4096) = 1.6%; 8 bytes for up to 2 subjects, 3 KB at most. Merging two sketches
//! is their union, so a subject read on two replicas counts once. Subject ids are hashed
//! (wyhash) before they reach the sketch, and the store keeps only the sketch.

use crate::config::risk::Indicator;
use cardinality_estimator::CardinalityEstimator;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The distinct-subjects sketch.
pub(crate) type Subjects = CardinalityEstimator<str>;

/// Labels (field classes, refusal reasons) kept per tally: both come from bounded sets (the
/// policy set's classes and `@reason`s), this bounds them whatever the policy set says.
const MAX_LABELS: usize = 64;

/// Counts for one slice of one window (or their merge).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Tally {
    pub(crate) requests: u64,
    pub(crate) subjects: Subjects,
    /// Clear reveals by field class.
    pub(crate) clear_reveals: BTreeMap<String, u64>,
    /// Refusals by reason.
    pub(crate) refusals: BTreeMap<String, u64>,
    pub(crate) off_hours: u64,
    /// Epsilon spent, in nano-epsilon (as the budget ledger keeps it).
    pub(crate) dp_epsilon_nano: u64,
    pub(crate) fhe_releases: u64,
}

/// One request's contribution to the indicators.
#[derive(Debug, Default, Clone)]
pub(crate) struct Observation<'a> {
    /// Data subjects the request accessed (decided and allowed).
    pub(crate) subjects: Vec<&'a str>,
    /// Field classes it revealed in clear.
    pub(crate) clear_reveals: &'a [String],
    /// Its refusal reason, when refused.
    pub(crate) refusal: Option<&'a str>,
    /// Whether it came outside the usual hours.
    pub(crate) off_hours: bool,
    /// Epsilon it spent (nano).
    pub(crate) dp_epsilon_nano: u64,
    /// Whether it released an encrypted-sum total.
    pub(crate) fhe_release: bool,
}

fn bump(map: &mut BTreeMap<String, u64>, label: &str, by: u64) {
    if let Some(count) = map.get_mut(label) {
        *count += by;
    } else if map.len() < MAX_LABELS {
        map.insert(label.to_owned(), by);
    } else {
        *map.entry("other".to_owned()).or_default() += by;
    }
}

impl Tally {
    /// Adds one request.
    pub(crate) fn observe(&mut self, seen: &Observation<'_>) {
        self.requests += 1;
        for subject in &seen.subjects {
            self.subjects.insert(subject);
        }
        for class in seen.clear_reveals {
            bump(&mut self.clear_reveals, class, 1);
        }
        if let Some(reason) = seen.refusal {
            bump(&mut self.refusals, reason, 1);
        }
        self.off_hours += u64::from(seen.off_hours);
        self.dp_epsilon_nano = self.dp_epsilon_nano.saturating_add(seen.dp_epsilon_nano);
        self.fhe_releases += u64::from(seen.fhe_release);
    }

    /// Adds `other`'s counts (the union of their subjects).
    pub(crate) fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.subjects.merge(&other.subjects);
        for (class, n) in &other.clear_reveals {
            bump(&mut self.clear_reveals, class, *n);
        }
        for (reason, n) in &other.refusals {
            bump(&mut self.refusals, reason, *n);
        }
        self.off_hours += other.off_hours;
        self.dp_epsilon_nano = self.dp_epsilon_nano.saturating_add(other.dp_epsilon_nano);
        self.fhe_releases += other.fhe_releases;
    }

    /// The value of `indicator`, restricted to one field class or refusal reason (`label`)
    /// where given; epsilon in epsilon.
    pub(crate) fn value(&self, indicator: Indicator, label: Option<&str>) -> f64 {
        let labelled = |map: &BTreeMap<String, u64>| match label {
            Some(label) => map.get(label).copied().unwrap_or(0),
            None => map.values().sum(),
        };
        match indicator {
            Indicator::Requests => self.requests as f64,
            Indicator::DistinctSubjects => self.subjects.estimate() as f64,
            Indicator::ClearReveals => labelled(&self.clear_reveals) as f64,
            Indicator::Refusals => labelled(&self.refusals) as f64,
            Indicator::OffHours => self.off_hours as f64,
            Indicator::DpEpsilon => self.dp_epsilon_nano as f64 / 1e9,
            Indicator::FheReleases => self.fhe_releases as f64,
        }
    }

    /// The policy context's view (whole numbers; epsilon in thousandths).
    pub(crate) fn facts(&self) -> crate::policy::RiskWindowFacts {
        let long = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        crate::policy::RiskWindowFacts {
            requests: long(self.requests),
            distinct_subjects: long(self.subjects.estimate() as u64),
            clear_reveals: long(self.clear_reveals.values().sum()),
            refusals: long(self.refusals.values().sum()),
            off_hours: long(self.off_hours),
            dp_epsilon_milli: long(self.dp_epsilon_nano / 1_000_000),
            fhe_releases: long(self.fhe_releases),
        }
    }

    /// Bytes it holds on the heap (memory accounting): the sketch's beyond its inline
    /// word, and each label's node (key, count and B-tree node share, about 64 bytes).
    pub(crate) fn heap_size(&self) -> usize {
        let labels = |map: &BTreeMap<String, u64>| map.keys().map(|k| k.len() + 64).sum::<usize>();
        self.subjects.size_of() - std::mem::size_of::<Subjects>()
            + labels(&self.clear_reveals)
            + labels(&self.refusals)
    }
}

//! Sliding windows as rings of slices: a window of length W keeps [`SLICES`] slices of
//! W/[`SLICES`] each, the current one filling. The window's value is the merge of the
//! slices still inside it, so it covers between W·(SLICES-1)/SLICES and W of history (a
//! 1 h window: the last 50 to 60 minutes), and a count leaves it at most W/SLICES late.

use super::tally::{Observation, Tally};
use std::collections::VecDeque;

/// Slices per window.
pub(crate) const SLICES: i64 = 6;

/// One window's slices, oldest first, each with its index (`time / slice length`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Ring {
    slices: VecDeque<(i64, Tally)>,
}

/// A window's slice length in milliseconds.
pub(crate) fn slice_ms(window_ms: i64) -> i64 {
    (window_ms / SLICES).max(1)
}

/// The first slice index still inside a window at `now_ms`.
pub(crate) fn first_live(window_ms: i64, now_ms: i64) -> i64 {
    now_ms / slice_ms(window_ms) - (SLICES - 1)
}

impl Ring {
    /// Adds one request at `now_ms`; returns the index of the slice it went into.
    pub(crate) fn observe(&mut self, window_ms: i64, now_ms: i64, seen: &Observation<'_>) -> i64 {
        let index = now_ms / slice_ms(window_ms);
        self.expire(window_ms, now_ms);
        match self.slices.back_mut() {
            Some((last, tally)) if *last == index => tally.observe(seen),
            _ => {
                let mut tally = Tally::default();
                tally.observe(seen);
                // One slot at a time (at most SLICES): a principal seen once holds one slice,
                // not the four a growing deque would reserve.
                self.slices.reserve_exact(1);
                self.slices.push_back((index, tally));
            }
        }
        index
    }

    /// Puts a stored slice back (a replica seeding itself from the store); a slice it
    /// already has is merged.
    pub(crate) fn restore(&mut self, index: i64, tally: Tally) {
        match self.slices.iter().position(|(i, _)| *i >= index) {
            Some(at) if self.slices[at].0 == index => self.slices[at].1.merge(&tally),
            Some(at) => {
                self.slices.reserve_exact(1);
                self.slices.insert(at, (index, tally));
            }
            None => {
                self.slices.reserve_exact(1);
                self.slices.push_back((index, tally));
            }
        }
    }

    /// Drops the slices that left the window.
    fn expire(&mut self, window_ms: i64, now_ms: i64) {
        let first = first_live(window_ms, now_ms);
        while self.slices.front().is_some_and(|(i, _)| *i < first) {
            self.slices.pop_front();
        }
    }

    /// The window's counts at `now_ms`.
    pub(crate) fn total(&self, window_ms: i64, now_ms: i64) -> Tally {
        let first = first_live(window_ms, now_ms);
        let mut total = Tally::default();
        for (_, tally) in self.slices.iter().filter(|(i, _)| *i >= first) {
            total.merge(tally);
        }
        total
    }

    /// The slice with `index`, if held.
    pub(crate) fn slice(&self, index: i64) -> Option<&Tally> {
        self.slices
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, t)| t)
    }

    /// Bytes held beyond its own size (memory accounting): the slots reserved, and what
    /// each slice holds on the heap.
    pub(crate) fn heap_size(&self) -> usize {
        self.slices.capacity() * std::mem::size_of::<(i64, Tally)>()
            + self
                .slices
                .iter()
                .map(|(_, t)| t.heap_size())
                .sum::<usize>()
    }
}

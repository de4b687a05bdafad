//! Folding stored contributions into per-batch encrypted partial totals, and totals from
//! partials.
//!
//! A contribution's slot fixes its batch (`slot / batch size`, the size fixed when the
//! aggregate is created). A batch is folded once it
//! is full, in the background, as contributions arrive; a replaced contribution makes its
//! batch stale and only that batch is folded again. A release folds what is left (the
//! last, partly filled batch and any stale one) and adds the partials. Each contribution
//! is re-randomized and expanded (one bootstrap per block) exactly once per fold of its
//! batch, and each stored total re-randomized when it is read back (`rerand`);
//! additions defer carries ([`super::fold`]).

pub use super::compute::FoldKeys;
use super::contribution;
use super::fold::{self, Accumulator};
use super::params::Sizing;
use super::{rerand, FheError};
use crate::store::{AggregateRow, BatchRow, ContributionRow, Store};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rayon::prelude::*;
use std::sync::Arc;
use tfhe::integer::RadixCiphertext;

/// An aggregate's layout, from its row.
pub fn sizing(row: &AggregateRow) -> Result<Sizing, FheError> {
    Sizing::new(
        u32::try_from(row.bits).map_err(|_| FheError::Internal("stored bits".into()))?,
        u64::try_from(row.max_contributors)
            .map_err(|_| FheError::Internal("stored count".into()))?,
    )
}

/// Folds one batch if it is stale (and, with `only_full`, full); stores the partial
/// unless the batch changed meanwhile. True if the batch is current afterwards.
pub async fn fold_batch(
    keys: &Arc<FoldKeys>,
    store: &Store,
    row: &AggregateRow,
    batch: i64,
    only_full: bool,
) -> Result<bool, FheError> {
    let Some(state) = store
        .batches(&row.id)
        .await?
        .into_iter()
        .find(|b| b.batch == batch)
    else {
        return Ok(true);
    };
    if state.folded_revision == state.revision && state.partial.is_some() {
        return Ok(true);
    }
    let rows = store
        .batch_contributions(&row.id, batch, row.batch_size)
        .await?;
    if only_full && (rows.len() as i64) < row.batch_size {
        return Ok(false);
    }
    let sizing = sizing(row)?;
    let cap = row.cap.map(|c| c as u64);
    let keys = keys.clone();
    let id = row.id.clone();
    let partial = tokio::task::spawn_blocking(move || fold_rows(&keys, &id, &sizing, cap, &rows))
        .await
        .map_err(|e| FheError::Internal(format!("fold task: {e}")))??;
    let stored = store
        .store_partial(&row.id, batch, state.revision, &B64.encode(partial))
        .await?;
    if stored {
        tracing::debug!(aggregate = %row.id, batch, "batch folded");
    }
    Ok(stored)
}

/// Re-randomizes and expands a batch's contributions (clamped if the aggregate has a cap)
/// and adds them with deferred carries. Blocking: run it off the async runtime.
/// Contributions are expanded in parallel, a chunk at a time, on the key pool
/// ([`FoldKeys::install`]); each one's re-randomization seed is its own, and the
/// additions happen in slot order on one thread, so the result does not depend on
/// scheduling and carries stay deferred across the whole batch.
pub fn fold_rows(
    keys: &FoldKeys,
    aggregate: &str,
    sizing: &Sizing,
    cap: Option<u64>,
    rows: &[ContributionRow],
) -> Result<Vec<u8>, FheError> {
    keys.install(|| {
        let mut acc = Accumulator::new(keys.integer(), sizing);
        // Bounded memory for long offline lists: a chunk of expanded values at a time.
        let chunk = (2 * rayon::current_num_threads()).max(16);
        for rows in rows.chunks(chunk) {
            let values: Vec<RadixCiphertext> = rows
                .par_iter()
                .map(|row| prepare(keys, aggregate, sizing, cap, row))
                .collect::<Result<_, FheError>>()?;
            for value in values {
                acc.add(value)?;
            }
        }
        fold::store_total(keys.integer(), sizing, &acc.finish())
    })
}

/// One stored contribution, re-read, re-randomized, expanded and clamped.
fn prepare(
    keys: &FoldKeys,
    aggregate: &str,
    sizing: &Sizing,
    cap: Option<u64>,
    row: &ContributionRow,
) -> Result<RadixCiphertext, FheError> {
    let bytes = B64
        .decode(&row.ciphertext)
        .map_err(|_| FheError::Malformed("stored contribution"))?;
    let list = contribution::parse(&bytes, &keys.public)?;
    contribution::check_width(&list, sizing)?;
    let metadata = contribution::metadata(aggregate, &row.contributor, &row.nonce);
    let value = contribution::expand(&list, &keys.public, &metadata, sizing)?;
    Ok(match cap {
        Some(cap) => fold::clamp(keys.integer(), &value, cap),
        None => value,
    })
}

/// The aggregate's total from its batches' partials, folding stale batches first. Returns
/// the propagated total and the sum of the batch revisions it reflects (a release closes
/// the aggregate only if that sum is still current).
pub async fn total(
    keys: &Arc<FoldKeys>,
    store: &Store,
    row: &AggregateRow,
) -> Result<(RadixCiphertext, i64), FheError> {
    for _ in 0..8 {
        let batches = store.batches(&row.id).await?;
        let mut current = true;
        for b in &batches {
            if b.folded_revision != b.revision || b.partial.is_none() {
                current &= fold_batch(keys, store, row, b.batch, false).await?;
            }
        }
        if !current {
            continue;
        }
        let batches = store.batches(&row.id).await?;
        if batches
            .iter()
            .any(|b| b.folded_revision != b.revision || b.partial.is_none())
        {
            continue;
        }
        let revisions = batches.iter().map(|b| b.revision).sum();
        let (below, _, running) = current_running(store, row, &batches).await?;
        let mut partials: Vec<String> = running.into_iter().collect();
        partials.extend(
            batches
                .into_iter()
                .filter(|b| b.batch >= below)
                .filter_map(|b| b.partial),
        );
        let sizing = sizing(row)?;
        let keys = keys.clone();
        let id = row.id.clone();
        let total = tokio::task::spawn_blocking(move || {
            add_partials(&keys, &id, "release", &sizing, &partials)
        })
        .await
        .map_err(|e| FheError::Internal(format!("total task: {e}")))??;
        return Ok((total, revisions));
    }
    Err(FheError::Internal(
        "contributions kept changing during the release; try again".into(),
    ))
}

/// The running total if it is current (its batches' revisions unchanged): the batch
/// number below which it sums the partials, the sum of those batches' revisions, and the
/// total; `(0, 0, None)` otherwise.
async fn current_running(
    store: &Store,
    row: &AggregateRow,
    batches: &[BatchRow],
) -> Result<(i64, i64, Option<String>), FheError> {
    let (below, revisions, total) = store.running_total(&row.id).await?;
    let now: i64 = batches
        .iter()
        .filter(|b| b.batch < below)
        .map(|b| b.revision)
        .sum();
    Ok(match (total, now == revisions) {
        (Some(total), true) => (below, revisions, Some(total)),
        _ => (0, 0, None),
    })
}

/// Adds the partials of newly folded full batches into the aggregate's running total, so
/// that a release adds one running total and the last batch instead of every partial
/// (63 for 1,000 contributions). A running total made stale by a replacement is rebuilt.
pub async fn advance_running(
    keys: &Arc<FoldKeys>,
    store: &Store,
    row: &AggregateRow,
) -> Result<(), FheError> {
    let (from_batches, from_revisions, _) = store.running_total(&row.id).await?;
    let batches = store.batches(&row.id).await?;
    let (mut below, mut revisions, running) = current_running(store, row, &batches).await?;
    let (contributors, _) = store.contribution_counts(&row.id).await?;
    let full = contributors / row.batch_size.max(1);
    let mut terms: Vec<String> = running.into_iter().collect();
    let start = below;
    for b in batches.iter().filter(|b| b.batch >= start) {
        let current = b.folded_revision == b.revision && b.partial.is_some();
        if b.batch != below || b.batch >= full || !current {
            break;
        }
        terms.extend(b.partial.clone());
        revisions += b.revision;
        below += 1;
    }
    if below == start {
        return Ok(());
    }
    let sizing = sizing(row)?;
    let keys = keys.clone();
    let id = row.id.clone();
    let total = tokio::task::spawn_blocking(move || {
        let total = add_partials(&keys, &id, "running", &sizing, &terms)?;
        fold::store_total(keys.integer(), &sizing, &total)
    })
    .await
    .map_err(|e| FheError::Internal(format!("running total task: {e}")))??;
    store
        .store_running_total(
            &row.id,
            (from_batches, from_revisions),
            (below, revisions),
            &B64.encode(total),
        )
        .await?;
    Ok(())
}

/// Adds stored totals (blocking): each is read back, re-randomized as input `i` of
/// `aggregate`'s computation `purpose` (`rerand::total`), then added in order.
pub fn add_partials(
    keys: &FoldKeys,
    aggregate: &str,
    purpose: &str,
    sizing: &Sizing,
    partials: &[String],
) -> Result<RadixCiphertext, FheError> {
    keys.install(|| {
        let loaded: Vec<RadixCiphertext> = partials
            .par_iter()
            .enumerate()
            .map(|(i, p)| {
                let bytes = B64
                    .decode(p)
                    .map_err(|_| FheError::Malformed("stored total"))?;
                let mut total = fold::load_total(sizing, &bytes)?;
                rerand::total(keys.rerand_key(), aggregate, purpose, i, &mut total)?;
                Ok(total)
            })
            .collect::<Result<_, FheError>>()?;
        let mut acc = Accumulator::new(keys.integer(), sizing);
        for partial in loaded {
            acc.add(partial)?;
        }
        Ok(acc.finish())
    })
}

//! Folding stored contributions into per-batch encrypted partial totals, and totals from
//! partials.
//!
//! A contribution's slot fixes its batch (`slot / batch size`, the size fixed when the
//! aggregate is created). A batch is folded once it
//! is full, in the background, as contributions arrive; a replaced contribution makes its
//! batch stale and only that batch is folded again. A release folds what is left (the
//! last, partly filled batch and any stale one) and adds the partials. Each contribution
//! is expanded (one bootstrap per block) exactly once per fold of its batch; additions
//! defer carries ([`super::fold`]).

use super::contribution;
use super::fold::{self, Accumulator};
use super::keyset::PublicMaterial;
use super::params::Sizing;
use super::FheError;
use crate::store::{AggregateRow, BatchRow, ContributionRow, Store};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rayon::prelude::*;
use std::sync::Arc;
use tfhe::integer::RadixCiphertext;
use tfhe::ServerKey;

/// What folding needs: the public material (to re-read stored lists) and the server key.
pub struct FoldKeys {
    /// Compact public key and CRS.
    pub public: PublicMaterial,
    /// The server key.
    pub server: ServerKey,
}

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
    let partial = tokio::task::spawn_blocking(move || fold_rows(&keys, &sizing, cap, &rows))
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

/// Expands a batch's contributions (clamped if the aggregate has a cap) and adds them with
/// deferred carries. Blocking: run it off the async runtime. Each expansion and
/// propagation is parallel across blocks inside tfhe; contributions are taken one after
/// another on this thread, which holds tfhe's per-thread server key (setting it from
/// inside rayon tasks can re-enter a borrowed key on a stealing thread).
pub fn fold_rows(
    keys: &FoldKeys,
    sizing: &Sizing,
    cap: Option<u64>,
    rows: &[ContributionRow],
) -> Result<Vec<u8>, FheError> {
    tfhe::set_server_key(keys.server.clone());
    let expanded = rows.iter().map(|row| {
        let bytes = B64
            .decode(&row.ciphertext)
            .map_err(|_| FheError::Malformed("stored contribution"))?;
        let list = contribution::parse(&bytes, &keys.public)?;
        contribution::check_width(&list, sizing)?;
        let value = contribution::expand(&list, sizing)?;
        Ok::<_, FheError>(match cap {
            Some(cap) => fold::clamp(keys.server.as_ref(), &value, cap),
            None => value,
        })
    });
    let mut acc = Accumulator::new(keys.server.as_ref(), sizing);
    for value in expanded {
        acc.add(value?)?;
    }
    fold::store_total(keys.server.as_ref(), sizing, &acc.finish())
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
        let (below, running) = current_running(store, row, &batches).await?;
        let mut partials: Vec<String> = running.into_iter().collect();
        partials.extend(
            batches
                .into_iter()
                .filter(|b| b.batch >= below)
                .filter_map(|b| b.partial),
        );
        let sizing = sizing(row)?;
        let keys = keys.clone();
        let total =
            tokio::task::spawn_blocking(move || add_partials(&keys.server, &sizing, &partials))
                .await
                .map_err(|e| FheError::Internal(format!("total task: {e}")))??;
        return Ok((total, revisions));
    }
    Err(FheError::Internal(
        "contributions kept changing during the release; try again".into(),
    ))
}

/// The running total if it is current (its batches' revisions unchanged): the batch
/// number below which it sums the partials, and the total; `(0, None)` otherwise.
async fn current_running(
    store: &Store,
    row: &AggregateRow,
    batches: &[BatchRow],
) -> Result<(i64, Option<String>), FheError> {
    let (below, revisions, total) = store.running_total(&row.id).await?;
    let now: i64 = batches
        .iter()
        .filter(|b| b.batch < below)
        .map(|b| b.revision)
        .sum();
    Ok(match (total, now == revisions) {
        (Some(total), true) => (below, Some(total)),
        _ => (0, None),
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
    let (mut below, running) = current_running(store, row, &batches).await?;
    let (contributors, _) = store.contribution_counts(&row.id).await?;
    let full = contributors / row.batch_size.max(1);
    let mut terms: Vec<String> = running.into_iter().collect();
    let mut revisions: i64 = batches
        .iter()
        .filter(|b| b.batch < below)
        .map(|b| b.revision)
        .sum();
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
    let total = tokio::task::spawn_blocking(move || {
        let total = add_partials(&keys.server, &sizing, &terms)?;
        fold::store_total(keys.server.as_ref(), &sizing, &total)
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

/// Adds stored partial totals (blocking).
pub fn add_partials(
    server: &ServerKey,
    sizing: &Sizing,
    partials: &[String],
) -> Result<RadixCiphertext, FheError> {
    let loaded: Vec<RadixCiphertext> = partials
        .par_iter()
        .map(|p| {
            let bytes = B64
                .decode(p)
                .map_err(|_| FheError::Malformed("stored total"))?;
            fold::load_total(sizing, &bytes)
        })
        .collect::<Result<_, FheError>>()?;
    let mut acc = Accumulator::new(server.as_ref(), sizing);
    for partial in loaded {
        acc.add(partial)?;
    }
    Ok(acc.finish())
}

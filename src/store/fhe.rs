//! Encrypted-sum aggregates, their contributions and the encrypted partial total of each
//! batch (ciphertexts only; the store never holds a decrypted value).
//!
//! The invariants, each held by one statement or one transaction on both engines:
//! - a contributor has one contribution per aggregate (primary key): a later one replaces
//!   the earlier, keeping its slot (so its batch), and only while the aggregate is open
//!   and before its deadline (the write's own condition);
//! - a proof nonce is used once per aggregate (primary key);
//! - a batch's partial total is stored only if no contribution of the batch changed since
//!   the fold began (`WHERE revision = folded-from`), so a stale fold never wins;
//! - an aggregate is released once (`open -> released`), and a privacy budget is never
//!   overspent (`spent + cost <= budget` in the update).

use super::{Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// An aggregate as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateRow {
    /// Id (a UUID).
    pub id: String,
    /// Name given by its creator.
    pub name: String,
    /// Bits of each contribution.
    pub bits: i64,
    /// Optional cap below 2^bits, applied by homomorphic clamp.
    pub cap: Option<i64>,
    /// Most contributors (sizes the accumulator).
    pub max_contributors: i64,
    /// Contributions per batch (fixed at creation: slots map to batches by it).
    pub batch_size: i64,
    /// Distinct organisations needed for a release.
    pub min_organisations: i64,
    /// Unix ms after which no contribution is taken.
    pub deadline: i64,
    /// `exact` or `dp`.
    pub release_mode: String,
    /// DP: epsilon per release, in millionths.
    pub epsilon_micro: Option<i64>,
    /// DP: the aggregate's whole budget, in millionths.
    pub budget_micro: Option<i64>,
    /// DP: spent so far, in millionths.
    pub spent_micro: i64,
    /// Principal who created it.
    pub created_by: String,
    /// Unix ms.
    pub created_at: i64,
    /// `open` or `released`.
    pub state: String,
    /// When an exact release closed it.
    pub released_at: Option<i64>,
}

/// A stored contribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContributionRow {
    /// Principal (kind and id).
    pub contributor: String,
    /// Their organisation (the threshold counts these).
    pub organisation: String,
    /// Place in the aggregate, for good.
    pub slot: i64,
    /// The proof's nonce.
    pub nonce: String,
    /// Base64 of the proven compact list.
    pub ciphertext: String,
}

/// A batch's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRow {
    /// Batch number (slot / batch size).
    pub batch: i64,
    /// Changes to its contributions so far.
    pub revision: i64,
    /// The revision its partial total was folded from.
    pub folded_revision: i64,
    /// Base64 of the partial total, once folded.
    pub partial: Option<String>,
}

/// What storing a contribution did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContributionWrite {
    /// Stored in this slot; `replaced` if it replaced the contributor's earlier one.
    Stored {
        /// The contributor's slot.
        slot: i64,
        /// Whether an earlier contribution was replaced.
        replaced: bool,
    },
    /// No such aggregate.
    NotFound,
    /// Released or past its deadline.
    Closed,
    /// The nonce was used before in this aggregate.
    NonceReused,
    /// Every slot is taken.
    Full,
}

/// Attempts at taking a new slot when replicas race for the same one.
const SLOT_ATTEMPTS: usize = 8;

impl Store {
    /// Stores a new aggregate.
    pub async fn insert_aggregate(&self, row: &AggregateRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fhe_aggregates (id, name, bits, cap, max_contributors, batch_size, \
             min_organisations, deadline, release_mode, epsilon_micro, budget_micro, spent_micro, \
             created_by, created_at, state) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $13, 'open')",
        )
        .bind(&row.id)
        .bind(&row.name)
        .bind(row.bits)
        .bind(row.cap)
        .bind(row.max_contributors)
        .bind(row.batch_size)
        .bind(row.min_organisations)
        .bind(row.deadline)
        .bind(&row.release_mode)
        .bind(row.epsilon_micro)
        .bind(row.budget_micro)
        .bind(&row.created_by)
        .bind(row.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One aggregate.
    pub async fn aggregate(&self, id: &str) -> Result<Option<AggregateRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, bits, cap, max_contributors, batch_size, min_organisations, deadline, \
             release_mode, epsilon_micro, budget_micro, spent_micro, created_by, created_at, \
             state, released_at FROM fhe_aggregates WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| aggregate_row(&r)).transpose()
    }

    /// Ids of the `limit` most recently created aggregates, open or released, newest first.
    pub async fn recent_aggregates(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT id FROM fhe_aggregates ORDER BY created_at DESC, id LIMIT $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Ids of aggregates still open (the fold worker resumes these at start).
    pub async fn open_aggregates(&self) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT id FROM fhe_aggregates WHERE state = 'open' ORDER BY created_at")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Stores `contributor`'s contribution (replacing an earlier one in place), uses its
    /// nonce and marks its batch changed, in one transaction; refused when the aggregate
    /// is closed at `now_ms`, the nonce was used or every slot is taken.
    pub async fn put_contribution(
        &self,
        aggregate_id: &str,
        contributor: &str,
        organisation: &str,
        nonce: &str,
        ciphertext: &str,
        now_ms: i64,
    ) -> Result<ContributionWrite, StoreError> {
        for _ in 0..SLOT_ATTEMPTS {
            match self
                .try_put_contribution(
                    aggregate_id,
                    contributor,
                    organisation,
                    nonce,
                    ciphertext,
                    now_ms,
                )
                .await
            {
                // Another replica took the same new slot first (unique index): try again.
                Err(StoreError::Unavailable(e)) if e.to_lowercase().contains("unique") => continue,
                other => return other,
            }
        }
        Err(StoreError::Unavailable(
            "could not take a contribution slot".into(),
        ))
    }

    async fn try_put_contribution(
        &self,
        aggregate_id: &str,
        contributor: &str,
        organisation: &str,
        nonce: &str,
        ciphertext: &str,
        now_ms: i64,
    ) -> Result<ContributionWrite, StoreError> {
        let mut tx = self.pool.begin().await?;
        let open = sqlx::query(
            "UPDATE fhe_aggregates SET state = state WHERE id = $1 AND state = 'open' AND deadline > $2 \
             RETURNING max_contributors, batch_size",
        )
        .bind(aggregate_id)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(open) = open else {
            drop(tx);
            return Ok(match self.aggregate(aggregate_id).await? {
                None => ContributionWrite::NotFound,
                Some(_) => ContributionWrite::Closed,
            });
        };
        let max_contributors: i64 = open.try_get("max_contributors")?;
        let batch_size: i64 = open.try_get("batch_size")?;
        let fresh = sqlx::query(
            "INSERT INTO fhe_nonces (aggregate_id, nonce) VALUES ($1, $2) \
             ON CONFLICT (aggregate_id, nonce) DO NOTHING RETURNING nonce",
        )
        .bind(aggregate_id)
        .bind(nonce)
        .fetch_optional(&mut *tx)
        .await?;
        if fresh.is_none() {
            return Ok(ContributionWrite::NonceReused);
        }
        let existing = sqlx::query(
            "SELECT slot FROM fhe_contributions WHERE aggregate_id = $1 AND contributor = $2",
        )
        .bind(aggregate_id)
        .bind(contributor)
        .fetch_optional(&mut *tx)
        .await?;
        let (slot, replaced) = match existing {
            Some(row) => {
                let slot: i64 = row.try_get("slot")?;
                sqlx::query(
                    "UPDATE fhe_contributions SET organisation = $3, nonce = $4, ciphertext = $5, \
                     submitted_at = $6 WHERE aggregate_id = $1 AND contributor = $2",
                )
                .bind(aggregate_id)
                .bind(contributor)
                .bind(organisation)
                .bind(nonce)
                .bind(ciphertext)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                (slot, true)
            }
            None => {
                let next: i64 = sqlx::query(
                    "SELECT COALESCE(MAX(slot) + 1, 0) AS next FROM fhe_contributions WHERE aggregate_id = $1",
                )
                .bind(aggregate_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("next")?;
                if next >= max_contributors {
                    return Ok(ContributionWrite::Full);
                }
                sqlx::query(
                    "INSERT INTO fhe_contributions (aggregate_id, contributor, organisation, slot, \
                     nonce, ciphertext, submitted_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(aggregate_id)
                .bind(contributor)
                .bind(organisation)
                .bind(next)
                .bind(nonce)
                .bind(ciphertext)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                (next, false)
            }
        };
        sqlx::query(
            "INSERT INTO fhe_batches (aggregate_id, batch, revision, folded_revision) \
             VALUES ($1, $2, 1, 0) ON CONFLICT (aggregate_id, batch) \
             DO UPDATE SET revision = fhe_batches.revision + 1",
        )
        .bind(aggregate_id)
        .bind(slot / batch_size)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ContributionWrite::Stored { slot, replaced })
    }

    /// Contributors and distinct organisations of an aggregate (never values). Rows stored
    /// before contributions needed an organisation carry the contributor itself there:
    /// those count toward no organisation, so they cannot meet a threshold on their own.
    pub async fn contribution_counts(&self, aggregate_id: &str) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS contributors, \
             COUNT(DISTINCT CASE WHEN organisation <> contributor THEN organisation END) \
             AS organisations FROM fhe_contributions WHERE aggregate_id = $1",
        )
        .bind(aggregate_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("contributors")?, row.try_get("organisations")?))
    }

    /// The contributions of one batch, by slot.
    pub async fn batch_contributions(
        &self,
        aggregate_id: &str,
        batch: i64,
        batch_size: i64,
    ) -> Result<Vec<ContributionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT contributor, organisation, slot, nonce, ciphertext FROM fhe_contributions \
             WHERE aggregate_id = $1 AND slot >= $2 AND slot < $3 ORDER BY slot",
        )
        .bind(aggregate_id)
        .bind(batch * batch_size)
        .bind((batch + 1) * batch_size)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ContributionRow {
                    contributor: r.try_get("contributor")?,
                    organisation: r.try_get("organisation")?,
                    slot: r.try_get("slot")?,
                    nonce: r.try_get("nonce")?,
                    ciphertext: r.try_get("ciphertext")?,
                })
            })
            .collect()
    }

    /// Every batch of an aggregate, in order.
    pub async fn batches(&self, aggregate_id: &str) -> Result<Vec<BatchRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT batch, revision, folded_revision, partial FROM fhe_batches \
             WHERE aggregate_id = $1 ORDER BY batch",
        )
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BatchRow {
                    batch: r.try_get("batch")?,
                    revision: r.try_get("revision")?,
                    folded_revision: r.try_get("folded_revision")?,
                    partial: r.try_get("partial")?,
                })
            })
            .collect()
    }

    /// Stores a batch's partial total folded from `revision`; false (nothing stored) if
    /// the batch changed meanwhile.
    pub async fn store_partial(
        &self,
        aggregate_id: &str,
        batch: i64,
        revision: i64,
        partial: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE fhe_batches SET partial = $4, folded_revision = $3 \
             WHERE aggregate_id = $1 AND batch = $2 AND revision = $3 RETURNING batch",
        )
        .bind(aggregate_id)
        .bind(batch)
        .bind(revision)
        .bind(partial)
        .fetch_optional(&self.pool)
        .await?;
        Ok(done.is_some())
    }

    /// Closes an open aggregate for good (an exact release), if its batches are still at
    /// the revisions whose sum is `revisions` (no contribution changed since the total
    /// was computed); true for exactly one caller.
    pub async fn close_aggregate_at(
        &self,
        id: &str,
        now_ms: i64,
        revisions: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE fhe_aggregates SET state = 'released', released_at = $2 \
             WHERE id = $1 AND state = 'open' \
               AND (SELECT COALESCE(SUM(revision), 0) FROM fhe_batches WHERE aggregate_id = $1) = $3 \
             RETURNING id",
        )
        .bind(id)
        .bind(now_ms)
        .bind(revisions)
        .fetch_optional(&self.pool)
        .await?;
        Ok(done.is_some())
    }

    /// The running total: (batches below which it sums the partials, the sum of those
    /// batches' revisions it was made from, the encrypted total if any).
    pub async fn running_total(&self, id: &str) -> Result<(i64, i64, Option<String>), StoreError> {
        let row = sqlx::query(
            "SELECT running_batches, running_revisions, running_total FROM fhe_aggregates WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok((
            row.try_get("running_batches")?,
            row.try_get("running_revisions")?,
            row.try_get("running_total")?,
        ))
    }

    /// Replaces the running total read as `(from_batches, from_revisions)` by one over
    /// the batches below `to_batches`, if nobody replaced it meanwhile and those batches'
    /// revisions still sum to `to_revisions`; false (nothing stored) otherwise.
    pub async fn store_running_total(
        &self,
        id: &str,
        from: (i64, i64),
        to: (i64, i64),
        total: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE fhe_aggregates SET running_total = $6, running_batches = $4, running_revisions = $5 \
             WHERE id = $1 AND running_batches = $2 AND running_revisions = $3 \
               AND (SELECT COALESCE(SUM(revision), 0) FROM fhe_batches \
                    WHERE aggregate_id = $1 AND batch < $4) = $5 \
             RETURNING id",
        )
        .bind(id)
        .bind(from.0)
        .bind(from.1)
        .bind(to.0)
        .bind(to.1)
        .bind(total)
        .fetch_optional(&self.pool)
        .await?;
        Ok(done.is_some())
    }

    /// Spends `cost_micro` of an aggregate's privacy budget if it is left; false if not.
    pub async fn spend_aggregate_budget(
        &self,
        id: &str,
        cost_micro: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE fhe_aggregates SET spent_micro = spent_micro + $2 \
             WHERE id = $1 AND budget_micro IS NOT NULL AND spent_micro + $2 <= budget_micro RETURNING id",
        )
        .bind(id)
        .bind(cost_micro)
        .fetch_optional(&self.pool)
        .await?;
        Ok(done.is_some())
    }
}

fn aggregate_row(r: &AnyRow) -> Result<AggregateRow, StoreError> {
    Ok(AggregateRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        bits: r.try_get("bits")?,
        cap: r.try_get("cap")?,
        max_contributors: r.try_get("max_contributors")?,
        batch_size: r.try_get("batch_size")?,
        min_organisations: r.try_get("min_organisations")?,
        deadline: r.try_get("deadline")?,
        release_mode: r.try_get("release_mode")?,
        epsilon_micro: r.try_get("epsilon_micro")?,
        budget_micro: r.try_get("budget_micro")?,
        spent_micro: r.try_get("spent_micro")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        state: r.try_get("state")?,
        released_at: r.try_get("released_at")?,
    })
}

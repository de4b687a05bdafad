//! Admin operations awaiting approval, and their approvals.
//!
//! The invariants live in single conditional statements, so they hold across replicas on
//! both engines without relying on isolation levels:
//! - an approval is inserted only while its operation is pending and unexpired, and at most
//!   once per approver (the primary key; `ON CONFLICT DO NOTHING`);
//! - an operation moves `pending -> executed` only when its distinct approvals reach the
//!   threshold, and only once (`UPDATE ... WHERE state = 'pending' ... RETURNING`).

use super::{Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// State of an operation that is waiting for approvals (the other state is `executed`).
const PENDING: &str = "pending";

/// An operation to be stored, with its requester as the first approval.
#[derive(Debug, Clone)]
pub struct NewOperationRow {
    /// Operation id.
    pub id: String,
    /// Kind (the Cedar action, e.g. `keys:shred`).
    pub kind: String,
    /// The operation as JSON.
    pub parameters: String,
    /// Principal who asked for it (and its first approver).
    pub requested_by: String,
    /// Unix ms.
    pub requested_at: i64,
    /// After this (Unix ms) it can no longer be approved or executed.
    pub expires_at: i64,
    /// Distinct approvals needed.
    pub approvals_required: i64,
}

/// An operation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRow {
    /// Operation id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// The operation as JSON.
    pub parameters: String,
    /// Who asked.
    pub requested_by: String,
    /// Unix ms.
    pub requested_at: i64,
    /// Unix ms.
    pub expires_at: i64,
    /// Distinct approvals needed.
    pub approvals_required: i64,
    /// `pending` or `executed`.
    pub state: String,
    /// Distinct approvers so far, oldest first (the requester first).
    pub approvers: Vec<String>,
    /// When it was executed.
    pub executed_at: Option<i64>,
    /// Whose approval executed it.
    pub executed_by: Option<String>,
    /// `done`, or `failed: ...`; absent while it runs.
    pub outcome: Option<String>,
}

/// Outcome of adding an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalInsert {
    /// Counted.
    Added,
    /// This approver had already approved: not counted again.
    Duplicate,
    /// No such operation.
    NotFound,
    /// The operation is no longer pending (already executed).
    NotPending,
    /// The operation expired before this approval.
    Expired,
}

impl Store {
    /// Stores a pending operation and its requester's approval, in one transaction.
    pub async fn insert_operation(&self, new: &NewOperationRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO admin_operations (id, kind, parameters, requested_by, requested_at, \
             expires_at, approvals_required, state) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending')",
        )
        .bind(&new.id)
        .bind(&new.kind)
        .bind(&new.parameters)
        .bind(&new.requested_by)
        .bind(new.requested_at)
        .bind(new.expires_at)
        .bind(new.approvals_required)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO admin_approvals (operation_id, approver, approved_at) VALUES ($1, $2, $3)",
        )
        .bind(&new.id)
        .bind(&new.requested_by)
        .bind(new.requested_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds `approver`'s approval if the operation is pending and unexpired at `now_ms` and
    /// they have not approved it yet: one conditional insert, race-free across replicas.
    pub async fn add_approval(
        &self,
        id: &str,
        approver: &str,
        now_ms: i64,
    ) -> Result<ApprovalInsert, StoreError> {
        let added = sqlx::query(
            "INSERT INTO admin_approvals (operation_id, approver, approved_at) \
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM admin_operations \
               WHERE id = $1 AND state = 'pending' AND expires_at > $3) \
             ON CONFLICT (operation_id, approver) DO NOTHING RETURNING approver",
        )
        .bind(id)
        .bind(approver)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        if added.is_some() {
            return Ok(ApprovalInsert::Added);
        }
        // Not inserted: say why, from what is stored now.
        let Some(op) = self.operation(id).await? else {
            return Ok(ApprovalInsert::NotFound);
        };
        Ok(if op.state != PENDING {
            ApprovalInsert::NotPending
        } else if op.expires_at <= now_ms {
            ApprovalInsert::Expired
        } else {
            ApprovalInsert::Duplicate
        })
    }

    /// Moves the operation `pending -> executed` if its distinct approvals reach its
    /// threshold and it has not expired; true for exactly one caller, whichever replica.
    pub async fn claim_operation(
        &self,
        id: &str,
        executor: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let claimed = sqlx::query(
            "UPDATE admin_operations SET state = 'executed', executed_at = $3, executed_by = $2 \
             WHERE id = $1 AND state = 'pending' AND expires_at > $3 \
               AND (SELECT COUNT(*) FROM admin_approvals WHERE operation_id = $1) >= approvals_required \
             RETURNING id",
        )
        .bind(id)
        .bind(executor)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(claimed.is_some())
    }

    /// Moves a pending, unexpired operation to `denied` (by `denier`, at `now_ms`): it can
    /// then neither be approved nor executed. True for exactly one caller.
    pub async fn deny_operation(
        &self,
        id: &str,
        denier: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let denied = sqlx::query(
            "UPDATE admin_operations SET state = 'denied', executed_at = $3, executed_by = $2, \
             outcome = 'denied' WHERE id = $1 AND state = 'pending' AND expires_at > $3 \
             RETURNING id",
        )
        .bind(id)
        .bind(denier)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(denied.is_some())
    }

    /// Records how an executed operation ended.
    pub async fn set_operation_outcome(&self, id: &str, outcome: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE admin_operations SET outcome = $2 WHERE id = $1 AND state = 'executed'",
        )
        .bind(id)
        .bind(outcome)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One operation with its approvers.
    pub async fn operation(&self, id: &str) -> Result<Option<OperationRow>, StoreError> {
        let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.with_approvers(&row).await?)),
            None => Ok(None),
        }
    }

    /// Every operation, newest first.
    pub async fn operations(&self) -> Result<Vec<OperationRow>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT} ORDER BY requested_at DESC, id"))
            .fetch_all(&self.pool)
            .await?;
        let mut all = Vec::with_capacity(rows.len());
        for row in &rows {
            all.push(self.with_approvers(row).await?);
        }
        Ok(all)
    }

    async fn with_approvers(&self, row: &AnyRow) -> Result<OperationRow, StoreError> {
        let id: String = row.try_get("id")?;
        let approvers = sqlx::query(
            "SELECT approver FROM admin_approvals WHERE operation_id = $1 ORDER BY approved_at, approver",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("approver"))
        .collect::<Result<Vec<_>, _>>()?;
        Ok(OperationRow {
            id,
            kind: row.try_get("kind")?,
            parameters: row.try_get("parameters")?,
            requested_by: row.try_get("requested_by")?,
            requested_at: row.try_get("requested_at")?,
            expires_at: row.try_get("expires_at")?,
            approvals_required: row.try_get("approvals_required")?,
            state: row.try_get("state")?,
            approvers,
            executed_at: row.try_get("executed_at")?,
            executed_by: row.try_get("executed_by")?,
            outcome: row.try_get("outcome")?,
        })
    }
}

const SELECT: &str = "SELECT id, kind, parameters, requested_by, requested_at, expires_at, \
    approvals_required, state, executed_at, executed_by, outcome FROM admin_operations";

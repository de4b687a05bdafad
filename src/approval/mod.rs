//! Approval-gated operations under separation of duties: destructive key operations, token
//! revocation and consent revocation on a customer's behalf are *requested* (the requester is the first approver), *approved* by further
//! distinct principals, and *executed* once, by whichever approval meets the threshold.
//!
//! The contract, enforced by the store's conditional statements (see `store::operations`):
//! - a principal's approval counts once, however often it is given;
//! - nothing is approved or executed after the request expires (default 24 h);
//! - an operation executes exactly once, whatever the number of concurrent approvers or
//!   replicas (`pending -> executed` is one conditional update); if the execution itself
//!   fails, the failure is recorded and the operation is not retried: request it again.
//!
//! The gateway's admin API and `privgate admin` both come here; authorisation (who may ask
//! or approve which kind) is the caller's, by policy in the gateway.

pub(crate) mod consents;
mod execute;
mod operation;

pub(crate) use execute::Executor;
pub(crate) use operation::{Operation, OperationStatus, OperationView, CONSENT_PURPOSE};

use crate::store::{now_ms, ApprovalInsert, NewOperationRow, Store, StoreError};
use std::time::Duration;

/// How operations are approved (from `[admin]` in privgate.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ApprovalRules {
    /// Distinct approvers a destructive key operation needs.
    pub approvals_required: u32,
    /// Distinct approvers a consent revocation on a customer's behalf needs.
    pub consent_revocation_approvals: u32,
    /// How long a request waits for approvals.
    pub ttl: Duration,
}

impl ApprovalRules {
    /// The rules of a configuration.
    pub(crate) fn from_config(config: &crate::config::AdminConfig) -> Self {
        Self {
            approvals_required: config.approvals_required,
            consent_revocation_approvals: config.consent_revocation_approvals,
            ttl: config.approval_ttl,
        }
    }
}

/// Why a request or approval of an operation was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is malformed or names something invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No operation (or consent) has that id.
    #[error("not found")]
    NotFound,
    /// This principal has already approved the operation; it is not counted twice.
    #[error("already approved by this principal")]
    AlreadyApproved,
    /// The operation expired before it had its approvals.
    #[error("operation expired")]
    Expired,
    /// The operation has already been executed.
    #[error("operation no longer pending")]
    NotPending,
    /// The direct command is refused: the configuration asks for several approvers.
    #[error(
        "this operation needs {0} distinct approvals ([admin] in privgate.toml): request it with `privgate admin request` (or POST /admin/v1/operations) and have it approved"
    )]
    ApprovalsRequired(u32),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl AdminError {
    /// Whether the caller caused it (a malformed request, a record's state) rather than
    /// the store.
    pub fn is_client(&self) -> bool {
        !matches!(self, Self::Store(_))
    }
}

/// Records a request for `op` by `requester` (its first approval) and executes it at once
/// when one approval is enough.
pub(crate) async fn request(
    exec: &Executor<'_>,
    rules: ApprovalRules,
    op: Operation,
    requester: &str,
) -> Result<OperationView, AdminError> {
    op.validate()?;
    if let Operation::ConsentRevoke { consent, subject } = &op {
        // The record is the authority on its subject (spelled as it was when granted).
        consents::of_subject(exec.store, consent, subject).await?;
    } else if op.subject().is_some_and(|id| !exec.subject_ids.accepts(id)) {
        return Err(AdminError::Invalid(
            "subject: not an id as the routes spell subject ids (another spelling is no \
             customer's; nothing would be shredded)"
                .to_owned(),
        ));
    }
    let now = now_ms();
    let ttl = i64::try_from(rules.ttl.as_millis()).unwrap_or(i64::MAX);
    let row = NewOperationRow {
        id: uuid::Uuid::new_v4().to_string(),
        kind: op.action().to_owned(),
        parameters: serde_json::to_string(&op).map_err(|e| AdminError::Invalid(e.to_string()))?,
        requested_by: requester.to_owned(),
        requested_at: now,
        expires_at: now.saturating_add(ttl),
        approvals_required: i64::from(op.approvals_required(rules)),
    };
    exec.store.insert_operation(&row).await?;
    execute_when_approved(exec, &row.id, requester, now).await?;
    load(exec.store, &row.id).await
}

/// Adds `approver`'s approval; executes the operation if that meets the threshold.
pub(crate) async fn approve(
    exec: &Executor<'_>,
    id: &str,
    approver: &str,
) -> Result<OperationView, AdminError> {
    let now = now_ms();
    match exec.store.add_approval(id, approver, now).await? {
        ApprovalInsert::Added => {}
        ApprovalInsert::Duplicate => return Err(AdminError::AlreadyApproved),
        ApprovalInsert::NotFound => return Err(AdminError::NotFound),
        ApprovalInsert::NotPending => return Err(AdminError::NotPending),
        ApprovalInsert::Expired => return Err(AdminError::Expired),
    }
    execute_when_approved(exec, id, approver, now).await?;
    load(exec.store, id).await
}

/// Denies a pending operation (`denier` decides it will not run): it can no longer be
/// approved or executed. Refused once it is no longer pending or has expired.
pub(crate) async fn deny(
    store: &Store,
    id: &str,
    denier: &str,
) -> Result<OperationView, AdminError> {
    let now = now_ms();
    if !store.deny_operation(id, denier, now).await? {
        let view = load(store, id).await?;
        return Err(match view.status {
            OperationStatus::Expired => AdminError::Expired,
            _ => AdminError::NotPending,
        });
    }
    tracing::info!(operation = %id, "admin operation denied");
    load(store, id).await
}

/// One operation as shown to operators.
pub(crate) async fn load(store: &Store, id: &str) -> Result<OperationView, AdminError> {
    let row = store.operation(id).await?.ok_or(AdminError::NotFound)?;
    OperationView::from_row(row, now_ms())
}

/// Claims the operation (`pending -> executed`, exactly once across replicas) if its
/// approvals reach the threshold, then runs it and records the outcome.
async fn execute_when_approved(
    exec: &Executor<'_>,
    id: &str,
    principal: &str,
    now: i64,
) -> Result<(), AdminError> {
    if !exec.store.claim_operation(id, principal, now).await? {
        return Ok(());
    }
    let row = exec
        .store
        .operation(id)
        .await?
        .ok_or(AdminError::NotFound)?;
    let op: Operation = serde_json::from_str(&row.parameters)
        .map_err(|e| StoreError::Invalid(format!("admin_operations.parameters: {e}")))?;
    let outcome = match exec.run(&op).await {
        Ok(summary) => format!("{DONE}: {summary}"),
        Err(e) => {
            tracing::warn!(operation = %id, kind = op.action(), error = %e, "admin operation failed");
            format!("failed: {e}")
        }
    };
    tracing::info!(operation = %id, kind = op.action(), %outcome, "admin operation executed");
    exec.store.set_operation_outcome(id, &outcome).await?;
    Ok(())
}

/// How an executed operation's outcome begins when it succeeded (the rest says what it
/// did); anything else is `failed: ...`.
pub(crate) const DONE: &str = "done";

/// Refuses running `op` directly (the CLI's `keys shred`, `consent revoke`, ...) when the
/// configuration asks for more than one approver of it: the two-person rule is not
/// bypassed through a direct command.
pub(crate) fn refuse_direct(op: &Operation, rules: ApprovalRules) -> Result<(), AdminError> {
    match op.approvals_required(rules) {
        0 | 1 => Ok(()),
        n => Err(AdminError::ApprovalsRequired(n)),
    }
}

#[cfg(test)]
mod tests;

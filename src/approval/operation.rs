//! What an admin operation is (its kind and parameters, as requested) and how it is shown.

use super::{AdminError, ApprovalRules};
use crate::store::OperationRow;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// An operation that goes through approval. Its JSON form is the API's request body and
/// what the store keeps: `{"kind": "keys:shred", "subject": "cust-42"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub(crate) enum Operation {
    /// Destroy a data subject's keys (`privgate keys shred`).
    #[serde(rename = "keys:shred")]
    KeysShred {
        /// The data subject.
        subject: String,
    },
    /// Retire a key's versions below `min_version` (`privgate keys retire`).
    #[serde(rename = "keys:retire")]
    KeysRetire {
        /// Key name.
        name: String,
        /// Lowest version that stays usable.
        min_version: u32,
    },
    /// Restore a keyring backup file, read on the host that executes it
    /// (`privgate keys restore`).
    #[serde(rename = "keys:restore")]
    KeysRestore {
        /// Backup file path on the executing host.
        backup: PathBuf,
        /// Replace an existing keyring.
        #[serde(default)]
        force: bool,
    },
    /// Put a token (`jti`) or all of a subject's tokens (`sub`) on the deny-list.
    #[serde(rename = "token:revoke")]
    TokenRevoke {
        /// One token's `jti`.
        #[serde(default)]
        jti: Option<String>,
        /// Every token of this subject issued so far.
        #[serde(default)]
        sub: Option<String>,
    },
    /// Withdraw a consent on its data subject's behalf (`privgate consent revoke`, the
    /// console's Revoke button, `POST /consents/{id}/revoke`).
    #[serde(rename = "consent:revoke")]
    ConsentRevoke {
        /// The consent record's id.
        consent: String,
        /// The record's data subject: what policy decides on. Checked against the record
        /// when requested and again when executed, so an operation cannot name one
        /// subject and revoke another's consent.
        subject: String,
    },
    /// Lift a principal's risk suspension (`[[risk.threshold]]` with `response = "suspend"`).
    #[serde(rename = "risk:clear")]
    RiskClear {
        /// The principal as audit records name it (`User:alice`).
        principal: String,
    },
}

/// The purpose consent revocations are requested and approved for.
pub(crate) const CONSENT_PURPOSE: &str = "consent_administration";

/// The purpose the other operations (keys, tokens, risk) are requested and approved for.
pub(crate) const KEY_PURPOSE: &str = "key_management";

/// Longest identifier (subject, key name, jti) accepted in an operation.
const MAX_ID_LEN: usize = 256;

impl Operation {
    /// The Cedar action that authorises requesting, approving and reading it.
    pub(crate) fn action(&self) -> &'static str {
        match self {
            Self::KeysShred { .. } => "keys:shred",
            Self::KeysRetire { .. } => "keys:retire",
            Self::KeysRestore { .. } => "keys:restore",
            Self::TokenRevoke { .. } => "token:revoke",
            Self::ConsentRevoke { .. } => "consent:revoke",
            Self::RiskClear { .. } => "risk:clear",
        }
    }

    /// The purpose people act for when they request, approve or deny it (the console asks
    /// policy with it; API callers declare their own).
    pub(crate) fn purpose(&self) -> &'static str {
        match self {
            Self::ConsentRevoke { .. } => CONSENT_PURPOSE,
            _ => KEY_PURPOSE,
        }
    }

    /// The action's resource id: the data subject for a shred, else the gateway part it
    /// acts on (`Gateway::"keyring"`, `Gateway::"tokens"`).
    pub(crate) fn resource(&self) -> &str {
        match self {
            Self::KeysShred { subject } | Self::ConsentRevoke { subject, .. } => subject,
            Self::KeysRetire { .. } | Self::KeysRestore { .. } => "keyring",
            Self::TokenRevoke { .. } => "tokens",
            Self::RiskClear { .. } => "risk",
        }
    }

    /// The data subject it concerns, if any (audited as a pseudonym).
    pub(crate) fn subject(&self) -> Option<&str> {
        match self {
            Self::KeysShred { subject } | Self::ConsentRevoke { subject, .. } => Some(subject),
            _ => None,
        }
    }

    /// A keyring restore from `backup`, made absolute so the path means the same file
    /// whoever executes the operation on this host.
    pub(crate) fn restore(backup: std::path::PathBuf, force: bool) -> Self {
        Self::KeysRestore {
            backup: std::path::absolute(&backup).unwrap_or(backup),
            force,
        }
    }

    /// Distinct approvals it needs. Destructive key operations need the configured number;
    /// token revocation needs one: it only ever takes access away, and making it wait for
    /// a second person would leave a stolen token usable meanwhile. Revoking a consent on
    /// a customer's behalf needs `[admin] consent_revocation_approvals` (1 by default: the
    /// customer asked, and a wait keeps processing they withdrew from going on).
    pub(crate) fn approvals_required(&self, rules: ApprovalRules) -> u32 {
        match self {
            Self::TokenRevoke { .. } => 1,
            Self::ConsentRevoke { .. } => rules.consent_revocation_approvals.max(1),
            _ => rules.approvals_required.max(1),
        }
    }

    /// Checks the parameters before anything is stored.
    pub(crate) fn validate(&self) -> Result<(), AdminError> {
        let id_ok =
            |s: &str| !s.is_empty() && s.len() <= MAX_ID_LEN && !s.contains(char::is_control);
        let invalid = |m: &str| Err(AdminError::Invalid(m.to_owned()));
        match self {
            Self::KeysShred { subject } if !id_ok(subject) => {
                invalid("subject: 1 to 256 characters")
            }
            Self::KeysRetire { name, .. } if !id_ok(name) => invalid("name: 1 to 256 characters"),
            Self::ConsentRevoke { consent, subject } if !id_ok(consent) || !id_ok(subject) => {
                invalid("consent and subject: 1 to 256 characters each")
            }
            Self::RiskClear { principal } if !id_ok(principal) => {
                invalid("principal: 1 to 256 characters")
            }
            Self::KeysRestore { backup, .. } if backup.as_os_str().is_empty() => {
                invalid("backup: a file path is required")
            }
            Self::TokenRevoke { jti, sub } => match (jti, sub) {
                (Some(v), None) | (None, Some(v)) if id_ok(v) => Ok(()),
                _ => invalid("exactly one of jti or sub, 1 to 256 characters"),
            },
            _ => Ok(()),
        }
    }
}

/// Where an operation stands at a moment (computed from its row and the time, no job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OperationStatus {
    /// Waiting for approvals.
    Pending,
    /// Expired before it had its approvals.
    Expired,
    /// Claimed for execution; its outcome is not recorded yet.
    Executing,
    /// Executed successfully.
    Executed,
    /// Executed, and the execution failed (not retried).
    Failed,
    /// Denied by an approver: never executed.
    Denied,
}

/// An operation as the API and CLI show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct OperationView {
    /// Operation id.
    pub id: String,
    /// The operation.
    pub operation: Operation,
    /// Where it stands now.
    pub status: OperationStatus,
    /// Who asked (the first approver).
    pub requested_by: String,
    /// Unix ms.
    pub requested_at: i64,
    /// Unix ms.
    pub expires_at: i64,
    /// Distinct approvals needed.
    pub approvals_required: i64,
    /// Distinct approvers so far.
    pub approvers: Vec<String>,
    /// Whose approval executed it.
    pub executed_by: Option<String>,
    /// Unix ms.
    pub executed_at: Option<i64>,
    /// `done: <what it did>` or `failed: <why>`.
    pub outcome: Option<String>,
}

impl OperationView {
    /// The view of a stored row at `now_ms`.
    pub(crate) fn from_row(row: OperationRow, now_ms: i64) -> Result<Self, AdminError> {
        let operation: Operation = serde_json::from_str(&row.parameters).map_err(|e| {
            crate::store::StoreError::Invalid(format!("admin_operations.parameters: {e}"))
        })?;
        let status = match (row.state.as_str(), row.outcome.as_deref()) {
            ("pending", _) if row.expires_at <= now_ms => OperationStatus::Expired,
            ("pending", _) => OperationStatus::Pending,
            ("denied", _) => OperationStatus::Denied,
            (_, None) => OperationStatus::Executing,
            (_, Some(outcome)) if outcome.starts_with(super::DONE) => OperationStatus::Executed,
            (_, Some(_)) => OperationStatus::Failed,
        };
        Ok(Self {
            id: row.id,
            operation,
            status,
            requested_by: row.requested_by,
            requested_at: row.requested_at,
            expires_at: row.expires_at,
            approvals_required: row.approvals_required,
            approvers: row.approvers,
            executed_by: row.executed_by,
            executed_at: row.executed_at,
            outcome: row.outcome,
        })
    }
}

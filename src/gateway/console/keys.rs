//! The Keys page: every key version with its status and, for AES-GCM keys, its uses
//! against the configured bound; how many data subjects were shredded; and the queue of
//! approval-gated operations with Approve and Deny. Key material never leaves the keyring.
//!
//! The queue is the admin API's, through [`crate::approval`]: each operation is shown only
//! to a person whose policy allows its kind's action (`keys:shred`, ...), and approving or
//! denying is decided on that action again, so the console can do no more than the admin
//! API would. The flow counts a principal's approval once (a second person is needed where
//! `[admin] approvals_required` says so) and executes exactly once. Where policy asks for
//! a fresher factor (`step_up_required`, e.g. `key-operations-need-fresh-mfa`), the person
//! is sent back through sign-in with the console's step-up request, then returns here.

use super::html::{self, Chrome};
use super::pages::{ask, authorize, form_post, page_view, prefix, query_params, store, timestamp};
use crate::approval::{self, OperationStatus, OperationView};
use crate::gateway::context::RequestContext;
use crate::gateway::error::{ConsoleError, GatewayError};
use crate::gateway::proxy_body::ProxyBody;
use crate::identity::IdentityError;
use askama::Template;
use http::Response;
use hyper::body::Incoming;

/// The purpose key operations are requested, approved and denied for (the admin API's).
const KEY_PURPOSE: &str = "key_management";

/// The console's own action for its Approve and Deny buttons (asked before the
/// operation kind's).
const APPROVE_ACTION: &str = "console:approve";

/// Finished operations the queue still shows below the pending ones.
const FINISHED_SHOWN: usize = 10;

/// One key version (never material).
struct KeyVersionRow {
    name: String,
    kind: String,
    version: i64,
    status: String,
    /// `uses / bound (n%)` for AES-GCM versions; empty for the others.
    uses: String,
    /// Whether the version is past 80% of its bound (time to rotate).
    near_bound: bool,
}

/// One operation in the queue.
struct OperationRow {
    id: String,
    kind: &'static str,
    target: String,
    status: String,
    requested_by: String,
    requested_at: String,
    approvals: String,
    outcome: String,
    /// Pending, and the person has not approved it yet: Approve and Deny are offered.
    actionable: bool,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage<'a> {
    chrome: &'a Chrome,
    keyring: bool,
    versions: Vec<KeyVersionRow>,
    shredded: i64,
    operations: Vec<OperationRow>,
    notice: &'a str,
}

/// `GET /keys`: key versions, the shredded count and the approval queue.
pub(super) async fn keys(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (_, chrome) = match page_view(ctx, "keys").await? {
        Ok(viewed) => viewed,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let notice = match query_params(ctx).get("notice").map(String::as_str) {
        Some("approved") => "Approved: the operation waits for its other approvals.",
        Some("executed") => "Approved: that was the last approval needed, and it ran.",
        Some("denied") => "Denied: the operation will not run.",
        _ => "",
    };
    let store = store(ctx)?;
    let keyring = ctx.shared.keys.0.is_some();
    let (mut versions, mut shredded) = (Vec::new(), 0);
    if keyring {
        let bound = ctx.generation.config.keys.as_ref().map(|k| k.aead_max_uses);
        let rows = store.data_key_rows().await.map_err(internal)?;
        versions = rows
            .into_iter()
            .map(|row| {
                let (uses, near_bound) = match (row.kind.as_str(), bound) {
                    ("aead", Some(bound)) if bound > 0 => {
                        let share = row.uses as f64 / bound as f64;
                        let text = format!("{} / {bound} ({:.1}%)", row.uses, share * 100.0);
                        (text, share >= 0.8)
                    }
                    _ => (String::new(), false),
                };
                KeyVersionRow {
                    name: row.name,
                    kind: row.kind,
                    version: row.version,
                    status: row.status,
                    uses,
                    near_bound,
                }
            })
            .collect();
        shredded = store.shredded_subjects().await.map_err(internal)?;
    }
    let operations = queue(ctx).await?;
    html::page(&KeysPage {
        chrome: &chrome,
        keyring,
        versions,
        shredded,
        operations,
        notice,
    })
}

/// The operations this person may act on (allowed, or allowed after a step-up): pending
/// ones first, then the last few finished.
async fn queue(ctx: &mut RequestContext<'_>) -> Result<Vec<OperationRow>, GatewayError> {
    let me = ctx
        .identity
        .as_ref()
        .map(|i| i.caller.principal())
        .unwrap_or_default();
    let now = crate::store::now_ms();
    let rows = store(ctx)?.operations().await.map_err(internal)?;
    let (mut pending, mut finished) = (Vec::new(), Vec::new());
    for row in rows {
        let view = OperationView::from_row(row, now)?;
        let op = &view.operation;
        let decision = ask(ctx, op.action(), op.resource(), KEY_PURPOSE)?;
        let may = decision.allowed()
            || decision
                .refusal
                .as_ref()
                .is_some_and(|r| r.reason == crate::gateway::decide::STEP_UP_REQUIRED);
        if !may {
            continue;
        }
        let shown = operation_row(&view, &me);
        match view.status {
            OperationStatus::Pending => pending.push(shown),
            _ if finished.len() < FINISHED_SHOWN => finished.push(shown),
            _ => {}
        }
    }
    pending.extend(finished);
    Ok(pending)
}

fn operation_row(view: &OperationView, me: &str) -> OperationRow {
    let op = &view.operation;
    let pending = view.status == OperationStatus::Pending;
    OperationRow {
        id: view.id.clone(),
        kind: op.action(),
        target: op.subject().unwrap_or(op.resource()).to_owned(),
        status: serde_json::to_value(view.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        requested_by: view.requested_by.clone(),
        requested_at: timestamp(view.requested_at),
        approvals: format!(
            "{} of {} ({})",
            view.approvers.len(),
            view.approvals_required,
            view.approvers.join(", ")
        ),
        outcome: view.outcome.clone().unwrap_or_default(),
        actionable: pending && !view.approvers.iter().any(|a| a == me),
    }
}

/// `POST /keys/approve` (`csrf`, `id`): approves through the approval flow, decided on the
/// operation kind's action; it runs when this approval meets the threshold.
pub(super) async fn approve(
    ctx: &mut RequestContext<'_>,
    body: Incoming,
) -> Result<Response<ProxyBody>, GatewayError> {
    decide_operation(ctx, body, Verdict::Approve).await
}

/// `POST /keys/deny` (`csrf`, `id`): denies a pending operation, decided like approving.
pub(super) async fn deny(
    ctx: &mut RequestContext<'_>,
    body: Incoming,
) -> Result<Response<ProxyBody>, GatewayError> {
    decide_operation(ctx, body, Verdict::Deny).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Approve,
    Deny,
}

async fn decide_operation(
    ctx: &mut RequestContext<'_>,
    body: Incoming,
    verdict: Verdict,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (_, form) = match form_post(ctx, "keys", body).await? {
        Ok(posted) => posted,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let id = form
        .get("id")
        .ok_or(ConsoleError::Invalid("id is required"))?;
    let view = approval::load(store(ctx)?, id).await?;
    ctx.record.operation_id = Some(view.id.clone());
    let op = view.operation.clone();
    // Recorded whatever the decision, as a pseudonym (a shred's data subject).
    ctx.record.subject = op.subject().map(str::to_owned);
    // The console's own rule for its buttons first (console-approvals-need-fresh-mfa),
    // then the operation kind's, as the admin API decides it.
    for (action, resource, purpose) in [
        (APPROVE_ACTION, "keys", super::CONSOLE_PURPOSE),
        (op.action(), op.resource(), KEY_PURPOSE),
    ] {
        match authorize(ctx, action, resource, purpose) {
            Ok(()) => {}
            Err(refused @ GatewayError::Identity(IdentityError::StepUp(_))) => {
                // The person comes back with a fresher factor to the same page.
                return super::signing::step_up(ctx, &refused, "keys");
            }
            Err(e) => return Err(e),
        }
    }
    let principal = ctx
        .identity
        .as_ref()
        .map(|i| i.caller.principal())
        .ok_or(IdentityError::Missing)?;
    let store = store(ctx)?;
    let notice = match verdict {
        Verdict::Deny => {
            approval::deny(store, id, &principal).await?;
            "denied"
        }
        Verdict::Approve => {
            let exec =
                crate::gateway::admin_api::gateway_executor(ctx.shared, ctx.generation, store);
            let view = approval::approve(&exec, id, &principal).await?;
            match view.status {
                OperationStatus::Pending => "approved",
                _ => "executed",
            }
        }
    };
    Ok(html::see_other(&format!(
        "{}/keys?notice={notice}",
        prefix(ctx)?
    )))
}

fn internal(e: crate::store::StoreError) -> GatewayError {
    GatewayError::Internal(format!("keys page: {e}"))
}

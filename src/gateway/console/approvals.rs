//! The console's approval queue, shown on the page each operation belongs to: consent
//! revocations on the Consent page (consent administrators), every other kind (keys,
//! tokens, risk) on the Keys page. Requests, approvals and denials go through
//! [`crate::approval`], the admin API's flow.
//!
//! Each operation is shown only to a person whose policy allows its kind's action
//! (`keys:shred`, `consent:revoke`, ...) for the kind's purpose, and approving or denying
//! is decided on the console's own `console:approve` for the page and then on that action
//! again, so the console can do no more than the admin API would. The flow counts a
//! principal's approval once (a second person is needed where `[admin] approvals_required`
//! or `consent_revocation_approvals` says so) and executes exactly once. Where policy asks
//! for a fresher factor (`step_up_required`, e.g. `key-operations-need-fresh-mfa`), the
//! person is sent back through sign-in with the console's step-up request, then returns
//! to the page.

use super::html;
use super::pages::{ask, authorize, form_post, prefix, store, timestamp};
use crate::approval::{self, Operation, OperationStatus, OperationView};
use crate::gateway::context::RequestContext;
use crate::gateway::error::{ConsoleError, GatewayError};
use crate::gateway::proxy_body::ProxyBody;
use crate::identity::IdentityError;
use http::Response;
use hyper::body::Incoming;

/// The Keys page's segment (and `ConsolePage` id).
pub(super) const KEYS_PAGE: &str = "keys";

/// The Consent page's segment (and `ConsolePage` id).
pub(super) const CONSENT_PAGE: &str = "consent";

/// The console's own action for its Approve and Deny buttons (asked before the
/// operation kind's).
const APPROVE_ACTION: &str = "console:approve";

/// Finished operations the queue still shows below the pending ones.
const FINISHED_SHOWN: usize = 10;

/// The page an operation is queued on.
fn page_of(op: &Operation) -> &'static str {
    match op {
        Operation::ConsentRevoke { .. } => CONSENT_PAGE,
        _ => KEYS_PAGE,
    }
}

/// One operation in a queue.
pub(super) struct OperationRow {
    pub(super) id: String,
    pub(super) kind: &'static str,
    pub(super) target: String,
    pub(super) status: String,
    pub(super) requested_by: String,
    pub(super) requested_at: String,
    pub(super) approvals: String,
    pub(super) outcome: String,
    /// Pending, and the person has not approved it yet: Approve and Deny are offered.
    pub(super) actionable: bool,
}

/// What a page says after an approval or denial (`?notice=`).
pub(super) fn notice(notice: Option<&str>) -> &'static str {
    match notice {
        Some("approved") => "Approved: the operation waits for its other approvals.",
        Some("executed") => "Approved: that was the last approval needed, and it ran.",
        Some("denied") => "Denied: the operation will not run.",
        _ => "",
    }
}

/// The operations of `page` this person may act on (allowed, or allowed after a
/// step-up): pending ones first, then the last few finished.
pub(super) async fn queue(
    ctx: &mut RequestContext<'_>,
    page: &'static str,
) -> Result<Vec<OperationRow>, GatewayError> {
    let me = ctx
        .identity
        .as_ref()
        .map(|i| i.caller.principal())
        .unwrap_or_default();
    let now = crate::store::now_ms();
    let rows = store(ctx)?
        .operations()
        .await
        .map_err(|e| GatewayError::Internal(format!("approval queue: {e}")))?;
    let (mut pending, mut finished) = (Vec::new(), Vec::new());
    for row in rows {
        let view = OperationView::from_row(row, now)?;
        let op = &view.operation;
        if page_of(op) != page {
            continue;
        }
        let decision = ask(ctx, op.action(), op.resource(), op.purpose())?;
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
    let target = match op {
        Operation::ConsentRevoke { consent, subject } => format!("{consent} of {subject}"),
        _ => op.subject().unwrap_or(op.resource()).to_owned(),
    };
    OperationRow {
        id: view.id.clone(),
        kind: op.action(),
        target,
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

/// The signed-in person as the approval flow names approvers
/// ([`crate::policy::Caller::principal`]).
pub(super) fn approver(ctx: &RequestContext<'_>) -> Result<String, GatewayError> {
    Ok(ctx
        .identity
        .as_ref()
        .map(|i| i.caller.principal())
        .ok_or(IdentityError::Missing)?)
}

/// Approve or deny.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Approve,
    Deny,
}

/// `POST /<page>/approve|deny` (`csrf`, `id`): approves (it runs when this approval meets
/// the threshold) or denies an operation queued on `page`, decided on the console's
/// `console:approve` for the page and then on the operation kind's action.
pub(super) async fn decide_operation(
    ctx: &mut RequestContext<'_>,
    body: Incoming,
    page: &'static str,
    verdict: Verdict,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (_, form) = match form_post(ctx, page, body).await? {
        Ok(posted) => posted,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let id = form
        .get("id")
        .ok_or(ConsoleError::Invalid("id is required"))?;
    let view = approval::load(store(ctx)?, id).await?;
    ctx.record.operation_id = Some(view.id.clone());
    let op = view.operation.clone();
    // Recorded whatever the decision, as a pseudonym (a shred's or revocation's subject).
    ctx.record.subject = op.subject().map(str::to_owned);
    if let Operation::ConsentRevoke { consent, .. } = &op {
        ctx.record.consent_id = Some(consent.clone());
    }
    // An operation is acted on from its own page only: the page's approvers are the ones
    // the console's rules name.
    if page_of(&op) != page {
        return Err(approval::AdminError::NotFound.into());
    }
    // The console's own rule for its buttons first (console-approvals-need-fresh-mfa),
    // then the operation kind's, as the admin API decides it.
    for (action, resource, purpose) in [
        (APPROVE_ACTION, page, super::CONSOLE_PURPOSE),
        (op.action(), op.resource(), op.purpose()),
    ] {
        match authorize(ctx, action, resource, purpose) {
            Ok(()) => {}
            Err(refused @ GatewayError::Identity(IdentityError::StepUp(_))) => {
                // The person comes back with a fresher factor to the same page.
                return super::signing::step_up(ctx, &refused, page);
            }
            Err(e) => return Err(e),
        }
    }
    let principal = approver(ctx)?;
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
    let back = match op.subject() {
        // The Consent page shows the subject's records again, with their new status.
        Some(subject) if page == CONSENT_PAGE => {
            let subject: String = form_urlencoded::byte_serialize(subject.as_bytes()).collect();
            format!("subject={subject}&notice={notice}")
        }
        _ => format!("notice={notice}"),
    };
    Ok(html::see_other(&format!("{}/{page}?{back}", prefix(ctx)?)))
}

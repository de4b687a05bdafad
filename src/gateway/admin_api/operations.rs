//! `/operations`: request, show and approve approval-gated operations. Every call is
//! authorised by the operation kind's own action (a key custodian may request and approve
//! a shred); the approval rules and the exactly-once execution are `crate::approval`'s.

use super::{parse, Call};
use crate::approval::{self, AdminError, ApprovalRules, Executor, Operation, OperationView};
use crate::gateway::context::RequestRecord;
use crate::gateway::error::GatewayError;
use crate::gateway::proxy_body::ProxyBody;
use crate::gateway::respond;
use crate::store::now_ms;
use http::Response;

pub(super) async fn request(
    call: &Call<'_>,
    bytes: &[u8],
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    let op: Operation = parse(bytes)?;
    op.validate()?;
    call.authorize(op.action(), op.resource(), op.subject(), rec)?;
    let rules = ApprovalRules::from_config(&call.generation.config.admin);
    let view = approval::request(&executor(call), rules, op, &call.principal()).await?;
    rec.operation_id = Some(view.id.clone());
    respond::created(&view)
}

/// The operations the caller may act on (each filtered by its kind's action), newest
/// first; `?status=pending` (or another status) narrows them.
pub(super) async fn list(
    call: &Call<'_>,
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    rec.action = Some("operations:list".into());
    let wanted = match call.parts.uri.query().unwrap_or("") {
        "" => None,
        query => match query.strip_prefix("status=") {
            Some(status) => Some(status.to_owned()),
            None => return Err(AdminError::Invalid("only ?status= is accepted".into()).into()),
        },
    };
    let now = now_ms();
    let mut shown = Vec::new();
    for row in call.store.operations().await.map_err(AdminError::from)? {
        let view = OperationView::from_row(row, now)?;
        let status = serde_json::to_value(view.status).unwrap_or_default();
        if wanted.as_deref().is_some_and(|w| status != w) {
            continue;
        }
        let op = &view.operation;
        if call.allows(op.action(), op.resource(), rec)? {
            shown.push(view);
        }
    }
    respond::ok(&serde_json::json!({ "operations": shown }))
}

pub(super) async fn show(
    call: &Call<'_>,
    id: &str,
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    let view = authorized(call, id, rec).await?;
    respond::ok(&view)
}

pub(super) async fn approve(
    call: &Call<'_>,
    id: &str,
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    authorized(call, id, rec).await?;
    let view = approval::approve(&executor(call), id, &call.principal()).await?;
    respond::ok(&view)
}

/// Loads an operation and authorises the caller for its kind's action.
async fn authorized(
    call: &Call<'_>,
    id: &str,
    rec: &mut RequestRecord,
) -> Result<OperationView, GatewayError> {
    let view = approval::load(call.store, id).await?;
    rec.operation_id = Some(view.id.clone());
    let op = &view.operation;
    call.authorize(op.action(), op.resource(), op.subject(), rec)?;
    Ok(view)
}

fn executor<'a>(call: &'a Call<'_>) -> Executor<'a> {
    gateway_executor(call.shared, call.generation, call.store)
}

/// How the gateway (admin API and console) executes approved operations: with its open
/// keyring, its `[keys]` and its routes' subject ids.
pub(crate) fn gateway_executor<'a>(
    shared: &'a crate::gateway::state::Shared,
    generation: &'a crate::gateway::generation::Generation,
    store: &'a crate::store::Store,
) -> Executor<'a> {
    Executor {
        store,
        keyring: shared.keys.0.as_ref(),
        keys: generation.config.keys.as_ref(),
        // A clone shares the compiled patterns.
        subject_ids: generation.subject_ids.clone(),
    }
}

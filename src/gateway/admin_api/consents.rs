//! `/consents`: grant, list, show and revoke consent records, through the same code as
//! `privgate consent` and the console. A revocation is an approval-gated operation
//! (`[admin] consent_revocation_approvals`); once it executes it holds for the next
//! decision on every replica (within `[store] revocation_window`).

use super::{parse, Call};
use crate::approval::consents::{self, shown, RevocationOutcome};
use crate::approval::{self, AdminError, ApprovalRules};
use crate::consent::{ConsentRecord, NewConsent};
use crate::gateway::context::RequestRecord;
use crate::gateway::error::GatewayError;
use crate::gateway::proxy_body::ProxyBody;
use crate::gateway::respond;
use crate::store::now_ms;
use http::Response;
use serde::Deserialize;

/// The body of `POST /consents`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    subject: String,
    grantee: String,
    purposes: Vec<String>,
    permissions: Vec<String>,
    /// Lifetime, e.g. `90days` (as `privgate consent grant --expires-in`); none: no expiry.
    #[serde(default, with = "humantime_serde")]
    expires_in: Option<std::time::Duration>,
}

impl GrantBody {
    fn into_consent(self, now_ms: i64) -> NewConsent {
        NewConsent {
            subject: self.subject,
            grantee: self.grantee,
            purposes: self.purposes,
            permissions: self.permissions,
            expires_at: consents::expiry(now_ms, self.expires_in),
        }
    }
}

/// What [`grant`] checks of its body before it needs a caller or a store (fuzzing only).
#[cfg(feature = "fuzzing")]
pub(super) fn check_grant_body(bytes: &[u8], now_ms: i64) -> Result<(), GatewayError> {
    let new = parse::<GrantBody>(bytes)?.into_consent(now_ms);
    new.validate(now_ms)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    Ok(())
}

pub(super) async fn grant(
    call: &Call<'_>,
    bytes: &[u8],
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    let body: GrantBody = parse(bytes)?;
    // Before authorizing: the audit record of a decision keys a pseudonym to its subject.
    let subject_ids = &call.generation.subject_ids;
    consents::subject_known(subject_ids, &body.subject)?;
    call.authorize("consent:grant", &body.subject, Some(&body.subject), rec)?;
    let now = now_ms();
    let new = body.into_consent(now);
    let record = consents::grant(call.store, subject_ids, &new, now).await?;
    rec.consent_id = Some(record.id.clone());
    respond::created(&shown(&record, now))
}

pub(super) async fn list(
    call: &Call<'_>,
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    let query = call.parts.uri.query().unwrap_or("");
    let mut subject = None;
    let mut grantee = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "subject" => subject = Some(value.into_owned()),
            "grantee" => grantee = Some(value.into_owned()),
            _ => return Err(invalid(format!("unknown query parameter `{name}`"))),
        }
    }
    // Consents are read per data subject, so policy decides per subject.
    let subject = subject.ok_or_else(|| invalid("subject is required".into()))?;
    call.authorize("consent:read", &subject, Some(&subject), rec)?;
    let now = now_ms();
    let records = call
        .store
        .consents(Some(&subject), grantee.as_deref())
        .await
        .map_err(AdminError::from)?;
    let shown: Vec<_> = records.iter().map(|r| shown(r, now)).collect();
    respond::ok(&serde_json::json!({ "consents": shown }))
}

pub(super) async fn show(
    call: &Call<'_>,
    id: &str,
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    rec.action = Some("consent:read".into());
    let record = find(call, id).await?;
    call.authorize("consent:read", &record.subject, Some(&record.subject), rec)?;
    rec.consent_id = Some(record.id.clone());
    respond::ok(&shown(&record, now_ms()))
}

/// Requests the revocation through the approval flow: it runs at once when one approval
/// is enough (200, `outcome` `revoked` or `already_revoked`), and waits for more otherwise
/// (202, `awaiting_approval`, the operation's id to approve under `/operations`).
pub(super) async fn revoke(
    call: &Call<'_>,
    id: &str,
    rec: &mut RequestRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    rec.action = Some("consent:revoke".into());
    let op = consents::revocation(call.store, id).await?;
    let subject = op.subject().unwrap_or_default().to_owned();
    call.authorize(op.action(), &subject, Some(&subject), rec)?;
    rec.consent_id = Some(id.to_owned());
    let rules = ApprovalRules::from_config(&call.generation.config.admin);
    let executor = super::gateway_executor(call.shared, call.generation, call.store);
    let view = approval::request(&executor, rules, op, &call.principal()).await?;
    rec.operation_id = Some(view.id.clone());
    let outcome = RevocationOutcome::of(&view);
    if outcome == RevocationOutcome::Failed {
        return Err(GatewayError::Internal(format!(
            "consent revocation operation {} failed",
            view.id
        )));
    }
    let record = find(call, id).await?;
    let mut value = shown(&record, now_ms());
    value["outcome"] = serde_json::json!(outcome.as_str());
    value["operation"] = serde_json::json!(view);
    match outcome {
        RevocationOutcome::AwaitingApproval => respond::accepted(&value),
        _ => respond::ok(&value),
    }
}

async fn find(call: &Call<'_>, id: &str) -> Result<ConsentRecord, GatewayError> {
    call.store
        .consent(id)
        .await
        .map_err(AdminError::from)?
        .ok_or(GatewayError::Admin(AdminError::NotFound))
}

fn invalid(message: String) -> GatewayError {
    GatewayError::Admin(AdminError::Invalid(message))
}

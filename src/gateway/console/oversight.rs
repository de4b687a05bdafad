//! The security officer's trail pages: Decisions (the audit trail's latest records,
//! filtered, and the explanation of any one) and Audit (every replica's chain verified
//! against the checkpoint sink, and who saw a data subject); the Policies page is
//! [`super::policies`]. They read the trail through
//! [`crate::audit`]'s search, verify and pseudonym code and explain through
//! [`crate::policy::Explanation`], exactly as `privgate audit` and `privgate policy` do,
//! so the console and the CLI cannot disagree. Nothing here shows a field value: records
//! hold none, and who-saw shows accesses, never the subject's id.

use super::html::{self, Chrome};
use super::pages::{authorize, form_post, page_view, prefix, query_params, timestamp};
use crate::audit::{self, AuditRecord, RecordFilter, SubjectPseudonyms};
use crate::gateway::context::RequestContext;
use crate::gateway::error::{ConsoleError, GatewayError};
use crate::gateway::proxy_body::ProxyBody;
use crate::policy::PolicyEngine;
use askama::Template;
use http::Response;
use hyper::body::Incoming;
use std::collections::HashMap;
use std::time::Duration;

/// Records the Decisions page lists: the latest that match (a page a person reads, and a
/// bound on what one request holds in memory while the whole trail streams past).
const DECISIONS_SHOWN: usize = 50;

/// Accesses who-saw lists, newest first (a subject seen more often is a question for
/// `privgate audit who-saw`, which lists all).
const ACCESSES_SHOWN: usize = 200;

/// The longest a page waits on reading or verifying the trail (a trail of many segments
/// takes longer: the page then says so, and `privgate audit` has no such bound).
const TRAIL_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The action who-saw is decided on.
const WHO_SAW_ACTION: &str = "console:who_saw";

/// One record on the Decisions page: who, what, the decision and why; never a value.
struct DecisionRow {
    time: String,
    request_id: String,
    principal: String,
    route: String,
    method: String,
    status: u16,
    decision: String,
    policies: String,
    purpose: String,
    clear: String,
    explain_href: String,
}

/// A policy of the active set (or one a record names that the set no longer has).
pub(super) struct PolicyRow {
    pub(super) id: String,
    pub(super) file: String,
    pub(super) text: String,
}

/// One record explained: the record, and the deciding policies' text.
struct RecordExplained {
    row: DecisionRow,
    same_set: bool,
    policy_set_hash: String,
    policies: Vec<PolicyRow>,
}

#[derive(Template)]
#[template(path = "console/decisions.html")]
struct DecisionsPage<'a> {
    chrome: &'a Chrome,
    filter: &'a HashMap<String, String>,
    rows: Vec<DecisionRow>,
    matched: u64,
    shown: usize,
    explained: Option<RecordExplained>,
    note: &'a str,
}

impl DecisionsPage<'_> {
    fn value(&self, name: &str) -> &str {
        self.filter.get(name).map_or("", String::as_str)
    }
}

/// One replica's verification.
struct ReplicaRow {
    replica: String,
    ok: bool,
    records: u64,
    segments: usize,
    checkpoints: usize,
    last_pinned: u64,
    torn_bytes: u64,
    problems: Vec<String>,
}

/// One access to the subject asked about.
struct AccessRow {
    time: String,
    replica: String,
    seq: u64,
    principal: String,
    route: String,
    status: u16,
    decision: String,
    purpose: String,
}

/// What who-saw found.
struct WhoSaw {
    accesses: Vec<AccessRow>,
    total: u64,
    shredded: bool,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage<'a> {
    chrome: &'a Chrome,
    replicas: Vec<ReplicaRow>,
    verify_note: String,
    who_saw: Option<WhoSaw>,
    may_ask: bool,
}

/// `GET /decisions`: the latest records that match the filters; `request=<id>`: that
/// record explained.
pub(super) async fn decisions(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (_, chrome) = match page_view(ctx, "decisions").await? {
        Ok(viewed) => viewed,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let params = query_params(ctx);
    let prefix = prefix(ctx)?;
    let Some(dir) = ctx.generation.config.audit.as_ref().map(|a| a.dir.clone()) else {
        return html::page(&DecisionsPage {
            chrome: &chrome,
            filter: &params,
            rows: Vec::new(),
            matched: 0,
            shown: DECISIONS_SHOWN,
            explained: None,
            note: "No audit trail is configured ([audit]): there are no records to show.",
        });
    };
    let filter = filter_of(&params)?;
    let (latest, matched) = read_trail({
        let dir = dir.clone();
        move || audit::search_latest(&dir, &filter, DECISIONS_SHOWN)
    })
    .await?;
    let rows = latest.iter().map(|r| decision_row(r, &prefix)).collect();
    let explained = match params.get("request").filter(|r| !r.is_empty()) {
        None => None,
        Some(request_id) => {
            let wanted = RecordFilter {
                request_id: Some(request_id.clone()),
                ..RecordFilter::default()
            };
            let (found, _) = read_trail(move || audit::search_latest(&dir, &wanted, 1)).await?;
            let record = found
                .first()
                .ok_or(ConsoleError::Invalid("no record has that request id"))?;
            Some(explain_record(record, engine(ctx)?, &prefix))
        }
    };
    html::page(&DecisionsPage {
        chrome: &chrome,
        filter: &params,
        rows,
        matched,
        shown: DECISIONS_SHOWN,
        explained,
        note: "",
    })
}

/// The search the Decisions page's filters ask for (empty fields ask nothing).
fn filter_of(params: &HashMap<String, String>) -> Result<RecordFilter, GatewayError> {
    let given = |name: &str| {
        params
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let time = |name: &str| -> Result<Option<i64>, GatewayError> {
        given(name)
            .map(|t| audit::parse_time(&t))
            .transpose()
            .map_err(|_| {
                ConsoleError::Invalid(
                    "since and until take an RFC 3339 time (2026-12-05T09:00:00Z) or a span ago (2h)",
                )
                .into()
            })
    };
    let decision = given("decision");
    if decision
        .as_deref()
        .is_some_and(|d| d != "allow" && d != "deny")
    {
        return Err(ConsoleError::Invalid("decision is allow or deny").into());
    }
    Ok(RecordFilter {
        route: given("route"),
        principal: given("principal"),
        decision,
        since: time("since")?,
        until: time("until")?,
        ..RecordFilter::default()
    })
}

fn decision_row(record: &AuditRecord, prefix: &str) -> DecisionRow {
    let (b, e) = (&record.body, &record.body.event);
    let request: String = form_urlencoded::byte_serialize(e.request_id.as_bytes()).collect();
    DecisionRow {
        time: timestamp(b.time_ms),
        request_id: e.request_id.clone(),
        principal: e.principal.clone(),
        route: e.route.clone(),
        method: e.method.clone(),
        status: e.status,
        decision: e.decision.clone(),
        policies: e.policy_ids.join(", "),
        purpose: e.purpose.clone().unwrap_or_default(),
        clear: e.revealed_clear.join(", "),
        explain_href: format!("{prefix}/decisions?request={request}#explained"),
    }
}

/// A record with the text of the policies that decided it, from the active set (and
/// whether that set is the one that decided).
fn explain_record(record: &AuditRecord, engine: &PolicyEngine, prefix: &str) -> RecordExplained {
    let event = &record.body.event;
    let policies = event
        .policy_ids
        .iter()
        .map(|id| match engine.policy_source(id) {
            Some(source) => PolicyRow {
                id: source.id,
                file: source.file,
                text: source.text,
            },
            None => PolicyRow {
                id: id.clone(),
                file: String::new(),
                text: "not in the active policy set (changed since)".into(),
            },
        })
        .collect();
    let hash = event.policy_set_hash.clone().unwrap_or_default();
    RecordExplained {
        row: decision_row(record, prefix),
        same_set: hash == engine.hash(),
        policy_set_hash: hash,
        policies,
    }
}

/// `GET /audit`: every replica's chain verified against the checkpoint sink.
pub(super) async fn audit(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (_, chrome) = match page_view(ctx, "audit").await? {
        Ok(viewed) => viewed,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let page = audit_page(ctx, &chrome, None).await?;
    html::page(&page)
}

/// `POST /audit/who-saw` (`csrf`, `subject`): every recorded access to the subject, found
/// by the pseudonyms the gateway records it under. The page shows the accesses and never
/// the id asked about; the lookup is itself recorded, under the subject's pseudonym.
pub(super) async fn who_saw(
    ctx: &mut RequestContext<'_>,
    body: Incoming,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (chrome, form) = match form_post(ctx, "audit", body).await? {
        Ok(posted) => posted,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let subject = form
        .get("subject")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .ok_or(ConsoleError::Invalid("subject is required"))?;
    crate::approval::consents::subject_known(&ctx.generation.subject_ids, subject)?;
    authorize(ctx, WHO_SAW_ACTION, "audit", super::CONSOLE_PURPOSE)?;
    ctx.record.subject = Some(subject.to_owned());
    let dir = trail_dir(ctx)?;
    let pseudonyms = SubjectPseudonyms::of(
        subject,
        ctx.shared.pseudonyms.as_ref(),
        ctx.shared.keys.0.as_ref(),
    )
    .await
    .map_err(|e| GatewayError::Internal(format!("who-saw pseudonyms: {e}")))?;
    if !pseudonyms.any() {
        return Err(ConsoleError::Invalid(
            "records name no subject here: no [audit] pseudonym_key_file and no [keys]",
        )
        .into());
    }
    let shredded = pseudonyms.shredded;
    let (records, total) =
        read_trail(move || pseudonyms.latest_accesses(&dir, ACCESSES_SHOWN)).await?;
    let accesses = records.iter().map(access_row).collect();
    let who_saw = WhoSaw {
        accesses,
        total,
        shredded,
    };
    let page = audit_page(ctx, &chrome, Some(who_saw)).await?;
    html::page(&page)
}

fn access_row(record: &AuditRecord) -> AccessRow {
    let (b, e) = (&record.body, &record.body.event);
    AccessRow {
        time: timestamp(b.time_ms),
        replica: b.replica.clone(),
        seq: b.seq,
        principal: e.principal.clone(),
        route: e.route.clone(),
        status: e.status,
        decision: e.decision.clone(),
        purpose: e.purpose.clone().unwrap_or_default(),
    }
}

async fn audit_page<'c>(
    ctx: &mut RequestContext<'_>,
    chrome: &'c Chrome,
    who_saw: Option<WhoSaw>,
) -> Result<AuditPage<'c>, GatewayError> {
    let may_ask =
        super::pages::ask(ctx, WHO_SAW_ACTION, "audit", super::CONSOLE_PURPOSE)?.allowed();
    let Some(config) = ctx.generation.config.audit.clone() else {
        return Ok(AuditPage {
            chrome,
            replicas: Vec::new(),
            verify_note: "No audit trail is configured ([audit]).".into(),
            who_saw,
            may_ask: false,
        });
    };
    // Verified from the configured directory, sink and key, never from names the chain
    // holds (as `privgate audit verify`).
    let verified = read_trail(move || {
        let key = audit::AuditKey::from_file(&config.checkpoint_key_file)
            .map_err(audit::AuditError::Io)?;
        audit::verify_every_replica(&config.dir, &config.checkpoint_sink, &key)
    })
    .await;
    let (replicas, verify_note) = match verified {
        Ok(reports) => (
            reports
                .into_iter()
                .map(|(replica, r)| ReplicaRow {
                    replica,
                    ok: r.problems.is_empty(),
                    records: r.records,
                    segments: r.segments,
                    checkpoints: r.checkpoints,
                    last_pinned: r.last_checkpoint_seq,
                    torn_bytes: r.torn_bytes,
                    problems: r.problems,
                })
                .collect(),
            String::new(),
        ),
        Err(GatewayError::Console(ConsoleError::TrailTimeout)) => (
            Vec::new(),
            format!(
                "Verification did not finish within {} s: run `privgate audit verify` per replica.",
                TRAIL_READ_TIMEOUT.as_secs()
            ),
        ),
        Err(e) => return Err(e),
    };
    Ok(AuditPage {
        chrome,
        replicas,
        verify_note,
        who_saw,
        may_ask,
    })
}

/// Reads or verifies the trail off the request threads, within [`TRAIL_READ_TIMEOUT`].
async fn read_trail<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, audit::AuditError> + Send + 'static,
) -> Result<T, GatewayError> {
    match tokio::time::timeout(TRAIL_READ_TIMEOUT, tokio::task::spawn_blocking(read)).await {
        Err(_) => Err(ConsoleError::TrailTimeout.into()),
        Ok(Err(e)) => Err(GatewayError::Internal(format!("trail reader: {e}"))),
        Ok(Ok(Err(e))) => Err(GatewayError::Internal(format!("audit trail: {e}"))),
        Ok(Ok(Ok(found))) => Ok(found),
    }
}

fn trail_dir(ctx: &RequestContext<'_>) -> Result<std::path::PathBuf, GatewayError> {
    ctx.generation
        .config
        .audit
        .as_ref()
        .map(|a| a.dir.clone())
        .ok_or(ConsoleError::Invalid("no audit trail is configured").into())
}

pub(super) fn engine<'a>(ctx: &RequestContext<'a>) -> Result<&'a PolicyEngine, GatewayError> {
    ctx.generation
        .policy
        .as_ref()
        .ok_or_else(|| GatewayError::Internal("the console needs a policy set".into()))
}

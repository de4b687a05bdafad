//! The console's pages and forms. Each signed-in page first finds the person (session,
//! then their token checked as a bearer token), then asks policy for the page itself
//! (`console:view` on its `ConsolePage`, which also builds the menu), then for whatever the
//! page shows or does, on that action's own resource and purpose.

use super::approvals;
use super::html::{self, Chrome, MenuItem};
use super::{console_config, CONSOLE_PURPOSE, PAGES, VIEW_ACTION};
use crate::analytics::dp::AnswerRequest;
use crate::approval::consents::{self, RevocationOutcome};
use crate::approval::{self, ApprovalRules, CONSENT_PURPOSE};
use crate::gateway::analytics_api::{self, READ_BUDGET_ACTION};
use crate::gateway::console_sessions::{self as session, Current, NoSession, SESSION_COOKIE};
use crate::gateway::context::RequestContext;
use crate::gateway::decide;
use crate::gateway::decide::PURPOSE;
use crate::gateway::error::ConsoleError;
use crate::gateway::error::GatewayError;
use crate::gateway::identify::identify_session;
use crate::gateway::proxy_body::ProxyBody;
use crate::identity::IdentityError;
use crate::store::now_ms;
use http::{HeaderValue, Response};
use hyper::body::Incoming;
use std::collections::HashMap;

/// The purpose analysts query and read budgets for.
const ANALYTICS_PURPOSE: &str = "analytics";

/// `GET /`: the first page policy lets the person see (where sign-in lands), or the
/// refusal of the first page when it allows none.
pub(super) async fn home(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    if let Err(to_sign_in) = signed_in(ctx).await? {
        return Ok(to_sign_in);
    }
    let prefix = prefix(ctx)?;
    for (segment, id, _) in PAGES.into_iter().filter(|(s, _, _)| super::built(s)) {
        if ask(ctx, VIEW_ACTION, id, CONSOLE_PURPOSE)?.allowed() {
            return Ok(html::see_other(&format!("{prefix}/{segment}")));
        }
    }
    authorize(ctx, VIEW_ACTION, PAGES[0].1, CONSOLE_PURPOSE)?;
    Err(GatewayError::Internal("a refused page was allowed".into()))
}

/// `GET /overview`: health, the active configuration and policy set, the routes.
pub(super) async fn overview(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (current, chrome) = match page_view(ctx, "overview").await? {
        Ok(viewed) => viewed,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    drop(current);
    let generation = ctx.generation;
    let ready = !ctx
        .shared
        .draining
        .load(std::sync::atomic::Ordering::Relaxed)
        && crate::gateway::record::audit_ready(ctx.shared).is_ok();
    let routes = generation
        .config
        .routes
        .iter()
        .map(|r| html::RouteRow {
            name: r.name.clone(),
            prefix: r.path_prefix.clone(),
            serves: match r.serve {
                Some(service) => format!("served by the gateway ({service:?})"),
                None => format!("upstream {}", r.upstream),
            },
        })
        .collect();
    let policy_set_hash = generation.policy.as_ref().map_or("", |p| p.hash());
    let metrics = &ctx.shared.metrics;
    // At least a second, so the first minute's rates are not divided by nothing.
    let minutes = metrics.uptime().as_secs_f64().max(1.0) / 60.0;
    let traffic = metrics
        .requests_by_route()
        .into_iter()
        .map(|r| html::TrafficRow {
            requests_per_minute: format!("{:.1}", r.requests as f64 / minutes),
            refusals_per_minute: format!("{:.1}", r.refusals as f64 / minutes),
            route: r.route,
            requests: r.requests,
            refusals: r.refusals,
        })
        .collect();
    let reloads = ctx
        .shared
        .reloads
        .newest_first()
        .into_iter()
        .map(|r| html::ReloadRow {
            time: timestamp(r.at_ms),
            outcome: r.outcome,
            config_sha256: r.config_sha256,
            policy_set_hash: r.policy_set_hash.unwrap_or_default(),
            problems: r.problems,
        })
        .collect();
    html::page(&html::OverviewPage {
        chrome: &chrome,
        ready,
        config_sha256: &generation.source_sha256,
        policy_set_hash,
        warnings: generation.warnings.len(),
        routes,
        uptime_minutes: format!("{minutes:.1}"),
        traffic,
        reloads,
    })
}

/// `GET /consent?subject=`: a subject's consent records with their computed status.
pub(super) async fn consent(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (_, chrome) = match page_view(ctx, "consent").await? {
        Ok(viewed) => viewed,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let params = query_params(ctx);
    let subject = params.get("subject").map(String::as_str).unwrap_or("");
    let notice = match params.get("notice").map(String::as_str) {
        Some("revoked") => {
            "Consent revoked. The next decision on this subject no longer relies on it."
        }
        Some("already_revoked") => "That consent was already revoked.",
        Some("awaiting_approval") => {
            "Revocation requested: it runs when other consent administrators have approved \
             it (below). Until then the consent holds."
        }
        other => approvals::notice(other),
    };
    let mut records = Vec::new();
    if !subject.is_empty() {
        consents::subject_known(&ctx.generation.subject_ids, subject)?;
        authorize(ctx, "consent:read", subject, CONSENT_PURPOSE)?;
        let now = now_ms();
        let found = store(ctx)?
            .consents(Some(subject), None)
            .await
            .map_err(crate::approval::AdminError::from)?;
        records = found
            .iter()
            .map(|r| {
                let status = r.status(now);
                html::ConsentRow {
                    id: r.id.clone(),
                    grantee: r.grantee.clone(),
                    purposes: r.purposes.join(", "),
                    permissions: r.permissions.join(", "),
                    status: consents::shown(r, now)["status"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    expires: r.expires_at.map_or("never".into(), timestamp),
                    revocable: status == crate::consent::ConsentStatus::Authorised,
                }
            })
            .collect();
    }
    let operations = approvals::queue(ctx, approvals::CONSENT_PAGE).await?;
    html::page(&html::ConsentPage {
        chrome: &chrome,
        subject,
        records,
        searched: !subject.is_empty(),
        notice,
        operations,
        queue_page: approvals::CONSENT_PAGE,
    })
}

/// `POST /consent/revoke` (`csrf`, `id`): requests the revocation of one consent on the
/// subject's behalf through the approval flow, decided as `consent:revoke` on the record's
/// subject. It runs at once when `[admin] consent_revocation_approvals` is 1 (the very
/// next decision on every replica sees it), and waits in the page's queue otherwise.
pub(super) async fn revoke_consent(
    ctx: &mut RequestContext<'_>,
    body: Incoming,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (_, form) = match form_post(ctx, approvals::CONSENT_PAGE, body).await? {
        Ok(posted) => posted,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let id = form
        .get("id")
        .ok_or(ConsoleError::Invalid("id is required"))?;
    let store = store(ctx)?;
    let op = consents::revocation(store, id).await?;
    let subject = op.subject().unwrap_or_default().to_owned();
    ctx.record.consent_id = Some(id.clone());
    authorize(ctx, op.action(), &subject, op.purpose())?;
    let principal = approvals::approver(ctx)?;
    let rules = ApprovalRules::from_config(&ctx.generation.config.admin);
    let exec = crate::gateway::admin_api::gateway_executor(ctx.shared, ctx.generation, store);
    let view = approval::request(&exec, rules, op, &principal).await?;
    ctx.record.operation_id = Some(view.id.clone());
    let notice = match RevocationOutcome::of(&view) {
        RevocationOutcome::Failed => {
            return Err(GatewayError::Internal(format!(
                "consent revocation operation {} failed",
                view.id
            )))
        }
        outcome => outcome.as_str(),
    };
    let subject: String = form_urlencoded::byte_serialize(subject.as_bytes()).collect();
    Ok(html::see_other(&format!(
        "{}/consent?subject={subject}&notice={notice}",
        prefix(ctx)?
    )))
}

/// `GET /analytics`: the analyst's budget meters and the query form.
pub(super) async fn analytics(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (_, chrome) = match page_view(ctx, "analytics").await? {
        Ok(viewed) => viewed,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let budgets = budgets(ctx).await?;
    let dataset = budgets
        .first()
        .map(|b| b.dataset.clone())
        .unwrap_or_default();
    html::page(&html::AnalyticsPage {
        chrome: &chrome,
        budgets,
        dataset: &dataset,
        sql: "SELECT COUNT(*) FROM ",
        epsilon: "0.1",
        outcome: None,
    })
}

/// `POST /analytics/query` (`csrf`, `dataset`, `sql`, `epsilon`, `dry_run`): asked through
/// the analytics API's own path (decision, budget tier, ledger, audit), then the page again
/// with the answer and the meters after it.
pub(super) async fn query(
    ctx: &mut RequestContext<'_>,
    body: Incoming,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (chrome, form) = match form_post(ctx, "analytics", body).await? {
        Ok(posted) => posted,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let field = |name: &'static str| form.get(name).cloned().ok_or(ConsoleError::Invalid(name));
    let (dataset, sql, epsilon) = (field("dataset")?, field("sql")?, field("epsilon")?);
    let epsilon_value: f64 = epsilon
        .trim()
        .parse()
        .map_err(|_| ConsoleError::Invalid("epsilon must be a number"))?;
    let dry_run = form.get("dry_run").is_some_and(|v| v == "true");
    let request = AnswerRequest {
        dataset: dataset.clone(),
        sql: sql.clone(),
        epsilon: Some(epsilon_value),
        accuracy: None,
        delta: None,
        dry_run,
    };
    act_for(ctx, ANALYTICS_PURPOSE);
    let answer = analytics_api::answer(ctx, &request).await?;
    let budgets = budgets(ctx).await?;
    html::page(&html::AnalyticsPage {
        chrome: &chrome,
        budgets,
        dataset: &dataset,
        sql: &sql,
        epsilon: &epsilon,
        outcome: Some(html::QueryOutcome {
            dry_run,
            answer: serde_json::to_string_pretty(&answer).unwrap_or_default(),
        }),
    })
}

/// The signed-in analyst's budget on every dataset policy lets them read it of.
async fn budgets(ctx: &mut RequestContext<'_>) -> Result<Vec<html::BudgetRow>, GatewayError> {
    act_for(ctx, ANALYTICS_PURPOSE);
    let (decided, allowed) = analytics_api::permitted(ctx, READ_BUDGET_ACTION, None)?;
    let analyst = decided.caller.principal();
    let mut rows = Vec::new();
    for name in allowed {
        let tier = analytics_api::budget_tier(ctx, &decided, &name)?;
        let left = ctx
            .generation
            .datasets
            .budget_left(store(ctx)?, &analyst, tier.as_deref(), &name)
            .await?;
        rows.push(html::BudgetRow {
            dataset: name,
            epsilon_left: left["epsilon_left"].as_f64().unwrap_or(0.0),
            epsilon_total: left["analyst_epsilon"].as_f64().unwrap_or(0.0),
            refreshes_at: left["refreshes_at"].as_str().unwrap_or("").to_owned(),
            tier: tier.unwrap_or_default(),
        });
    }
    Ok(rows)
}

/// The signed-in person, or the response that sends them to sign in: no session, one that
/// timed out, or a token the issuer's checks no longer accept (expired, revoked), which
/// ends the session too.
pub(super) async fn signed_in(
    ctx: &mut RequestContext<'_>,
) -> Result<Result<Current, Response<ProxyBody>>, GatewayError> {
    let console = console_config(ctx)?;
    let cookie = session::cookie(&ctx.parts.headers, SESSION_COOKIE);
    let to_sign_in = |prefix: &str, ended: bool| {
        let location = match ended {
            true => format!("{prefix}/sign-in?ended=1"),
            false => format!("{prefix}/sign-in"),
        };
        html::see_other(&location)
    };
    let prefix = prefix(ctx)?;
    let found = ctx
        .shared
        .console
        .current(store(ctx)?, cookie, console)
        .await;
    let current = match found.map_err(ConsoleError::Store)? {
        Ok(current) => current,
        Err(why) => return Ok(Err(to_sign_in(&prefix, why == NoSession::Expired))),
    };
    match identify_session(ctx, &current.access_token).await {
        Ok(()) => {}
        Err(GatewayError::Identity(e)) if e.is_client() => {
            tracing::info!(error = %e, "console session ended: its token is no longer accepted");
            let cookie = session::cookie(&ctx.parts.headers, SESSION_COOKIE);
            let closed = ctx.shared.console.close(store(ctx)?, cookie).await;
            closed.map_err(ConsoleError::Store)?;
            return Ok(Err(to_sign_in(&prefix, true)));
        }
        Err(e) => return Err(e),
    }
    let route = ctx.route()?;
    if ctx.identity.is_some() {
        ctx.generation
            .rate_limits
            .route(&route.name)
            .check_principal(&ctx.record.principal)?;
    }
    Ok(Ok(current))
}

/// A signed-in page view: the person, then `console:view` on the page (refused: the
/// rescue's 403 page), and the menu of the pages policy allows them.
pub(super) async fn page_view(
    ctx: &mut RequestContext<'_>,
    page: &str,
) -> Result<Result<(Current, Chrome), Response<ProxyBody>>, GatewayError> {
    let current = match signed_in(ctx).await? {
        Ok(current) => current,
        Err(to_sign_in) => return Ok(Err(to_sign_in)),
    };
    let prefix = prefix(ctx)?;
    let mut menu = Vec::new();
    let mut title = "";
    for (segment, id, page_title) in PAGES.into_iter().filter(|(s, _, _)| super::built(s)) {
        let allowed = if id == page {
            authorize(ctx, VIEW_ACTION, id, CONSOLE_PURPOSE)?;
            title = page_title;
            true
        } else {
            ask(ctx, VIEW_ACTION, id, CONSOLE_PURPOSE)?.allowed()
        };
        if allowed {
            menu.push(MenuItem {
                href: format!("{prefix}/{segment}"),
                title: page_title,
                current: id == page,
            });
        }
    }
    let identity = ctx.identity.as_ref().ok_or(IdentityError::Missing)?;
    let chrome = Chrome {
        prefix,
        title,
        person: identity.caller.id.clone(),
        roles: identity.caller.roles.join(", "),
        menu,
        csrf: current.csrf.clone(),
    };
    Ok(Ok((current, chrome)))
}

/// A signed-in form post from `page`: the page view decided, then the form read and
/// checked (this session's CSRF token, the console's own origin). `Err` inside: the
/// response that sends the person to sign in.
pub(super) async fn form_post(
    ctx: &mut RequestContext<'_>,
    page: &str,
    body: Incoming,
) -> Result<Result<(Chrome, HashMap<String, String>), Response<ProxyBody>>, GatewayError> {
    let (current, chrome) = match page_view(ctx, page).await? {
        Ok(viewed) => viewed,
        Err(to_sign_in) => return Ok(Err(to_sign_in)),
    };
    let form = read_form(ctx, body).await?;
    check_form(ctx, &current, &form)?;
    Ok(Ok((chrome, form)))
}

/// Decides `action` on `resource` for `purpose` and records it (action, policies, subject
/// for actions on a data subject); a refusal is the rescue's to answer.
pub(super) fn authorize(
    ctx: &mut RequestContext<'_>,
    action: &str,
    resource: &str,
    purpose: &'static str,
) -> Result<(), GatewayError> {
    let decision = ask(ctx, action, resource, purpose)?;
    let rec = &mut ctx.record;
    rec.action = Some(action.to_owned());
    if action.starts_with("consent:") {
        rec.subject = Some(resource.to_owned());
    }
    rec.policy_ids.clone_from(&decision.policy_ids);
    match decision.refusal {
        Some(refusal) => Err(decide::refused(refusal.reason, ctx.route()?)),
        None => Ok(()),
    }
}

/// Asks the policy set, recording only the purpose and policy set.
pub(super) fn ask(
    ctx: &mut RequestContext<'_>,
    action: &str,
    resource: &str,
    purpose: &'static str,
) -> Result<crate::decision::Decision, GatewayError> {
    act_for(ctx, purpose);
    let engine = ctx
        .generation
        .policy
        .as_ref()
        .ok_or_else(|| GatewayError::Internal("the console needs a policy set".into()))?;
    let identity = ctx.identity.as_ref().ok_or(IdentityError::Missing)?;
    ctx.record.policy_set_hash = Some(engine.hash().to_owned());
    let request = decide::served_request(&ctx.parts, identity, action, resource, &mut ctx.record)?;
    Ok(engine.decide(&request)?)
}

/// The console asks each decision for the purpose its page acts for, as an API client
/// names it in `X-Purpose`; whatever the browser sent is replaced. The caller must still
/// be registered for it ([`decide::purpose`] refuses others).
pub(super) fn act_for(ctx: &mut RequestContext<'_>, purpose: &'static str) {
    ctx.parts
        .headers
        .insert(PURPOSE, HeaderValue::from_static(purpose));
}

/// A state-changing form must carry this session's CSRF token and, when the browser says
/// where it comes from (`Origin`), come from the console's own origin.
pub(super) fn check_form(
    ctx: &RequestContext<'_>,
    current: &Current,
    form: &HashMap<String, String>,
) -> Result<(), GatewayError> {
    let console = console_config(ctx)?;
    if let Some(origin) = ctx.parts.headers.get(http::header::ORIGIN) {
        let own = url::Url::parse(&console.redirect_uri)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        if origin.as_bytes() != own.as_bytes() {
            return Err(ConsoleError::FormRefused.into());
        }
    }
    if !session::csrf_matches(current, form.get("csrf").map(String::as_str)) {
        return Err(ConsoleError::FormRefused.into());
    }
    Ok(())
}

/// A form body, under the configured body limit.
pub(super) async fn read_form(
    ctx: &RequestContext<'_>,
    body: Incoming,
) -> Result<HashMap<String, String>, GatewayError> {
    let limits = &ctx.generation.config.limits;
    let bytes = crate::gateway::body::buffer_form(&ctx.parts.headers, body, limits).await?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

pub(super) fn query_params(ctx: &RequestContext<'_>) -> HashMap<String, String> {
    form_urlencoded::parse(ctx.parts.uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn prefix(ctx: &RequestContext<'_>) -> Result<String, GatewayError> {
    Ok(ctx.route()?.path_prefix.trim_end_matches('/').to_owned())
}

pub(super) fn store<'a>(ctx: &RequestContext<'a>) -> Result<&'a crate::store::Store, GatewayError> {
    ctx.shared
        .store
        .as_ref()
        .ok_or_else(|| GatewayError::Internal("the console needs a store".into()))
}

pub(super) fn timestamp(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
}

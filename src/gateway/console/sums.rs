//! The Encrypted sums page: the most recent aggregates with their contribution counts,
//! distinct organisations against the release threshold, release mode and state (never a
//! contribution or a partial total), and a **Release** button for whoever policy lets
//! release that aggregate now (shipped: release officers, once the threshold is met).
//!
//! Releasing goes through the FHE API's own release path ([`crate::gateway::fhe_api`]):
//! the aggregate's counts, the decision on `aggregate:release` with them, the service's
//! threshold check, then only the total is decrypted. A person without the button who
//! posts the form anyway is refused by that same decision (403).

use super::html::{self, Chrome};
use super::pages::{act_for, form_post, page_view, timestamp};
use crate::analytics::fhe::FheService;
use crate::gateway::context::RequestContext;
use crate::gateway::error::{ConsoleError, GatewayError};
use crate::gateway::fhe_api;
use crate::gateway::proxy_body::ProxyBody;
use crate::gateway::served::ServedCall;
use askama::Template;
use http::Response;
use hyper::body::Incoming;

/// The purpose aggregates are read and released for (the FHE API's).
const AGGREGATE_PURPOSE: &str = "aggregate_reporting";

/// Aggregates the page lists, newest first.
const AGGREGATES_SHOWN: i64 = 50;

/// One aggregate: counts and progress, never values.
struct AggregateRow {
    id: String,
    name: String,
    state: String,
    mode: String,
    contributors: i64,
    organisations: i64,
    min_organisations: i64,
    closes_at: String,
    may_release: bool,
}

/// A total just released.
struct ReleasedRow {
    id: String,
    mode: String,
    total: String,
    contributors: i64,
    organisations: i64,
}

#[derive(Template)]
#[template(path = "console/sums.html")]
struct SumsPage<'a> {
    chrome: &'a Chrome,
    enabled: bool,
    aggregates: Vec<AggregateRow>,
    released: Option<ReleasedRow>,
}

/// `GET /sums`: the recent aggregates, each with a Release button when policy allows it.
pub(super) async fn sums(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (_, chrome) = match page_view(ctx, "sums").await? {
        Ok(viewed) => viewed,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let aggregates = aggregates(ctx).await?;
    html::page(&SumsPage {
        enabled: ctx.shared.fhe.is_some(),
        chrome: &chrome,
        aggregates,
        released: None,
    })
}

/// `POST /sums/release` (`csrf`, `id`): releases the total through the FHE API's path.
pub(super) async fn release(
    ctx: &mut RequestContext<'_>,
    body: Incoming,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (chrome, form) = match form_post(ctx, "sums", body).await? {
        Ok(posted) => posted,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let id = form
        .get("id")
        .cloned()
        .ok_or(ConsoleError::Invalid("id is required"))?;
    let service = service(ctx)?;
    act_for(ctx, AGGREGATE_PURPOSE);
    let (served, rec) = ServedCall::split(ctx)?;
    let released = fhe_api::release_for(served, &service, &id, rec).await?;
    let released = ReleasedRow {
        id: released.id,
        mode: released.mode.to_owned(),
        total: released.total,
        contributors: released.contributors,
        organisations: released.organisations,
    };
    let aggregates = aggregates(ctx).await?;
    html::page(&SumsPage {
        enabled: true,
        chrome: &chrome,
        aggregates,
        released: Some(released),
    })
}

/// The recent aggregates, and whether this person may release each now.
async fn aggregates(ctx: &mut RequestContext<'_>) -> Result<Vec<AggregateRow>, GatewayError> {
    let Some(service) = ctx.shared.fhe.clone() else {
        return Ok(Vec::new());
    };
    act_for(ctx, AGGREGATE_PURPOSE);
    let mut rows = Vec::new();
    for view in service.recent(AGGREGATES_SHOWN).await? {
        let may_release = view.state == "open" && {
            let (served, rec) = ServedCall::split(ctx)?;
            match fhe_api::may_release(served, &service, &view.id, rec).await {
                Ok(allowed) => allowed,
                // Not registered for the purpose releases are made for: no button.
                Err(GatewayError::Refused { .. }) => false,
                Err(e) => return Err(e),
            }
        };
        rows.push(AggregateRow {
            mode: view.release["mode"].as_str().unwrap_or("exact").to_owned(),
            id: view.id,
            name: view.name,
            state: view.state,
            contributors: view.contributors,
            organisations: view.organisations,
            min_organisations: view.min_organisations,
            closes_at: timestamp(view.closes_at),
            may_release,
        });
    }
    Ok(rows)
}

fn service(ctx: &RequestContext<'_>) -> Result<std::sync::Arc<FheService>, GatewayError> {
    ctx.shared
        .fhe
        .clone()
        .ok_or(ConsoleError::Invalid("encrypted sums are not configured ([fhe])").into())
}

//! The reveal phase: a body in the views decided for the caller. Element-scoped rules make
//! a body hold several data subjects; each distinct subject gets its own decision (its own
//! consent), asked here once per subject and request.

use super::decide::subject_views;
use super::error::GatewayError;
use super::generation::Generation;
use super::router::Route;
use super::server::Shared;
use crate::decision::Decision;
use crate::policy::DecisionRequest;
use crate::protect::document::Document;
use crate::protect::rules::BodySide;
use crate::protect::{ProtectError, Protection};
use bytes::Bytes;
use std::collections::BTreeSet;

/// Why revealing failed: a protection problem, or the per-subject decisions (store down).
pub enum RevealError {
    /// The body could not be revealed as decided.
    Protect(ProtectError),
    /// Deciding per-subject views failed.
    Decide(GatewayError),
}

/// A failure revealing the client's request (outbound routes).
pub fn on_request(e: RevealError) -> GatewayError {
    match e {
        RevealError::Protect(e) => GatewayError::RequestProtection(e),
        RevealError::Decide(e) => e,
    }
}

/// A failure revealing the upstream's response (inbound routes).
pub fn on_response(e: RevealError) -> GatewayError {
    match e {
        RevealError::Protect(e) => GatewayError::ResponseProtection(e),
        RevealError::Decide(e) => e,
    }
}

/// The `side` body revealed as decided; `decision` gains the per-subject views it used.
#[allow(clippy::too_many_arguments)] // the phase's inputs, each used once
pub async fn reveal(
    shared: &Shared,
    generation: &Generation,
    protection: &Protection,
    route: &Route,
    side: BodySide,
    body: Bytes,
    decision: &mut Decision,
    request: &DecisionRequest,
) -> Result<Bytes, RevealError> {
    if body.is_empty() {
        return Ok(body);
    }
    let doc = Document::parse(&body).map_err(|e| RevealError::Protect(ProtectError::Body(e)))?;
    let located = protection
        .locate(&route.name, side, &doc)
        .map_err(RevealError::Protect)?;
    // Subjects in another spelling are refused before any consent lookup or key use.
    super::subject::check_located(route, side, &located).map_err(RevealError::Decide)?;
    let subjects: Vec<String> = located
        .iter()
        .filter_map(|l| l.subject.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    subject_views(
        generation,
        shared.store.as_ref(),
        request,
        decision,
        &subjects,
    )
    .await
    .map_err(RevealError::Decide)?;
    let route_subject = Some(request.customer.as_str()).filter(|s| !s.is_empty());
    let text = protection
        .reveal(
            &route.name,
            &doc,
            &located,
            route_subject,
            decision,
            &shared.keys,
        )
        .await
        .map_err(RevealError::Protect)?;
    Ok(Bytes::from(text))
}

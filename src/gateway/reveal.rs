//! The reveal phase: a body in the views decided for the caller. Element-scoped rules make
//! a body hold several data subjects; each distinct subject gets its own decision (its own
//! consent), asked here once per subject and request.

use super::context::RequestContext;
use super::decide::subject_views;
use super::error::GatewayError;
use crate::protect::document::Document;
use crate::protect::rules::BodySide;
use crate::protect::ProtectError;
use bytes::Bytes;
use std::collections::BTreeSet;

/// Why revealing failed: a protection problem, or the per-subject decisions (store down).
pub(crate) enum RevealError {
    /// The body could not be revealed as decided.
    Protect(ProtectError),
    /// Deciding per-subject views failed.
    Decide(GatewayError),
}

/// A failure revealing the client's request (outbound routes).
pub(crate) fn on_request(e: RevealError) -> GatewayError {
    match e {
        RevealError::Protect(e) => GatewayError::RequestProtection(e),
        RevealError::Decide(e) => e,
    }
}

/// A failure revealing the upstream's response (inbound routes).
pub(crate) fn on_response(e: RevealError) -> GatewayError {
    match e {
        RevealError::Protect(e) => GatewayError::ResponseProtection(e),
        RevealError::Decide(e) => e,
    }
}

/// The `side` body revealed in the views decided for the caller: the reveal phase's step
/// for a buffered body under field rules. Runs after the decide phase (it needs the
/// decision), on the response of inbound routes and on the request of outbound ones, before
/// anything of the body is released; the decision gains the per-subject views it used.
/// `parsed` is the body already parsed (the response's JSON check parses what it checks, so
/// an answer is read once); without it the body is parsed here.
pub(crate) async fn reveal(
    ctx: &mut RequestContext<'_>,
    side: BodySide,
    body: &Bytes,
    parsed: Option<&Document<'_>>,
) -> Result<Bytes, RevealError> {
    let route = ctx.route().map_err(RevealError::Decide)?;
    let Some(protection) = ctx.protection() else {
        return Err(RevealError::Decide(GatewayError::Internal(
            "a body to reveal without field rules".into(),
        )));
    };
    let Some(decided) = ctx.decided.as_mut() else {
        return Err(RevealError::Decide(GatewayError::Internal(
            match side {
                BodySide::Request => "outbound route without a decision",
                BodySide::Response => "protected route without a decision",
            }
            .into(),
        )));
    };
    if body.is_empty() {
        return Ok(body.clone());
    }
    let parsed_here;
    let doc = match parsed {
        Some(doc) => doc,
        None => {
            parsed_here =
                Document::parse(body).map_err(|e| RevealError::Protect(ProtectError::Body(e)))?;
            &parsed_here
        }
    };
    let located = protection
        .locate(&route.name, side, doc)
        .map_err(RevealError::Protect)?;
    // Subjects in another spelling are refused before any consent lookup or key use.
    super::subject::check_located(route, side, &located).map_err(RevealError::Decide)?;
    let subjects: Vec<String> = located
        .iter()
        .filter_map(|l| l.subject.as_deref())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let shared = ctx.shared;
    subject_views(ctx.generation, shared.store.as_ref(), decided, &subjects)
        .await
        .map_err(RevealError::Decide)?;
    let route_subject = Some(decided.request.customer.as_str()).filter(|s| !s.is_empty());
    let text = protection
        .reveal(
            &route.name,
            doc,
            &located,
            route_subject,
            &decided.decision,
            &shared.keys,
        )
        .await
        .map_err(RevealError::Protect)?;
    Ok(Bytes::from(text))
}

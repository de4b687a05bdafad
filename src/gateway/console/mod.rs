//! The web console the gateway serves itself on a route with `serve = "console"`: HTML
//! pages for security teams, consent administrators, key custodians and analysts, held to
//! the same rules as every other caller. Paths are relative to the route's prefix:
//!
//! ```text
//! GET  /sign-in            the sign-in page (says so when a session has ended)
//! GET  /sign-in/start      starts the OIDC authorization-code flow (PKCE) at the issuer;
//!                          `?step_up=<page>`: asking `[console]`'s step-up acr/max_age
//! GET  /callback           the issuer's answer: code exchanged, token checked, session opened
//! POST /sign-out           ends the session
//! GET  /                   to the first page policy allows the person (none: refused)
//! GET  /overview           Overview        console:view on ConsolePage::"overview"
//! GET  /consent?subject=   Consent         console:view "consent", then consent:read
//! POST /consent/revoke     revoke          consent:revoke on the record's subject, through
//!                                          the approval flow ([admin] consent_revocation_approvals)
//! POST /consent/approve|deny                the same, for a revocation in the page's queue
//! GET  /decisions?route=&principal=&decision=&since=&until=&request=
//!                          Decisions       console:view "decisions": the trail's latest records
//!                                          (never values); `request=`: one record explained
//! GET  /policies?action=…  Policies        console:view "policies": the active set, its cases'
//!                                          results; with `action`: a hypothetical explained
//! GET  /audit              Audit           console:view "audit": every replica's chain verified
//! POST /audit/who-saw      who-saw         console:who_saw on ConsolePage "audit"
//! GET  /keys               Keys            console:view "keys": versions, uses, shredded count,
//!                                          the approval queue of every kind but consent
//!                                          revocations (each on its kind's action)
//! POST /keys/approve|deny  approval flow   the operation kind's action (keys:shred, ...);
//!                                          step_up_required: back through sign-in
//! GET  /analytics          Analytics       console:view "analytics", budget:read per dataset
//! POST /analytics/query    query / dry run query on the Dataset (spends budget unless dry run)
//! GET  /sums               Encrypted sums  console:view "sums": aggregates, counts, progress
//! POST /sums/release       release         aggregate:release, through the FHE API's path
//! GET  /static/console.css the one style sheet (no scripts anywhere)
//! ```
//!
//! The identify phase leaves console routes alone: a person is identified here, from the
//! session cookie, by checking the access token the session holds exactly as a bearer
//! token is checked ([`super::identify::identify_session`]). Every page is a Cedar decision
//! (`console:view` on its `ConsolePage`), asked for the purpose `console`; what a page does
//! is decided on that action's own resource and purpose, so the console can show or do no
//! more than the person could through the APIs. The menu lists only the pages policy
//! allows, and a page reached by its URL is decided all the same. Every request is one
//! audit record (action, policies, subject pseudonym), refused ones too. State-changing
//! forms are POSTs carrying the session's CSRF token and, when the browser sends one, an
//! `Origin` equal to the console's own. Refusals go through the rescue step, which answers
//! console routes with an HTML page ([`html::refusal_page`]).

mod approvals;
mod html;
mod keys;
mod oversight;
mod pages;
mod policies;
mod sign_in;
mod signing;
#[cfg(feature = "fhe")]
mod sums;

pub(crate) use html::refusal_page;

use super::context::RequestContext;
use super::error::GatewayError;
use super::proxy_body::ProxyBody;
use super::served::ServedApi;
use crate::config::ConsoleConfig;
use http::{Method, Response};
use hyper::body::Incoming;

/// The Cedar action every console page is decided on.
pub(crate) const VIEW_ACTION: &str = "console:view";

/// The purpose console pages are viewed for: a person must be registered for it (the
/// issuer's `purposes` claim) to use the console at all.
const CONSOLE_PURPOSE: &str = "console";

/// The console's pages in menu order: (path segment, `ConsolePage` id, title).
const PAGES: [(&str, &str, &str); 8] = [
    ("overview", "overview", "Overview"),
    ("decisions", "decisions", "Decisions"),
    ("policies", "policies", "Policies"),
    ("consent", "consent", "Consent"),
    ("keys", "keys", "Keys"),
    ("audit", "audit", "Audit"),
    ("analytics", "analytics", "Analytics"),
    ("sums", "sums", "Encrypted sums"),
];

/// Whether this build serves a page (Encrypted sums needs the `fhe` feature): pages it
/// does not are left out of the menu.
fn built(segment: &str) -> bool {
    segment != "sums" || cfg!(feature = "fhe")
}

/// The console (`serve = "console"`).
pub(crate) struct ConsoleApi;

impl ServedApi for ConsoleApi {
    async fn serve(
        &self,
        ctx: &mut RequestContext<'_>,
        body: Incoming,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let route = ctx.route()?;
        let segments: Vec<String> = route
            .served_segments(ctx.parts.uri.path())
            .into_iter()
            .map(str::to_owned)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = ctx.parts.method.clone();
        match (&method, segments.as_slice()) {
            (&Method::GET, ["static", "console.css"]) => Ok(html::style_sheet()),
            (&Method::GET, ["sign-in"]) => signing::sign_in_page(ctx),
            (&Method::GET, ["sign-in", "start"]) => signing::start_sign_in(ctx).await,
            (&Method::GET, ["callback"]) => signing::callback(ctx).await,
            (&Method::POST, ["sign-out"]) => signing::sign_out(ctx, body).await,
            (&Method::GET, [] | [""]) => pages::home(ctx).await,
            (&Method::GET, ["overview"]) => pages::overview(ctx).await,
            (&Method::GET, ["consent"]) => pages::consent(ctx).await,
            (&Method::POST, ["consent", "revoke"]) => pages::revoke_consent(ctx, body).await,
            (&Method::POST, [page @ ("consent" | "keys"), verdict @ ("approve" | "deny")]) => {
                let page = match *page {
                    "consent" => approvals::CONSENT_PAGE,
                    _ => approvals::KEYS_PAGE,
                };
                let verdict = match *verdict {
                    "approve" => approvals::Verdict::Approve,
                    _ => approvals::Verdict::Deny,
                };
                approvals::decide_operation(ctx, body, page, verdict).await
            }
            (&Method::GET, ["decisions"]) => oversight::decisions(ctx).await,
            (&Method::GET, ["policies"]) => policies::policies(ctx).await,
            (&Method::GET, ["audit"]) => oversight::audit(ctx).await,
            (&Method::POST, ["audit", "who-saw"]) => oversight::who_saw(ctx, body).await,
            #[cfg(feature = "fhe")]
            (&Method::GET, ["sums"]) => sums::sums(ctx).await,
            #[cfg(feature = "fhe")]
            (&Method::POST, ["sums", "release"]) => sums::release(ctx, body).await,
            (&Method::GET, ["keys"]) => keys::keys(ctx).await,
            (&Method::GET, ["analytics"]) => pages::analytics(ctx).await,
            (&Method::POST, ["analytics", "query"]) => pages::query(ctx, body).await,
            (
                _,
                ["sign-out"]
                | ["consent" | "keys", "approve" | "deny"]
                | ["consent", "revoke"]
                | ["analytics", "query"]
                | ["audit", "who-saw"],
            ) => Err(GatewayError::MethodNotAllowed {
                allowed: vec![Method::POST],
            }),
            (
                _,
                []
                | [""]
                | ["overview"]
                | ["consent"]
                | ["decisions"]
                | ["policies"]
                | ["audit"]
                | ["keys"]
                | ["sums"]
                | ["analytics"]
                | ["sign-in"]
                | ["callback"],
            ) => Err(GatewayError::MethodNotAllowed {
                allowed: vec![Method::GET],
            }),
            _ => Err(GatewayError::NoRoute),
        }
    }
}

/// The console's configuration (validation guarantees it with a console route).
fn console_config<'a>(ctx: &RequestContext<'a>) -> Result<&'a ConsoleConfig, GatewayError> {
    ctx.generation
        .config
        .console
        .as_ref()
        .ok_or_else(|| GatewayError::Internal("a console route without [console]".into()))
}

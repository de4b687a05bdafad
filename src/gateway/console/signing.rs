//! Signing in and out of the console, and the step-up page: the handlers of the OIDC
//! authorization-code flow ([`super::sign_in`] holds its protocol: the authorization URL
//! and the code exchange), the session they open or end, and where a person is sent when
//! policy asks for a fresher factor.

use super::html;
use super::pages::{check_form, prefix, query_params, read_form, signed_in, store};
use super::{console_config, sign_in, PAGES};
use crate::gateway::console_sessions::{
    self as session, SESSION_COOKIE, SIGN_IN_COOKIE, SIGN_IN_TIMEOUT,
};
use crate::gateway::context::RequestContext;
use crate::gateway::error::{ConsoleError, GatewayError};
use crate::gateway::identify::identify_session;
use crate::gateway::proxy_body::ProxyBody;
use http::Response;
use hyper::body::Incoming;

/// `GET /sign-in`: the page that starts a sign-in (`?ended=1`: after a session ended).
pub(super) fn sign_in_page(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let console = console_config(ctx)?;
    let prefix = prefix(ctx)?;
    let ended = query_params(ctx).get("ended").is_some_and(|v| v == "1");
    html::page(&html::SignInPage {
        prefix: &prefix,
        issuer: &console.issuer,
        ended,
    })
}

/// `GET /sign-in/start`: a fresh `state` and PKCE verifier, tied to a one-time cookie; the
/// browser goes to the issuer. `?step_up=<page>`: a step-up (RFC 9470) asked on that
/// console page: the issuer is asked for the configured `acr_values` and `max_age`, and
/// the person returns to the page.
pub(super) async fn start_sign_in(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let console = console_config(ctx)?;
    // Only a page of this console, by its own name: never a location from the request.
    let step_up = query_params(ctx)
        .get("step_up")
        .and_then(|asked| console_page(asked));
    let (cookie, state, verifier) = ctx
        .shared
        .console
        .begin_sign_in(store(ctx)?, step_up)
        .await
        .map_err(ConsoleError::Store)?
        .ok_or(ConsoleError::Busy)?;
    ctx.record.action = Some("console:sign_in".into());
    let url = sign_in::authorization_url(console, &state, &verifier, step_up.is_some());
    let response = html::see_other(&url);
    // Lax: the issuer sends the browser back with a top-level GET from its own site.
    let cookie = session::set_cookie(SIGN_IN_COOKIE, &cookie, "Lax", SIGN_IN_TIMEOUT);
    Ok(html::with_cookie(response, &cookie))
}

/// `GET /callback?code=&state=`: the issuer's answer. The sign-in must have started here
/// (cookie and `state`), the code is exchanged with its verifier, and the token must pass
/// the issuer's checks before a new session (a new id: nothing presented before counts)
/// is opened.
pub(super) async fn callback(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let console = console_config(ctx)?;
    ctx.record.action = Some("console:sign_in".into());
    let params = query_params(ctx);
    let cookie =
        session::cookie(&ctx.parts.headers, SIGN_IN_COOKIE).ok_or(ConsoleError::SignInFailed)?;
    let state = params.get("state").ok_or(ConsoleError::SignInFailed)?;
    let (verifier, return_to) = ctx
        .shared
        .console
        .finish_sign_in(store(ctx)?, cookie, state, console_page)
        .await
        .map_err(ConsoleError::Store)?
        .ok_or(ConsoleError::SignInFailed)?;
    let code = params.get("code").ok_or(ConsoleError::SignInFailed)?;
    let issuer = ctx
        .generation
        .config
        .issuers
        .iter()
        .find(|i| i.issuer == console.issuer)
        .ok_or_else(|| GatewayError::Internal("console issuer not configured".into()))?;
    let token = sign_in::exchange(console, issuer, code, &verifier).await?;
    identify_session(ctx, &token).await?;
    let id = ctx
        .shared
        .console
        .open(store(ctx)?, token, console)
        .await
        .map_err(ConsoleError::Store)?
        .ok_or(ConsoleError::Busy)?;
    let target = format!("{}/{}", prefix(ctx)?, return_to.unwrap_or(""));
    // A page, not a redirect: a SameSite=Strict cookie set while coming back from another
    // site is sent only on the next navigation this origin starts itself.
    let response = html::page(&html::SignedInPage { target: &target })?;
    let response = html::with_cookie(
        response,
        &session::set_cookie(SESSION_COOKIE, &id, "Strict", console.absolute_timeout),
    );
    Ok(html::with_cookie(
        response,
        &session::clear_cookie(SIGN_IN_COOKIE),
    ))
}

/// `POST /sign-out`: ends the session (with its CSRF token, so no other site can sign the
/// person out) and removes the cookie.
pub(super) async fn sign_out(
    ctx: &mut RequestContext<'_>,
    body: Incoming,
) -> Result<Response<ProxyBody>, GatewayError> {
    let current = match signed_in(ctx).await? {
        Ok(current) => current,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let form = read_form(ctx, body).await?;
    check_form(ctx, &current, &form)?;
    ctx.record.action = Some("console:sign_out".into());
    ctx.shared
        .console
        .close(
            store(ctx)?,
            session::cookie(&ctx.parts.headers, SESSION_COOKIE),
        )
        .await
        .map_err(ConsoleError::Store)?;
    let response = html::see_other(&format!("{}/sign-in", prefix(ctx)?));
    Ok(html::with_cookie(
        response,
        &session::clear_cookie(SESSION_COOKIE),
    ))
}

/// The console page named `name`, by its own `&'static` name: where a sign-in may return
/// to (the request and the store are inputs; only the console's own pages are places).
fn console_page(name: &str) -> Option<&'static str> {
    PAGES
        .iter()
        .find(|(segment, _, _)| *segment == name)
        .map(|(segment, _, _)| *segment)
}

/// What a console action policy answered with `step_up_required` (`refused`) shows: a
/// page (401, as RFC 9470 answers) whose link sends the person back through sign-in asking
/// for a fresher factor, returning to `page`. A link, not a redirect: a form's answer may
/// not redirect to another origin (`form-action 'self'`), and the person should know why
/// they are sent away. The request is a refusal: its audit record and the abuse metrics
/// say so, as the rescue step would.
pub(super) fn step_up(
    ctx: &mut RequestContext<'_>,
    refused: &GatewayError,
    page: &str,
) -> Result<Response<ProxyBody>, GatewayError> {
    ctx.record.decision = refused.audit_decision();
    ctx.record.error_code = Some(crate::gateway::decide::STEP_UP_REQUIRED);
    if let Some((event, reason)) = refused.security_event() {
        ctx.shared
            .metrics
            .security_event(&ctx.record.route, event, reason);
    }
    let prefix = prefix(ctx)?;
    let start = format!("{prefix}/sign-in/start?step_up={page}");
    html::refused_page(
        http::StatusCode::UNAUTHORIZED,
        &html::StepUpPage {
            prefix: &prefix,
            start: &start,
        },
    )
}

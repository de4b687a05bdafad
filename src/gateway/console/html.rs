//! The console's HTML: templates compiled into the binary (askama, auto-escaped), one
//! style sheet, no scripts, and the headers every console response carries: a strict
//! Content-Security-Policy (nothing but this origin's style sheet and forms to itself),
//! no framing, no referrer beyond the console itself (the callback's URL holds a code), never
//! cached.

use super::super::body;
use super::super::proxy_body::ProxyBody;
use super::super::rescue::Refusal;
use crate::gateway::error::GatewayError;
use askama::Template;
use http::{header, HeaderValue, Response, StatusCode};

/// Only this origin's style sheet, forms posted only to this origin, never framed.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

const STYLE_SHEET: &str = include_str!("../../../templates/console/console.css");

/// A menu entry: a page the person's policy allows.
pub(super) struct MenuItem {
    pub(super) href: String,
    pub(super) title: &'static str,
    pub(super) current: bool,
}

/// What every signed-in page shows around its content.
pub(super) struct Chrome {
    /// The route's prefix, for links and forms.
    pub(super) prefix: String,
    /// The page title.
    pub(super) title: &'static str,
    /// Who is signed in (principal and roles).
    pub(super) person: String,
    pub(super) roles: String,
    /// The pages policy lets this person see.
    pub(super) menu: Vec<MenuItem>,
    /// The session's CSRF token, for every form.
    pub(super) csrf: String,
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
pub(super) struct SignInPage<'a> {
    pub(super) prefix: &'a str,
    pub(super) issuer: &'a str,
    pub(super) ended: bool,
}

#[derive(Template)]
#[template(path = "console/signed_in.html")]
pub(super) struct SignedInPage<'a> {
    pub(super) target: &'a str,
}

#[derive(Template)]
#[template(path = "console/step_up.html")]
pub(super) struct StepUpPage<'a> {
    pub(super) prefix: &'a str,
    /// Where the step-up sign-in starts (this console's own sign-in, with the page).
    pub(super) start: &'a str,
}

#[derive(Template)]
#[template(path = "console/refusal.html")]
struct RefusalPage<'a> {
    status: u16,
    code: &'a str,
    message: &'a str,
    request_id: &'a str,
}

/// One route on the overview.
pub(super) struct RouteRow {
    pub(super) name: String,
    pub(super) prefix: String,
    pub(super) serves: String,
}

/// One route's traffic since start, from the metrics registry.
pub(super) struct TrafficRow {
    pub(super) route: String,
    pub(super) requests: u64,
    pub(super) refusals: u64,
    /// Per minute since start, one decimal.
    pub(super) requests_per_minute: String,
    pub(super) refusals_per_minute: String,
}

/// One start or reload.
pub(super) struct ReloadRow {
    pub(super) time: String,
    pub(super) outcome: &'static str,
    pub(super) config_sha256: String,
    pub(super) policy_set_hash: String,
    pub(super) problems: usize,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
pub(super) struct OverviewPage<'a> {
    pub(super) chrome: &'a Chrome,
    pub(super) ready: bool,
    pub(super) config_sha256: &'a str,
    pub(super) policy_set_hash: &'a str,
    pub(super) warnings: usize,
    pub(super) routes: Vec<RouteRow>,
    pub(super) uptime_minutes: String,
    pub(super) traffic: Vec<TrafficRow>,
    pub(super) reloads: Vec<ReloadRow>,
}

/// One consent record on the consent page (never a value of the subject's data).
pub(super) struct ConsentRow {
    pub(super) id: String,
    pub(super) grantee: String,
    pub(super) purposes: String,
    pub(super) permissions: String,
    pub(super) status: String,
    pub(super) expires: String,
    pub(super) revocable: bool,
}

#[derive(Template)]
#[template(path = "console/consent.html")]
pub(super) struct ConsentPage<'a> {
    pub(super) chrome: &'a Chrome,
    pub(super) subject: &'a str,
    pub(super) records: Vec<ConsentRow>,
    pub(super) searched: bool,
    pub(super) notice: &'a str,
    /// Consent revocations waiting for approval, and the last few done.
    pub(super) operations: Vec<super::approvals::OperationRow>,
    /// The page the queue's forms post to (`consent`).
    pub(super) queue_page: &'static str,
}

/// A dataset's budget meter for the signed-in analyst.
pub(super) struct BudgetRow {
    pub(super) dataset: String,
    pub(super) epsilon_left: f64,
    pub(super) epsilon_total: f64,
    pub(super) refreshes_at: String,
    pub(super) tier: String,
}

/// What a query (or dry run) answered, as the API would.
pub(super) struct QueryOutcome {
    pub(super) dry_run: bool,
    pub(super) answer: String,
}

#[derive(Template)]
#[template(path = "console/analytics.html")]
pub(super) struct AnalyticsPage<'a> {
    pub(super) chrome: &'a Chrome,
    pub(super) budgets: Vec<BudgetRow>,
    pub(super) dataset: &'a str,
    pub(super) sql: &'a str,
    pub(super) epsilon: &'a str,
    pub(super) outcome: Option<QueryOutcome>,
}

/// A page as a `200 OK` response with the console's headers.
pub(super) fn page(template: &impl Template) -> Result<Response<ProxyBody>, GatewayError> {
    let text = template
        .render()
        .map_err(|e| GatewayError::Internal(format!("console template: {e}")))?;
    Ok(respond(StatusCode::OK, "text/html; charset=utf-8", text))
}

/// A page answering a request that was refused with `status` (a step-up demand).
pub(super) fn refused_page(
    status: StatusCode,
    template: &impl Template,
) -> Result<Response<ProxyBody>, GatewayError> {
    let mut response = page(template)?;
    *response.status_mut() = status;
    Ok(response)
}

/// `303 See Other`: to a console page, or to the configured authorization endpoint.
pub(super) fn see_other(location: &str) -> Response<ProxyBody> {
    let mut response = respond(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        String::new(),
    );
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Adds a `Set-Cookie`.
pub(super) fn with_cookie(mut response: Response<ProxyBody>, cookie: &str) -> Response<ProxyBody> {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The style sheet.
pub(super) fn style_sheet() -> Response<ProxyBody> {
    respond(
        StatusCode::OK,
        "text/css; charset=utf-8",
        STYLE_SHEET.to_owned(),
    )
}

/// The rescue step's refusal of a console request, as a page: the same status, code and
/// message an API caller would get.
pub(crate) fn refusal_page(refusal: &Refusal, request_id: &str) -> Response<ProxyBody> {
    let page = RefusalPage {
        status: refusal.status().as_u16(),
        code: refusal.code(),
        message: refusal.message(),
        request_id,
    };
    let text = page
        .render()
        .unwrap_or_else(|_| format!("{} {}", refusal.status(), refusal.code()));
    let mut response = respond(refusal.status(), "text/html; charset=utf-8", text);
    if let Some(id) = super::super::headers::request_id_value(request_id) {
        response
            .headers_mut()
            .insert(super::super::headers::REQUEST_ID, id);
    }
    response
}

fn respond(status: StatusCode, content_type: &'static str, text: String) -> Response<ProxyBody> {
    let mut response = Response::new(body::full(text.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

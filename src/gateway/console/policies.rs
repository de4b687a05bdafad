//! The Policies page: the active policy set (hash, every policy with its file), its own
//! test cases run as `privgate policy test` runs them, and a form that explains a
//! hypothetical request class by class through [`crate::policy::Explanation`], as
//! `privgate policy explain` prints it. Nothing on it is recorded against a data subject
//! or allowed by it.

use super::html::{self, Chrome};
use super::oversight::{engine, PolicyRow};
use super::pages::{page_view, query_params};
use crate::gateway::context::RequestContext;
use crate::gateway::error::GatewayError;
use crate::gateway::proxy_body::ProxyBody;
use crate::policy::{Caller, CallerKind, ConsentGrant, DecisionRequest, Explanation, PolicyEngine};
use askama::Template;
use http::Response;
use std::collections::HashMap;

/// A case of the set that failed, and how.
struct FailedCase {
    name: String,
    file: String,
    failures: String,
}

/// A class's view in an explanation.
struct ViewRow {
    class: String,
    view: String,
    why: String,
}

/// The explanation of a hypothetical request.
struct Hypothetical {
    route: String,
    allowed: bool,
    views: Vec<ViewRow>,
}

#[derive(Template)]
#[template(path = "console/policies.html")]
struct PoliciesPage<'a> {
    chrome: &'a Chrome,
    hash: &'a str,
    policies: Vec<PolicyRow>,
    cases_passed: usize,
    cases_total: usize,
    cases_error: String,
    failed: Vec<FailedCase>,
    actions: &'a [String],
    form: &'a HashMap<String, String>,
    explained: Option<Hypothetical>,
    problem: String,
}

impl PoliciesPage<'_> {
    fn value<'b>(&'b self, name: &str, default: &'b str) -> &'b str {
        self.form.get(name).map_or(default, String::as_str)
    }
}

/// `GET /policies`: the active set, its own cases run as `privgate policy test` runs them,
/// and (with `action=`) a hypothetical request explained as `privgate policy explain` does.
pub(super) async fn policies(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (_, chrome) = match page_view(ctx, "policies").await? {
        Ok(viewed) => viewed,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let form = query_params(ctx);
    let engine = engine(ctx)?;
    let policies = engine
        .policy_files()
        .iter()
        .map(|(id, file)| PolicyRow {
            id: id.clone(),
            file: file.clone(),
            text: String::new(),
        })
        .collect();
    let (mut cases_total, mut failed, mut cases_error) = (0, Vec::new(), String::new());
    match engine.cases() {
        Ok(cases) => {
            cases_total = cases.len();
            for (file, case) in cases {
                let outcome = crate::policy::run_case(engine, file, case);
                if !outcome.failures.is_empty() {
                    failed.push(FailedCase {
                        name: outcome.name,
                        file: file
                            .file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into(),
                        failures: outcome.failures.join("; "),
                    });
                }
            }
        }
        Err(e) => cases_error = e.to_owned(),
    }
    let (mut explained, mut problem) = (None, String::new());
    if form.contains_key("action") {
        match hypothetical(&form, engine)
            .and_then(|r| Explanation::of(engine, &r).map_err(|e| e.to_string()))
        {
            Ok(explanation) => explained = Some(shown(&explanation)),
            Err(e) => problem = e,
        }
    }
    html::page(&PoliciesPage {
        chrome: &chrome,
        hash: engine.hash(),
        policies,
        cases_passed: cases_total - failed.len(),
        cases_total,
        cases_error,
        failed,
        actions: engine.route_actions(),
        form: &form,
        explained,
        problem,
    })
}

/// The request the explain form describes; every field class is asked.
fn hypothetical(
    form: &HashMap<String, String>,
    engine: &PolicyEngine,
) -> Result<DecisionRequest, String> {
    let text = |name: &str| form.get(name).map_or("", |v| v.trim());
    let list = |name: &str| -> Vec<String> {
        text(name)
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let kind = match text("kind") {
        "Service" => CallerKind::Service,
        _ => CallerKind::User,
    };
    let auth_age_seconds = match text("auth_age") {
        "" => 0,
        age => age
            .parse()
            .map_err(|_| "authentication age is a whole number of seconds".to_owned())?,
    };
    let permissions = list("consent");
    Ok(DecisionRequest {
        caller: Caller {
            kind,
            credential: Default::default(),
            id: text("caller").to_owned(),
            roles: list("roles"),
            organisation: Some(text("organisation").to_owned()).filter(|o| !o.is_empty()),
            purposes: list("purposes"),
        }
        .into(),
        action: text("action").to_owned(),
        customer: text("resource").to_owned(),
        purpose: text("purpose").to_owned(),
        amr: list("amr").into(),
        auth_age_seconds,
        certificate_bound: form.get("certificate_bound").is_some_and(|v| v == "on"),
        amount: None,
        consent: (!permissions.is_empty()).then(|| ConsentGrant {
            id: "hypothetical".into(),
            permissions,
        }),
        field_classes: engine.field_classes().map(str::to_owned).collect(),
        aggregate: None,
        risk: None,
    })
}

fn shown(explanation: &Explanation) -> Hypothetical {
    Hypothetical {
        route: explanation.route_line(),
        allowed: explanation.allowed,
        views: explanation
            .views
            .iter()
            .map(|v| ViewRow {
                class: v.class.clone(),
                view: format!("{:?}", v.view).to_lowercase(),
                why: v.why(),
            })
            .collect(),
    }
}

//! The data subject of a request, resolved the way its route declares and only ever in the
//! route's one canonical form ([`SubjectForm`](crate::config::subject::SubjectForm)).
//!
//! Every subject id the request path uses passes through here first: the route's own subject
//! (path segment, request member or response member) before the decision, and the subjects
//! field rules name in a body before any consent lookup, per-subject key or reveal. An id in
//! another spelling is refused, never looked up: `/customers/042` is not customer 42, and it
//! creates no consent query, key row or audit pseudonym of its own.

use super::error::GatewayError;
use super::router::Route;
use crate::config::SubjectFrom;
use crate::protect::document::Document;
use crate::protect::rules::{BodySide, Located};
use crate::protect::ProtectError;
use serde_json::Value;

/// When the route's own subject is known, and so when the route can be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    /// From the request line (or the route names none): decided before the body is read.
    BeforeBody,
    /// From the request body: decided once it is read and checked.
    AfterRequestBody,
    /// From the upstream's answer: decided before anything of it is released.
    AfterResponse,
}

/// When `route`'s subject is known.
pub(crate) fn known(route: &Route) -> Known {
    match route.subject.as_ref().and_then(|s| s.from) {
        Some(SubjectFrom::Request) => Known::AfterRequestBody,
        Some(SubjectFrom::Response) => Known::AfterResponse,
        Some(SubjectFrom::Path) | None => Known::BeforeBody,
    }
}

/// The subject the path names (`from = "path"`): the first segment after the prefix, or
/// `None` when there is none (`/customers` itself, a list). A segment not in the route's
/// form is refused.
pub(crate) fn from_path(route: &Route, path: &str) -> Result<Option<String>, GatewayError> {
    let Some(subject) = &route.subject else {
        return Ok(None);
    };
    if subject.from != Some(SubjectFrom::Path) {
        return Ok(None);
    }
    let rest = path
        .get(route.path_prefix.len()..)
        .unwrap_or("")
        .trim_start_matches('/');
    match rest.split('/').next().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(id) if subject.form.accepts(id) => Ok(Some(id.to_owned())),
        Some(_) => Err(GatewayError::InvalidSubject),
    }
}

/// The subject a body names (`from = "request"` or `"response"`): exactly one string or
/// integer at the route's selector, in the route's form. The request's failing is the
/// client's (400); the upstream's answer failing is the upstream's (502), and nothing of
/// that answer is released.
pub(crate) fn from_body(
    route: &Route,
    side: BodySide,
    body: &[u8],
) -> Result<String, GatewayError> {
    let refused = || match side {
        BodySide::Request => GatewayError::InvalidSubject,
        BodySide::Response => GatewayError::ResponseSubject {
            upstream: route.upstream.clone(),
        },
    };
    let subject = route.subject.as_ref().ok_or_else(refused)?;
    let selector = subject.selector.as_ref().ok_or_else(refused)?;
    // A body that is not a document the rules read fails as the rules' bodies do.
    let doc = Document::parse(body).map_err(|e| match side {
        BodySide::Request => GatewayError::RequestProtection(ProtectError::Body(e)),
        BodySide::Response => GatewayError::ResponseProtection(ProtectError::Body(e)),
    })?;
    // A body that also spells the selector's members otherwise (`Customer_Id` beside
    // `customer_id`) is refused: a case-insensitive upstream could act for the subject the
    // decision never saw.
    if crate::protect::rules::misspells_selector(selector, doc.root()) {
        return Err(refused());
    }
    let id = match selector
        .query(doc.value().map_err(|_| refused())?)
        .exactly_one()
        .map_err(|_| refused())?
    {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return Err(refused()),
    };
    match subject.form.accepts(&id) {
        true => Ok(id),
        false => Err(refused()),
    }
}

/// Checks the subjects field rules found in a body before anything uses them. A route whose
/// rules name subjects declares their form (configuration refuses it otherwise); one
/// without a form here is refused too, closed.
pub(crate) fn check_located(
    route: &Route,
    side: BodySide,
    located: &[Located],
) -> Result<(), GatewayError> {
    let mut subjects = located
        .iter()
        .filter_map(|l| l.subject.as_deref())
        .peekable();
    if subjects.peek().is_none() {
        return Ok(());
    }
    let form = route.subject.as_ref().map(|s| &s.form);
    for id in subjects {
        if !form.is_some_and(|f| f.accepts(id)) {
            return Err(match side {
                BodySide::Request => GatewayError::InvalidSubject,
                BodySide::Response => GatewayError::ResponseSubject {
                    upstream: route.upstream.clone(),
                },
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteConfig;
    use crate::gateway::router::Router;

    fn router(subject: &str) -> Router {
        let text = format!(
            r#"name = "r"
               path_prefix = "/customers"
               upstream = "core"
               body = "buffered"
               action = "customers:read"
               subject = {subject}"#
        );
        let config: RouteConfig = toml::from_str(&text).unwrap();
        Router::new(&[config]).unwrap()
    }

    fn route<'a>(router: &'a Router, path: &str) -> &'a Route {
        router.route("x", path, &http::Method::GET).unwrap()
    }

    #[test]
    fn a_path_subject_is_the_segment_after_the_prefix_in_its_one_form() {
        let r = router(r#"{ from = "path", id = "integer" }"#);
        // (path, subject or refusal)
        let cases = [
            ("/customers", Ok(None)),
            ("/customers/", Ok(None)),
            ("/customers/42", Ok(Some("42"))),
            ("/customers/42/accounts", Ok(Some("42"))),
            // Upstreams that merge slashes read customer 42 here; so does the gateway.
            ("/customers//42", Ok(Some("42"))),
            ("/customers/42;v=1", Err(())),
            ("/customers/042", Err(())),
            ("/customers/+42", Err(())),
            ("/customers/42.0", Err(())),
            ("/customers/%34%32", Err(())),
            ("/customers/c-1/accounts", Err(())),
        ];
        for (path, expected) in cases {
            let got = from_path(route(&r, path), path);
            match expected {
                Ok(subject) => assert_eq!(got.unwrap().as_deref(), subject, "{path}"),
                Err(()) => assert!(
                    matches!(got, Err(GatewayError::InvalidSubject)),
                    "{path}: {got:?}"
                ),
            }
        }
        // A route whose subject is in a body names none in its path.
        let r = router(r#"{ from = "request", selector = "$.id", id = "integer" }"#);
        assert_eq!(
            from_path(route(&r, "/customers/042"), "/customers/042").unwrap(),
            None
        );
    }

    #[test]
    fn a_body_subject_is_exactly_one_id_in_its_one_form() {
        let r = router(r#"{ from = "response", selector = "$.customer_id", id = "integer" }"#);
        let route = route(&r, "/customers/1");
        // (body, subject or none)
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{"customer_id": 3}"#, Some("3")),
            (r#"{"customer_id": "3"}"#, Some("3")),
            (r#"{"customer_id": "03"}"#, None),
            (r#"{"customer_id": 3.0}"#, None),
            (r#"{"customer_id": 3e0}"#, None),
            (r#"{"customer_id": -3}"#, None),
            (r#"{"customer_id": [3]}"#, None),
            (r#"{"customer_id": null}"#, None),
            (r#"{"owner": 3}"#, None),
            (r#"{"customer_id": 3, "customer_id": 4}"#, None),
            // Another spelling of the selector's member beside it, anywhere in the body.
            (r#"{"customer_id": 3, "Customer_Id": 4}"#, None),
            (r#"{"customer_id": 3, "CUSTOMERID": 4}"#, None),
            (r#"{"customer_id": 3, "customer-id": 4}"#, None),
            (r#"{"customer_id": 3, "x": {"customer_ID": 4}}"#, None),
            (r#"{"customer_id": 3, "customer_name": "Ann"}"#, Some("3")),
            ("not json", None),
            ("", None),
        ];
        for (body, expected) in cases {
            let got = from_body(route, BodySide::Response, body.as_bytes());
            match expected {
                Some(id) => assert_eq!(got.unwrap(), *id, "{body}"),
                None => assert!(
                    matches!(
                        got,
                        Err(GatewayError::ResponseSubject { .. }
                            | GatewayError::ResponseProtection(ProtectError::Body(_)))
                    ),
                    "{body}: {got:?}"
                ),
            }
        }
        // The request's failing is the client's.
        assert!(matches!(
            from_body(route, BodySide::Request, br#"{"customer_id": "+3"}"#),
            Err(GatewayError::InvalidSubject)
        ));
        assert!(matches!(
            from_body(
                route,
                BodySide::Request,
                br#"{"customer_id": 7, "Customer_Id": 3}"#
            ),
            Err(GatewayError::InvalidSubject)
        ));
    }

    #[test]
    fn subjects_field_rules_find_are_checked_against_the_form() {
        let r = router(r#"{ id = "uuid" }"#);
        let route = route(&r, "/customers");
        let located = |subject: Option<&str>| Located {
            path: Vec::new(),
            class: "email".into(),
            subject: subject.map(Into::into),
        };
        let u = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert!(check_located(
            route,
            BodySide::Response,
            &[located(Some(u)), located(None)]
        )
        .is_ok());
        let upper = u.to_uppercase();
        assert!(matches!(
            check_located(
                route,
                BodySide::Response,
                &[located(Some(u)), located(Some(&upper))]
            ),
            Err(GatewayError::ResponseSubject { .. })
        ));
        assert!(matches!(
            check_located(route, BodySide::Request, &[located(Some("42"))]),
            Err(GatewayError::InvalidSubject)
        ));
    }
}

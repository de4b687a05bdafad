//! The admin API the gateway serves itself on routes with `serve = "admin_api"`: consent
//! records and approval-gated operations. Paths are relative to the route's prefix
//! (e.g. `/admin/v1`):
//!
//! ```text
//! POST /consents                  consent:grant   on Customer (the body's subject)
//! GET  /consents?subject=&grantee= consent:read   on Customer (subject is required)
//! GET  /consents/{id}             consent:read    on Customer (the record's subject)
//! POST /consents/{id}/revoke      consent:revoke  on Customer (the record's subject)
//! POST /operations                the kind's action (keys:shred, keys:retire, ...)
//! GET  /operations?status=pending  those whose kind's action the caller may take
//! GET  /operations/{id}           the kind's action
//! POST /operations/{id}/approve   the kind's action
//! ```
//!
//! The identify phase has run before this (such routes always identify callers); each call
//! is then authorised here by the policy set, for its own action and resource, and the
//! request record carries the action, the policies and the subject's pseudonym, so every
//! call (refused ones too) is audited. Errors go back as [`GatewayError`]s to the rescue step.

mod consents;
mod operations;

pub(crate) use operations::gateway_executor;

use super::context::{RequestContext, RequestRecord};
use super::decide;
use super::error::GatewayError;
use super::served::{ServedApi, ServedCall};
use crate::approval::AdminError;
use crate::gateway::proxy_body::ProxyBody;
use crate::store::Store;
use http::{Method, Response};
use hyper::body::Incoming;

/// One admin call, with what every handler needs: the served call and the store.
struct Call<'a> {
    served: ServedCall<'a>,
    store: &'a Store,
}

impl<'a> std::ops::Deref for Call<'a> {
    type Target = ServedCall<'a>;

    fn deref(&self) -> &ServedCall<'a> {
        &self.served
    }
}

/// The admin API (`serve = "admin_api"`): consent records and approval-gated operations.
pub(crate) struct AdminApi;

impl ServedApi for AdminApi {
    async fn serve(
        &self,
        ctx: &mut RequestContext<'_>,
        body: Incoming,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let (served, rec) = ServedCall::split(ctx)?;
        let store = served
            .shared
            .store
            .as_ref()
            .ok_or_else(|| GatewayError::Internal("the admin API needs a store".into()))?;
        let bytes = served.read_body(body).await?;
        let (route, parts) = (served.route, served.parts);
        let call = Call { served, store };
        let segments = route.served_segments(parts.uri.path());
        match (&parts.method, segments.as_slice()) {
            (&Method::POST, ["consents"]) => consents::grant(&call, &bytes, rec).await,
            (&Method::GET, ["consents"]) => consents::list(&call, rec).await,
            (&Method::GET, ["consents", id]) => consents::show(&call, id, rec).await,
            (&Method::POST, ["consents", id, "revoke"]) => consents::revoke(&call, id, rec).await,
            (&Method::POST, ["operations"]) => operations::request(&call, &bytes, rec).await,
            (&Method::GET, ["operations"]) => operations::list(&call, rec).await,
            (&Method::GET, ["operations", id]) => operations::show(&call, id, rec).await,
            (&Method::POST, ["operations", id, "approve"]) => {
                operations::approve(&call, id, rec).await
            }
            (
                _,
                ["consents"]
                | ["consents", _]
                | ["consents", _, "revoke"]
                | ["operations"]
                | ["operations", _]
                | ["operations", _, "approve"],
            ) => Err(GatewayError::MethodNotAllowed {
                allowed: allowed_methods(&segments),
            }),
            _ => Err(GatewayError::NoRoute),
        }
    }
}

fn allowed_methods(segments: &[&str]) -> Vec<Method> {
    match segments {
        ["consents"] | ["operations"] => vec![Method::GET, Method::POST],
        ["consents", _] | ["operations", _] => vec![Method::GET],
        _ => vec![Method::POST],
    }
}

impl Call<'_> {
    /// Asks the policy set whether the caller may take `action` on `resource` (a data
    /// subject, or the gateway part for gateway-wide actions); records who, why and what.
    fn authorize(
        &self,
        action: &str,
        resource: &str,
        subject: Option<&str>,
        rec: &mut RequestRecord,
    ) -> Result<(), GatewayError> {
        rec.action = Some(action.to_owned());
        rec.subject = subject.map(str::to_owned);
        let decision = self.decide(action, resource, rec)?;
        rec.policy_ids.clone_from(&decision.policy_ids);
        match decision.refusal {
            Some(refusal) => Err(decide::refused(refusal.reason, self.route)),
            None => Ok(()),
        }
    }

    /// Whether the caller may take `action` on `resource`, recording nothing but the
    /// purpose and policy set (for listings that show only what the caller may see).
    fn allows(
        &self,
        action: &str,
        resource: &str,
        rec: &mut RequestRecord,
    ) -> Result<bool, GatewayError> {
        Ok(self.decide(action, resource, rec)?.allowed())
    }

    fn decide(
        &self,
        action: &str,
        resource: &str,
        rec: &mut RequestRecord,
    ) -> Result<crate::decision::Decision, GatewayError> {
        let engine = self
            .generation
            .policy
            .as_ref()
            .ok_or_else(|| GatewayError::Internal("the admin API needs a policy set".into()))?;
        rec.policy_set_hash = Some(engine.hash().to_owned());
        let request = decide::served_request(self.parts, self.identity, action, resource, rec)?;
        Ok(engine.decide(&request)?)
    }

    /// The caller as an approver ([`crate::policy::Caller::principal`]): kind and namespaced
    /// id, so callers of different kinds or credentials with one name are different people.
    fn principal(&self) -> String {
        self.identity.caller.principal()
    }
}

/// Parses a JSON request body into `T` (unknown fields refused by `T`).
fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, GatewayError> {
    serde_json::from_slice(bytes)
        .map_err(|e| GatewayError::Admin(AdminError::Invalid(body_problem(&e))))
}

/// What is wrong with a body, in words that carry none of its values: serde's own message
/// for a wrong type or value quotes the value (`invalid type: string "900-12-3456",
/// expected a sequence`), and an unknown member or variant quotes what the caller wrote,
/// so only a missing member (a name from the schema) keeps serde's words.
fn body_problem(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        Category::Io | Category::Syntax | Category::Eof => format!("the body is not JSON ({at})"),
        Category::Data => {
            let message = e.to_string();
            match message.strip_prefix("missing field `") {
                Some(rest) if rest.split('`').next().is_some_and(is_schema_name) => message,
                _ => format!(
                    "a member is unknown, missing, or of the wrong type or value ({at}); \
                     the API's documentation lists each body's members"
                ),
            }
        }
    }
}

/// A member name as the bodies' types spell them (serde quotes these from the schema).
fn is_schema_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// The body checks of the admin API's handlers, without a store or a caller: the fuzz
/// targets' entry point (see `crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    use super::GatewayError;

    /// `POST /consents`: the body as [`super::consents::grant`] reads and validates it.
    pub(crate) fn grant_body(bytes: &[u8]) -> Result<(), GatewayError> {
        super::consents::check_grant_body(bytes, crate::store::now_ms())
    }

    /// `POST /operations`: the body as [`super::operations::request`] reads and validates it.
    pub(crate) fn operation_body(bytes: &[u8]) -> Result<(), GatewayError> {
        let op: crate::approval::Operation = super::parse(bytes)?;
        Ok(op.validate()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the consent grant body: strings and lists of strings.
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only parsed
    struct Grant {
        subject: String,
        purposes: Vec<String>,
        count: Option<u32>,
    }

    fn refusal<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &str) -> String {
        match parse::<T>(body.as_bytes()) {
            Err(GatewayError::Admin(AdminError::Invalid(message))) => message,
            other => panic!("{body}: {other:?}"),
        }
    }

    /// Found by the `admin_bodies` fuzz target: serde's messages quote the value of a
    /// member of the wrong type, and the refusal went back to the client and the logs.
    #[test]
    fn refusals_never_quote_a_value_the_caller_sent() {
        let cases: [(&str, &str); 6] = [
            (
                r#"{"subject":"42","purposes":"jane@example.com"}"#,
                "jane@example.com",
            ),
            (r#"{"subject":900123456,"purposes":[]}"#, "900123456"),
            (
                r#"{"subject":"42","purposes":[],"count":-4111111}"#,
                "4111111",
            ),
            (
                r#"{"subject":"42","purposes":[],"count":"GB82 WEST"}"#,
                "GB82 WEST",
            ),
            (
                r#"{"subject":"42","purposes":[],"national_id_900":1}"#,
                "national_id_900",
            ),
            (r#"{"subject":true,"purposes":[]}"#, "true"),
        ];
        for (body, value) in cases {
            let message = refusal::<Grant>(body);
            assert!(!message.contains(value), "{body}: {message}");
            assert!(message.contains("line 1 column"), "{body}: {message}");
        }
        let op = refusal::<crate::approval::Operation>(r#"{"kind":"900-12-3456"}"#);
        assert!(!op.contains("900-12-3456"), "{op}");
    }

    #[test]
    fn refusals_still_name_a_missing_member_and_a_syntax_error() {
        assert_eq!(
            refusal::<Grant>(r#"{"subject":"42"}"#),
            "missing field `purposes` at line 1 column 16"
        );
        assert!(refusal::<Grant>(r#"{"subject":"#).starts_with("the body is not JSON"));
    }
}

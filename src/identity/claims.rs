//! Verified token claims to an [`Identity`], by the issuer's claim mapping.
//!
//! - Principal: `sub`. A token whose `sub` equals its client id (`client_id`, else `azp`)
//!   was issued to a client for itself (OAuth client credentials; RFC 9068 section 2.2 says
//!   `sub` is then the client id): it is a Cedar `PrivGate::Service::"oauth:<sub>"`; any
//!   other token is a `PrivGate::User::"<sub>"`. The `oauth:` namespace keeps such a token
//!   from ever being the `[[client]]` (`client:`) or API-key service (`apikey:`) that
//!   happens to share its name (see [`crate::policy::Caller::cedar_id`]).
//! - Roles: `roles_claim` (array of strings or a space-separated string), plus the `scope`
//!   values when `scopes_as_roles`. Purposes: `purposes_claim`. Organisation:
//!   `organisation_claim` (an empty string is no organisation).
//! - Authentication: `acr`, `amr`, `auth_time`; binding: `cnf` (`x5t#S256`).

use super::error::IdentityError;
use super::{Identity, TokenFacts};
use crate::config::IssuerConfig;
use crate::policy::{Caller, CallerKind, Credential};
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The identity a verified token establishes.
pub(super) fn identity(
    config: &IssuerConfig,
    claims: &Map<String, Value>,
) -> Result<Identity, IdentityError> {
    let subject =
        string(claims, "sub").ok_or(IdentityError::InvalidToken("sub is not a string"))?;
    let client_id = string(claims, "client_id").or_else(|| string(claims, "azp"));
    let scopes = strings(claims.get("scope"));
    let mut roles = strings(claims.get(&config.roles_claim));
    if config.scopes_as_roles {
        roles.extend(scopes.iter().cloned());
    }
    let kind = if client_id.as_deref() == Some(subject.as_str()) {
        CallerKind::Service
    } else {
        CallerKind::User
    };
    let caller = Caller {
        kind,
        credential: Credential::Token,
        id: subject.clone(),
        roles,
        organisation: config
            .organisation_claim
            .as_ref()
            .and_then(|c| string(claims, c))
            .filter(|org| !org.trim().is_empty()),
        purposes: config
            .purposes_claim
            .as_ref()
            .map(|c| strings(claims.get(c)))
            .unwrap_or_default(),
    };
    let bound_thumbprint = match claims.get("cnf") {
        None => None,
        Some(cnf) => Some(
            cnf.get("x5t#S256")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(IdentityError::InvalidToken("cnf without x5t#S256"))?,
        ),
    };
    Ok(Identity {
        caller: Arc::new(caller),
        acr: string(claims, "acr"),
        amr: strings(claims.get("amr")).into(),
        auth_time: claims.get("auth_time").and_then(Value::as_i64),
        certificate_bound: false,
        token: Some(Arc::new(TokenFacts {
            issuer: config.issuer.clone(),
            subject,
            client_id,
            jti: string(claims, "jti"),
            session_id: string(claims, "sid"),
            issued_at: claims.get("iat").and_then(Value::as_i64),
            scopes,
            bound_thumbprint,
            forward: forwarded(claims, &config.forward_claims),
        })),
        api_key: false,
    })
}

fn string(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// An array of strings, or a space-separated string (OAuth `scope` style).
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Header values for the configured claims. Strings pass as they are, numbers and booleans
/// as JSON text, arrays of strings space-separated; values that cannot be a header value
/// (control characters, non-ASCII) are left out rather than mangled.
fn forwarded(
    claims: &Map<String, Value>,
    config: &std::collections::BTreeMap<String, String>,
) -> Vec<(HeaderName, HeaderValue)> {
    config
        .iter()
        .filter_map(|(claim, header)| {
            let text = match claims.get(claim)? {
                Value::String(s) => s.clone(),
                v @ (Value::Number(_) | Value::Bool(_)) => v.to_string(),
                v @ Value::Array(_) => strings(Some(v)).join(" "),
                _ => return None,
            };
            let value = HeaderValue::from_str(&text).ok()?;
            Some((HeaderName::from_bytes(header.as_bytes()).ok()?, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_and_scopes_read_from_arrays_or_space_separated_strings() {
        let cases = [
            (json!(["a", "b"]), vec!["a", "b"]),
            (json!("a  b"), vec!["a", "b"]),
            (json!(["a", 3, "c"]), vec!["a", "c"]),
            (json!(7), vec![]),
            (json!(null), vec![]),
        ];
        for (value, expected) in cases {
            assert_eq!(strings(Some(&value)), expected, "{value}");
        }
    }

    #[test]
    fn only_header_safe_claim_values_are_forwarded() {
        let claims = json!({
            "sub": "user-1", "acct": 42, "groups": ["x", "y"], "bad": "a\nb", "obj": {"k": 1}
        });
        let config = [
            ("sub", "x-privgate-subject"),
            ("acct", "x-privgate-account"),
            ("groups", "x-privgate-groups"),
            ("bad", "x-privgate-bad"),
            ("obj", "x-privgate-obj"),
            ("absent", "x-privgate-absent"),
        ]
        .into_iter()
        .map(|(c, h)| (c.to_owned(), h.to_owned()))
        .collect();
        let got: Vec<(String, String)> = forwarded(claims.as_object().unwrap(), &config)
            .into_iter()
            .map(|(h, v)| (h.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            got,
            [
                ("x-privgate-account".to_owned(), "42".to_owned()),
                ("x-privgate-groups".to_owned(), "x y".to_owned()),
                ("x-privgate-subject".to_owned(), "user-1".to_owned()),
            ]
        );
    }
}

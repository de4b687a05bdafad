//! RFC 7662 token introspection for opaque (non-JWT) access tokens.
//!
//! The gateway POSTs the token to the issuer's introspection endpoint over HTTPS,
//! authenticated with HTTP Basic (client id and secret, each form-urlencoded first as RFC
//! 6749 section 2.3.1 asks), and accepts only an answer with `active: true`, `sub`, an
//! `exp` not passed, an `nbf` (if any) reached, an `aud` naming one of the issuer's
//! audiences and, if it names one, the issuer's own `iss`. Anything else is an invalid
//! token; an endpoint that cannot be asked fails the request closed (503).

use super::error::IdentityError;
use super::fetch::issuer_client;
use crate::config::{ConfigError, IssuerConfig};
use crate::outbound::OutboundClient;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode, Uri};
use serde_json::{Map, Value};

/// An issuer's introspection endpoint.
pub(super) struct Introspector {
    uri: Uri,
    client: Box<OutboundClient>,
    /// `Basic ...` (marked sensitive: hyper never logs it).
    authorization: HeaderValue,
}

impl Introspector {
    /// The introspector an issuer configures, reading its client secret now.
    pub(super) fn from_config(issuer: &IssuerConfig) -> Result<Option<Self>, ConfigError> {
        let (Some(url), Some(client_id), Some(secret_file)) = (
            &issuer.introspection_url,
            &issuer.introspection_client_id,
            &issuer.introspection_secret_file,
        ) else {
            return Ok(None);
        };
        let name = &issuer.issuer;
        let uri: Uri = url.parse().map_err(|_| {
            ConfigError::one(
                "privgate.toml",
                format!("issuer `{name}`: bad introspection_url"),
            )
        })?;
        let secret = zeroize::Zeroizing::new(
            std::fs::read_to_string(secret_file)
                .map_err(|e| ConfigError::one(secret_file, format!("cannot read: {e}")))?,
        );
        let secret = secret.lines().next().unwrap_or("");
        if secret.is_empty() {
            return Err(ConfigError::one(secret_file, "client secret is empty"));
        }
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let credentials =
            zeroize::Zeroizing::new(format!("{}:{}", encode(client_id), encode(secret)));
        let mut authorization = HeaderValue::from_str(&format!(
            "Basic {}",
            STANDARD.encode(credentials.as_bytes())
        ))
        .map_err(|_| ConfigError::one(secret_file, "client secret is not usable"))?;
        authorization.set_sensitive(true);
        Ok(Some(Self {
            uri,
            client: issuer_client(issuer)?,
            authorization,
        }))
    }

    /// Asks the endpoint about `token`; returns its answer (not yet checked).
    pub(super) async fn introspect(
        &self,
        token: &str,
    ) -> Result<Map<String, Value>, IdentityError> {
        let unavailable = |why: String| IdentityError::IntrospectionUnavailable(why);
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let request = Request::post(self.uri.clone())
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Bytes::from(body))
            .map_err(|e| unavailable(e.to_string()))?;
        let answer = self
            .client
            .send(request)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if answer.status() != StatusCode::OK {
            return Err(unavailable(format!(
                "endpoint answered {}",
                answer.status()
            )));
        }
        let bytes = answer.into_body();
        serde_json::from_slice(&bytes)
            .map_err(|_| unavailable("answer is not a JSON object".into()))
    }
}

/// Checks an introspection answer as an access token's claims (RFC 7662 section 2.2).
pub(super) fn check_answer(
    answer: &Map<String, Value>,
    issuer: &IssuerConfig,
    now_s: i64,
) -> Result<(), IdentityError> {
    let invalid = IdentityError::InvalidToken;
    if answer.get("active") != Some(&Value::Bool(true)) {
        return Err(invalid("inactive (introspection)"));
    }
    if answer
        .get("iss")
        .is_some_and(|iss| iss.as_str() != Some(&issuer.issuer))
    {
        return Err(invalid("issuer mismatch"));
    }
    let audiences: Vec<&str> = match answer.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences
        .iter()
        .any(|a| issuer.audiences.iter().any(|c| c == a))
    {
        return Err(invalid("audience not accepted"));
    }
    if !answer.get("sub").is_some_and(Value::is_string) {
        return Err(invalid("required claim missing"));
    }
    let leeway = i64::try_from(issuer.leeway.as_secs()).unwrap_or(0);
    let exp = answer
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(invalid("required claim missing"))?;
    if exp.saturating_add(leeway) < now_s {
        return Err(invalid("expired"));
    }
    if answer
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf.saturating_sub(leeway) > now_s)
    {
        return Err(invalid("not yet valid (nbf)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_active_current_answers_for_this_audience_are_accepted() {
        let issuer: IssuerConfig = toml::from_str(
            "issuer = \"https://idp\"\naudiences = [\"api\"]\nintrospection_url = \"https://idp/i\"",
        )
        .unwrap();
        let now = 1_000_000;
        let good = json!({ "active": true, "sub": "a", "aud": ["x", "api"], "exp": now + 60, "iss": "https://idp" });
        let with = |k: &str, v: Value| {
            let mut a = good.clone();
            if v.is_null() {
                a.as_object_mut().unwrap().remove(k);
            } else {
                a[k] = v;
            }
            a
        };
        let cases = [
            (good.clone(), None),
            (
                with("active", json!(false)),
                Some("inactive (introspection)"),
            ),
            (
                with("active", Value::Null),
                Some("inactive (introspection)"),
            ),
            (
                with("active", json!("true")),
                Some("inactive (introspection)"),
            ),
            (with("iss", json!("https://evil")), Some("issuer mismatch")),
            (with("iss", Value::Null), None),
            (with("aud", json!("other")), Some("audience not accepted")),
            (with("aud", Value::Null), Some("audience not accepted")),
            (with("sub", Value::Null), Some("required claim missing")),
            (with("exp", Value::Null), Some("required claim missing")),
            (with("exp", json!(now - 31)), Some("expired")),
            (with("exp", json!(now - 30)), None),
            (with("nbf", json!(now + 31)), Some("not yet valid (nbf)")),
        ];
        for (answer, refused) in cases {
            let outcome = check_answer(answer.as_object().unwrap(), &issuer, now);
            assert_eq!(
                outcome.err(),
                refused.map(IdentityError::InvalidToken),
                "{answer}"
            );
        }
    }
}

//! Signing in to the console: the OAuth 2.0 authorization-code flow with PKCE (RFC 7636,
//! `S256`) against the issuer `[console]` names, as OpenID Connect clients do it.
//!
//! The browser is sent to the authorization endpoint with a fresh `state` and code
//! challenge, both tied to a one-time sign-in cookie; the issuer sends it back to the fixed
//! `redirect_uri` (never one from a request, so no open redirect) and the gateway exchanges
//! the code for an access token over HTTPS, verified against the issuer's `ca`. The token
//! is then checked like any API caller's (signature, `iss`, `aud`, lifetime, deny list)
//! before a session is opened; it never reaches the browser.

use crate::config::{ConsoleConfig, IssuerConfig};
use crate::gateway::error::ConsoleError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use zeroize::Zeroizing;

/// The address the browser is sent to: the authorization endpoint with the console's
/// client id, fixed redirect URI, `state` and PKCE challenge; for a step-up (RFC 9470),
/// also the configured `acr_values` and `max_age` (OpenID Connect Core 3.1.2.1).
pub(super) fn authorization_url(
    console: &ConsoleConfig,
    state: &str,
    verifier: &str,
    step_up: bool,
) -> String {
    let challenge = URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    let mut url = match url::Url::parse(&console.authorization_endpoint) {
        Ok(url) => url,
        // Validated at load; unreachable.
        Err(_) => return console.authorization_endpoint.clone(),
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &console.client_id)
        .append_pair("redirect_uri", &console.redirect_uri)
        .append_pair("scope", "openid")
        .append_pair("state", state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if step_up {
        let mut pairs = url.query_pairs_mut();
        if !console.step_up_acr_values.is_empty() {
            pairs.append_pair("acr_values", &console.step_up_acr_values.join(" "));
        }
        pairs.append_pair("max_age", &console.step_up_max_age.as_secs().to_string());
    }
    url.into()
}

/// The token endpoint's answer (RFC 6749 section 5.1); only the access token is used.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: String,
}

/// Exchanges an authorization code (with its PKCE verifier) for an access token.
pub(super) async fn exchange(
    console: &ConsoleConfig,
    issuer: &IssuerConfig,
    code: &str,
    verifier: &str,
) -> Result<Zeroizing<String>, ConsoleError> {
    let failed = |what: &str| ConsoleError::Issuer(what.to_owned());
    let client = crate::identity::issuer_client(issuer).map_err(|_| failed("no TLS client"))?;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &console.redirect_uri)
        .append_pair("client_id", &console.client_id)
        .append_pair("code_verifier", verifier)
        .finish();
    let request = Request::builder()
        .method(Method::POST)
        .uri(&console.token_endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Bytes::from(form))
        .map_err(|_| failed("bad token endpoint"))?;
    let answer = client
        .send(request)
        .await
        .map_err(|e| failed(&format!("token request failed: {e}")))?;
    let status = answer.status();
    let answer = (status, Zeroizing::new(answer.into_body().to_vec()));
    let (status, body) = answer;
    // An issuer's refusal (an expired or replayed code) is the person's to retry.
    if status == StatusCode::BAD_REQUEST {
        return Err(ConsoleError::SignInFailed);
    }
    if status != StatusCode::OK {
        return Err(failed(&format!("token endpoint answered {status}")));
    }
    let answer: TokenAnswer =
        serde_json::from_slice(&body).map_err(|_| failed("token answer is not JSON"))?;
    if !answer.token_type.eq_ignore_ascii_case("bearer") {
        return Err(failed("token answer is not a bearer token"));
    }
    Ok(Zeroizing::new(answer.access_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 appendix B: the verifier and challenge of the specification's example.
    #[test]
    fn the_challenge_is_rfc_7636_s256() {
        let console = ConsoleConfig {
            issuer: "https://idp.example".into(),
            client_id: "console".into(),
            authorization_endpoint: "https://idp.example/authorize?tenant=a".into(),
            token_endpoint: "https://idp.example/token".into(),
            redirect_uri: "https://gw.example/console/callback".into(),
            idle_timeout: std::time::Duration::from_secs(60),
            absolute_timeout: std::time::Duration::from_secs(60),
            step_up_acr_values: vec!["urn:example:mfa".into()],
            step_up_max_age: std::time::Duration::from_secs(300),
        };
        let url = authorization_url(
            &console,
            "st",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            false,
        );
        let url = url::Url::parse(&url).unwrap();
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs["code_challenge"],
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(pairs["redirect_uri"], "https://gw.example/console/callback");
        assert_eq!(pairs["tenant"], "a");
        assert_eq!(pairs["state"], "st");
        assert!(!pairs.contains_key("acr_values") && !pairs.contains_key("max_age"));
        let step_up = authorization_url(&console, "st", "v", true);
        let pairs: std::collections::HashMap<_, _> = url::Url::parse(&step_up)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        assert_eq!(pairs["acr_values"], "urn:example:mfa");
        assert_eq!(pairs["max_age"], "300");
    }
}

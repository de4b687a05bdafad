//! The demo issuer's sign-in endpoints, so a person can sign in to the web console as each
//! demo role: an OAuth 2.0 authorization endpoint that shows a page of demo people instead
//! of a password form, and a token endpoint that exchanges a code (PKCE `S256` checked)
//! for an access token signed with the demo key. HTTPS on loopback with the demo's server
//! certificate.
//!
//! ```text
//! GET  /authorize   ?response_type=code&client_id&redirect_uri&state&code_challenge&code_challenge_method=S256
//! POST /authorize   the person picked: a one-time code, back to the redirect URI with `state`
//! POST /token       grant_type=authorization_code, code, redirect_uri, client_id, code_verifier
//! ```
//!
//! For demonstration only: it signs in anyone who clicks. A real deployment points
//! `[console]` at its own identity provider.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::EncodingKey;
use ring::rand::SecureRandom;
use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The console's client id at the demo issuer.
pub(crate) const CLIENT_ID: &str = "privgate-console";

/// How long a code may wait to be exchanged (RFC 6749 recommends at most 10 minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// How long console sign-ins' access tokens last.
const TOKEN_LIFETIME_S: i64 = 3600;

/// Largest form the endpoints read.
const MAX_FORM_BYTES: usize = 8 * 1024;

/// One demo person on the sign-in page.
pub(crate) struct DemoPerson {
    /// The button's id (`person-<id>`).
    pub(crate) id: &'static str,
    /// The token's `sub`.
    pub(crate) sub: &'static str,
    pub(crate) roles: &'static [&'static str],
    pub(crate) purposes: &'static [&'static str],
    /// What they do, on the button.
    pub(crate) what: &'static str,
}

/// The demo people one can sign in as.
pub(crate) const PEOPLE: [DemoPerson; 6] = [
    DemoPerson {
        id: "teller",
        sub: "tina.teller",
        roles: &["teller"],
        purposes: &["console", "customer_service"],
        what: "Teller at a branch desk",
    },
    DemoPerson {
        id: "consent_admin",
        sub: "cora.consent",
        roles: &["consent_admin"],
        purposes: &["console", "consent_administration"],
        what: "Consent administrator",
    },
    DemoPerson {
        id: "key_custodian",
        sub: "kai.keys",
        roles: &["key_custodian"],
        purposes: &["console", "key_management"],
        what: "Key custodian",
    },
    DemoPerson {
        id: "analyst",
        sub: "dan.data",
        roles: &["analyst"],
        purposes: &["console", "analytics"],
        what: "Data analyst",
    },
    DemoPerson {
        id: "security_officer",
        sub: "sam.security",
        roles: &["security_officer"],
        purposes: &["console"],
        what: "Security officer",
    },
    DemoPerson {
        id: "release_officer",
        sub: "rita.release",
        roles: &["release_officer"],
        purposes: &["console", "aggregate_reporting"],
        what: "Release officer",
    },
];

/// A code waiting to be exchanged.
struct Grant {
    person: usize,
    /// A step-up was asked (`acr_values` or `max_age`): the token says a second factor
    /// was used just now, at the first `acr` asked.
    step_up: Option<String>,
    challenge: String,
    redirect_uri: String,
    issued: Instant,
}

struct State {
    key: EncodingKey,
    redirect_uri: String,
    codes: Mutex<HashMap<String, Grant>>,
}

/// Serves the sign-in endpoints on `listener` (HTTPS with the demo's server certificate in
/// `dir/certs`) until the task is dropped; `redirect_uri` is the console's, the only one
/// accepted.
pub(crate) async fn serve(
    listener: TcpListener,
    dir: PathBuf,
    redirect_uri: String,
) -> anyhow::Result<()> {
    let dir = dir.as_path();
    let certs = crate::certs::read_certs(&dir.join("certs/server.pem"))?;
    let key = crate::certs::read_key(&dir.join("certs/server.key.pem"))?;
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let state = Arc::new(State {
        key: super::issuer::signing_key(dir)?,
        redirect_uri,
        codes: Mutex::new(HashMap::new()),
    });
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let form = match parts.method {
        Method::POST => match Limited::new(body, MAX_FORM_BYTES).collect().await {
            Ok(bytes) => parse(&bytes.to_bytes()),
            Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "form too large"),
        },
        _ => parse(parts.uri.query().unwrap_or("").as_bytes()),
    };
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/authorize") => match check_authorization(state, &form) {
            Ok(()) => people_page(&form),
            Err(why) => text(StatusCode::BAD_REQUEST, why),
        },
        (&Method::POST, "/authorize") => authorize(state, &form),
        (&Method::POST, "/token") => token(state, &form),
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// An authorization request for the console, as RFC 6749 and RFC 7636 shape it. A wrong
/// client or redirect URI is answered here, never redirected (RFC 6749 section 4.1.2.1).
fn check_authorization(state: &State, form: &HashMap<String, String>) -> Result<(), &'static str> {
    let is = |name: &str, value: &str| form.get(name).is_some_and(|v| v == value);
    if !is("client_id", CLIENT_ID) || !is("redirect_uri", &state.redirect_uri) {
        return Err("unknown client or redirect_uri");
    }
    if !is("response_type", "code") || !is("code_challenge_method", "S256") {
        return Err("only response_type=code with PKCE S256");
    }
    if form.get("code_challenge").is_none_or(|c| c.len() != 43)
        || form.get("state").is_none_or(String::is_empty)
    {
        return Err("code_challenge and state are required");
    }
    Ok(())
}

#[derive(askama::Template)]
#[template(path = "demo/people.html")]
struct PeoplePage {
    hidden: Vec<(&'static str, String)>,
    step_up: bool,
    acr: String,
    people: Vec<(&'static str, &'static str, String, &'static str)>,
}

/// The page of demo people, each a button posting the authorization request back.
fn people_page(form: &HashMap<String, String>) -> Response<Full<Bytes>> {
    use askama::Template;
    let names = [
        "client_id",
        "redirect_uri",
        "response_type",
        "state",
        "code_challenge",
        "code_challenge_method",
        "acr_values",
        "max_age",
    ];
    let step_up = step_up_asked(form);
    let page = PeoplePage {
        step_up: step_up.is_some(),
        acr: step_up.unwrap_or_default(),
        hidden: names
            .iter()
            .map(|n| (*n, form.get(*n).cloned().unwrap_or_default()))
            .collect(),
        people: PEOPLE
            .iter()
            .map(|p| (p.id, p.sub, p.roles.join(", "), p.what))
            .collect(),
    };
    let Ok(page) = page.render() else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "template");
    };
    let mut response = Response::new(Full::new(Bytes::from(page)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "text/html; charset=utf-8".parse().expect("static"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; form-action 'self' https:"
            .parse()
            .expect("static"),
    );
    response
}

/// The person picked: a one-time code for them, back to the console with `state`.
fn authorize(state: &State, form: &HashMap<String, String>) -> Response<Full<Bytes>> {
    if let Err(why) = check_authorization(state, form) {
        return text(StatusCode::BAD_REQUEST, why);
    }
    let Some(person) = PEOPLE
        .iter()
        .position(|p| form.get("person").is_some_and(|v| v == p.id))
    else {
        return text(StatusCode::BAD_REQUEST, "unknown person");
    };
    let Some(code) = random() else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    };
    let grant = Grant {
        person,
        step_up: step_up_asked(form),
        challenge: form["code_challenge"].clone(),
        redirect_uri: state.redirect_uri.clone(),
        issued: Instant::now(),
    };
    let mut codes = state.codes.lock().unwrap_or_else(|p| p.into_inner());
    codes.retain(|_, g| g.issued.elapsed() < CODE_LIFETIME);
    codes.insert(code.clone(), grant);
    let mut target = match url::Url::parse(&state.redirect_uri) {
        Ok(url) => url,
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "bad redirect_uri"),
    };
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &form["state"]);
    let mut response = text(StatusCode::SEE_OTHER, "");
    response.headers_mut().insert(
        header::LOCATION,
        target.as_str().parse().expect("a URL is a header value"),
    );
    response
}

/// Exchanges a code, used once, for an access token when the verifier matches.
fn token(state: &State, form: &HashMap<String, String>) -> Response<Full<Bytes>> {
    let invalid = || {
        json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_grant"}),
        )
    };
    if form
        .get("grant_type")
        .is_none_or(|g| g != "authorization_code")
        || form.get("client_id").is_none_or(|c| c != CLIENT_ID)
    {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_request"}),
        );
    }
    let (Some(code), Some(verifier)) = (form.get("code"), form.get("code_verifier")) else {
        return invalid();
    };
    let grant = state
        .codes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(code);
    let Some(grant) = grant else { return invalid() };
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let fresh = grant.issued.elapsed() < CODE_LIFETIME;
    if !fresh
        || challenge != grant.challenge
        || form.get("redirect_uri") != Some(&grant.redirect_uri)
    {
        return invalid();
    }
    let DemoPerson {
        sub,
        roles,
        purposes,
        ..
    } = &PEOPLE[grant.person];
    let now = crate::store::now_ms() / 1000;
    // Every sign-in here is fresh (`auth_time` now), which meets any `max_age`; a step-up
    // adds the one-time code the demo stands in for, and the `acr` asked.
    let amr = match grant.step_up {
        Some(_) => vec!["pwd", "otp"],
        None => vec!["pwd"],
    };
    let mut claims = serde_json::json!({
        "iss": super::issuer::ISSUER, "aud": super::issuer::AUDIENCE, "sub": sub,
        "client_id": CLIENT_ID, "iat": now, "exp": now + TOKEN_LIFETIME_S, "auth_time": now,
        "amr": amr, "jti": uuid::Uuid::new_v4().to_string(), "roles": roles,
        "purposes": purposes,
    });
    if let Some(acr) = grant.step_up.filter(|a| !a.is_empty()) {
        claims["acr"] = acr.into();
    }
    match super::issuer::sign(&state.key, &claims) {
        Ok(token) => json(
            StatusCode::OK,
            serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_S}),
        ),
        Err(_) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"error": "server_error"}),
        ),
    }
}

/// The step-up an authorization request asks for (RFC 9470 via OpenID Connect's
/// `acr_values` and `max_age`): `Some(first acr asked, or empty)`, `None` when neither.
fn step_up_asked(form: &HashMap<String, String>) -> Option<String> {
    let acr = form
        .get("acr_values")
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("");
    let max_age = form.get("max_age").is_some_and(|v| !v.is_empty());
    (!acr.is_empty() || max_age).then(|| acr.to_owned())
}

fn parse(bytes: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

fn random() -> Option<String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    response
}

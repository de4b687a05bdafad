//! Token identity end to end: the real gateway verifying JWT access tokens signed here with
//! keys generated here, its key set read from a file or fetched from a local HTTPS identity
//! provider double, real TLS clients (with and without client certificates) and a real
//! upstream that counts what reaches it.

use crate::harness::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod authentication;
pub(crate) mod mfa;
mod principals;
mod provider;
mod refusals;

const MISSING: &str = "Bearer realm=\"privgate\"";
const INVALID_TOKEN: &str = "Bearer realm=\"privgate\", error=\"invalid_token\"";
const INVALID_REQUEST: &str = "Bearer realm=\"privgate\", error=\"invalid_request\"";

/// A signing key and its public JWK.
pub(crate) struct SigningKey {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

fn rsa_key(kid: &str, bits: usize) -> (SigningKey, String) {
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).unwrap();
    let public = private.to_public_key();
    let jwk = json!({
        "kty": "RSA", "kid": kid, "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    });
    let der = private.to_pkcs1_der().unwrap();
    let public_pem = public.to_pkcs1_pem(Default::default()).unwrap();
    let key = SigningKey {
        alg: Algorithm::PS256,
        kid: kid.into(),
        key: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk,
    };
    (key, public_pem)
}

pub(crate) fn ec_key(kid: &str) -> SigningKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    SigningKey {
        alg: Algorithm::ES256,
        kid: kid.into(),
        key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        }),
    }
}

fn ed_key(kid: &str) -> SigningKey {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    SigningKey {
        alg: Algorithm::EdDSA,
        kid: kid.into(),
        key: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        }),
    }
}

pub(crate) fn jwks(keys: &[&SigningKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "client_id": "mobile-app",
        "exp": now() + 300, "iat": now(), "jti": "t-1",
    })
}

pub(crate) fn with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

pub(crate) fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = Some("at+jwt".into());
    encode(&header, claims, &key.key).unwrap()
}

/// The SHA-256 thumbprint of a workspace certificate, base64url as in `cnf.x5t#S256`.
fn x5t_s256(ws: &Workspace, cert: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(ws.path(cert)).unwrap();
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, der.as_ref()))
}

/// Routes and one issuer; `key_source` is the issuer's `jwks_file = ...` or `jwks_url` lines.
fn identity_config(ws: &Workspace, up: std::net::SocketAddr, key_source: &str) -> String {
    let secret = ws.write("hmac.secret", SECRET);
    let extra = format!(
        r#"
[[route]]
name = "api"
path_prefix = "/api"
upstream = "main"
authenticate = true

[[route]]
name = "bound"
path_prefix = "/bound"
upstream = "main"
require_bound_token = true

[[route]]
name = "stepup"
path_prefix = "/stepup"
upstream = "main"
[route.step_up]
acr_values = ["urn:privgate:mfa"]
amr_any = ["otp", "hwk", "mfa"]
max_age = "5m"

{issuer}"#,
        issuer = issuer_section(
            &secret,
            r#"["PS256", "ES256", "EdDSA", "HS256"]"#,
            &format!(
                "forward_claims = {{ sub = \"X-Privgate-Subject\", client_id = \"X-Privgate-Client\" }}\n{key_source}\n"
            ),
        ),
    );
    config(ws, up, &optional_mtls(ws), &extra)
}

pub(crate) fn request(url: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::get(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Full::default()).unwrap()
}

pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The status a GET with this bearer token gets.
async fn status_with(client: &HttpsClient, url: &str, token: &str) -> StatusCode {
    let auth = bearer(token);
    send(client, request(url, &[("authorization", &auth)]))
        .await
        .unwrap()
        .status
}

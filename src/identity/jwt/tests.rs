//! Token verification against keys generated here (ring), a JWKS file and a shared secret.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

const ISS: &str = "https://idp.test";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-hmac";

struct Keys {
    es256: EncodingKey,
    ed25519: EncodingKey,
    /// The EC public key as a JWK (what an attacker can read from the JWKS).
    ec_jwk: serde_json::Value,
    dir: tempfile::TempDir,
}

fn keys() -> Keys {
    let rng = SystemRandom::new();
    let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec_pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec.as_ref(), &rng).unwrap();
    let point = ec_pair.public_key().as_ref();
    let ec_jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed_pair = Ed25519KeyPair::from_pkcs8(ed.as_ref()).unwrap();
    let ed_jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "ed-1",
        "x": URL_SAFE_NO_PAD.encode(ed_pair.public_key().as_ref()),
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("jwks.json"),
        json!({ "keys": [ec_jwk, ed_jwk] }).to_string(),
    )
    .unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    Keys {
        es256: EncodingKey::from_ec_der(ec.as_ref()),
        ed25519: EncodingKey::from_ed_der(ed.as_ref()),
        ec_jwk,
        dir,
    }
}

fn issuers(keys: &Keys, algorithms: &[&str], typ: bool) -> Issuers {
    let config: IssuerConfig = toml::from_str(&format!(
        r#"
issuer = "{ISS}"
audiences = ["api://accounts"]
jwks_file = "{dir}/jwks.json"
algorithms = {algorithms:?}
require_typ_at_jwt = {typ}
{secret}
"#,
        dir = keys.dir.path().display(),
        secret = if algorithms.iter().any(|a| a.starts_with("HS")) {
            format!(
                "shared_secret_file = \"{}/secret\"",
                keys.dir.path().display()
            )
        } else {
            String::new()
        },
    ))
    .unwrap();
    Issuers::build(&[config]).unwrap()
}

fn now() -> i64 {
    crate::store::now_ms() / 1000
}

fn claims() -> serde_json::Value {
    json!({ "iss": ISS, "aud": "api://accounts", "sub": "alice", "exp": now() + 300 })
}

fn sign(
    alg: Algorithm,
    kid: Option<&str>,
    typ: Option<&str>,
    claims: &serde_json::Value,
    key: &EncodingKey,
) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(Into::into);
    header.typ = typ.map(Into::into);
    encode(&header, claims, key).unwrap()
}

fn with(changes: serde_json::Value) -> serde_json::Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

#[tokio::test]
async fn good_tokens_verify_with_each_algorithm() {
    let k = keys();
    let issuers = issuers(&k, &["ES256", "EdDSA"], true);
    for (alg, kid, key) in [
        (Algorithm::ES256, "ec-1", &k.es256),
        (Algorithm::EdDSA, "ed-1", &k.ed25519),
    ] {
        let token = sign(alg, Some(kid), Some("at+jwt"), &claims(), key);
        let verified = issuers
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(verified.caller.id, "alice");
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_with_a_log_safe_reason() {
    let k = keys();
    let strict = issuers(&k, &["ES256", "EdDSA"], true);
    let ec_public_as_secret = EncodingKey::from_secret(k.ec_jwk.to_string().as_bytes());
    let es =
        |c: &serde_json::Value| sign(Algorithm::ES256, Some("ec-1"), Some("at+jwt"), c, &k.es256);
    let good = es(&claims());
    let (head, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let tampered = format!(
        "{head}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(with(json!({ "sub": "mallory" })).to_string())
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "not-a-token".into(), "malformed token or header"),
        ("alg none", none, "malformed token or header"),
        ("tampered", tampered, "bad signature"),
        (
            "expired",
            es(&with(json!({ "exp": now() - 120 }))),
            "expired",
        ),
        ("within leeway", es(&with(json!({ "exp": now() - 10 }))), ""),
        (
            "nbf future",
            es(&with(json!({ "nbf": now() + 120 }))),
            "not yet valid (nbf)",
        ),
        (
            "wrong aud",
            es(&with(json!({ "aud": "api://other" }))),
            "audience not accepted",
        ),
        (
            "no aud",
            es(&with(json!({ "aud": null }))),
            "required claim missing",
        ),
        (
            "no exp",
            es(&with(json!({ "exp": null }))),
            "required claim missing",
        ),
        (
            "no sub",
            es(&with(json!({ "sub": null }))),
            "required claim missing",
        ),
        (
            "unknown iss",
            es(&with(json!({ "iss": "https://evil" }))),
            "unknown issuer",
        ),
        (
            "unknown kid",
            sign(
                Algorithm::ES256,
                Some("nope"),
                Some("at+jwt"),
                &claims(),
                &k.es256,
            ),
            "unknown signing key",
        ),
        (
            "wrong typ",
            sign(
                Algorithm::ES256,
                Some("ec-1"),
                Some("JWT"),
                &claims(),
                &k.es256,
            ),
            "typ is not at+jwt",
        ),
        (
            "alg not allowed",
            sign(
                Algorithm::HS256,
                Some("ec-1"),
                Some("at+jwt"),
                &claims(),
                &ec_public_as_secret,
            ),
            "algorithm not accepted",
        ),
        (
            "alg vs key type",
            sign(
                Algorithm::EdDSA,
                Some("ec-1"),
                Some("at+jwt"),
                &claims(),
                &k.ed25519,
            ),
            "algorithm does not fit the key",
        ),
    ];
    for (name, token, reason) in cases {
        match strict.verify(&token).await {
            Ok(_) => assert_eq!(reason, "", "{name} verified"),
            Err(e) => assert_eq!(e.to_string(), format!("invalid token: {reason}"), "{name}"),
        }
    }
}

#[tokio::test]
async fn hmac_verifies_only_with_the_configured_secret_never_a_public_key() {
    let k = keys();
    let issuers = issuers(&k, &["ES256", "HS256"], false);
    let confused = sign(
        Algorithm::HS256,
        Some("ec-1"),
        None,
        &claims(),
        &EncodingKey::from_secret(k.ec_jwk.to_string().as_bytes()),
    );
    assert_eq!(
        issuers.verify(&confused).await.err(),
        Some(IdentityError::InvalidToken("bad signature"))
    );
    let real = sign(
        Algorithm::HS256,
        None,
        None,
        &claims(),
        &EncodingKey::from_secret(SECRET),
    );
    assert!(issuers.verify(&real).await.is_ok());
}

/// Verification cost per algorithm (crypto runs in optimised dependencies even in the dev
/// profile). Run: `cargo test --lib identity::jwt::tests::verification_cost -- --ignored --nocapture`
#[tokio::test]
#[ignore = "measurement, not a check"]
async fn verification_cost() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let k = keys();
    let rsa = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let rsa_jwk = json!({
        "kty": "RSA", "kid": "ps-1", "e": URL_SAFE_NO_PAD.encode(rsa.e().to_bytes_be()),
        "n": URL_SAFE_NO_PAD.encode(rsa.n().to_bytes_be()),
    });
    let file = k.dir.path().join("jwks.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    doc["keys"].as_array_mut().unwrap().push(rsa_jwk);
    std::fs::write(&file, doc.to_string()).unwrap();
    let ps = EncodingKey::from_rsa_der(rsa.to_pkcs1_der().unwrap().as_bytes());
    let issuers = issuers(&k, &["PS256", "ES256", "EdDSA", "HS256"], true);
    let hs = EncodingKey::from_secret(SECRET);
    let cases = [
        ("PS256", Algorithm::PS256, Some("ps-1"), &ps),
        ("ES256", Algorithm::ES256, Some("ec-1"), &k.es256),
        ("EdDSA", Algorithm::EdDSA, Some("ed-1"), &k.ed25519),
        ("HS256", Algorithm::HS256, None, &hs),
    ];
    let rounds = 500;
    for (name, alg, kid, key) in cases {
        // Distinct tokens (by jti): every verification checks a signature.
        let tokens: Vec<String> = (0..rounds)
            .map(|i| sign(alg, kid, Some("at+jwt"), &with(json!({ "jti": i })), key))
            .collect();
        let started = std::time::Instant::now();
        for token in &tokens {
            issuers.verify(token).await.unwrap();
        }
        let first = started.elapsed() / rounds;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            issuers.verify(&tokens[0]).await.unwrap();
        }
        let repeat = started.elapsed() / rounds;
        println!("{name}: first use {first:?}, repeated {repeat:?} per token");
    }
}

/// A cache hit gives the identity the claims mapped to when the token was verified (the
/// mapping runs once), and a token whose claims map to no identity is refused on every
/// presentation: it is never remembered as verified.
#[tokio::test]
async fn the_cache_holds_mapped_identities_and_never_an_unmappable_token() {
    let k = keys();
    let issuers = issuers(&k, &["ES256"], true);
    let claims = with(json!({ "scope": "read write", "acr": "urn:mfa", "jti": "t-1" }));
    let token = sign(
        Algorithm::ES256,
        Some("ec-1"),
        Some("at+jwt"),
        &claims,
        &k.es256,
    );
    let first = issuers.verify(&token).await.unwrap();
    let again = issuers.verify(&token).await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "the second presentation is a cache hit"
    );
    assert_eq!(again.caller.id, "alice");
    assert_eq!(again.acr.as_deref(), Some("urn:mfa"));
    let facts = again.token.as_ref().unwrap();
    assert_eq!(facts.scopes, ["read", "write"]);
    assert_eq!(facts.jti.as_deref(), Some("t-1"));

    let unmappable = with(json!({ "cnf": { "jkt": "not-a-certificate-binding" } }));
    let token = sign(
        Algorithm::ES256,
        Some("ec-1"),
        Some("at+jwt"),
        &unmappable,
        &k.es256,
    );
    for _ in 0..2 {
        assert!(matches!(
            issuers.verify(&token).await,
            Err(IdentityError::InvalidToken(_))
        ));
    }
    assert!(issuers.cached(&token_digest(&token), now()).is_none());
}

//! The demo's stand-in identity provider: an ES256 key made once at demo setup, its public
//! JWKS written beside the config, and access tokens: a fraud analyst (password only, and
//! password plus one-time code) so the step-up challenge can be tried with curl, a data
//! analyst and a senior one (a larger budget tier), and for encrypted sums three contributing branches of three organisations and a
//! release officer.
//!
//! For demonstration only: a real deployment points `[[issuer]]` at its authorization
//! server and never has the signing key.

use crate::private_file::Existing;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::path::{Path, PathBuf};

/// The demo issuer's `iss`.
pub(crate) const ISSUER: &str = "https://demo-idp.privgate.invalid";
/// The audience its tokens name.
pub(crate) const AUDIENCE: &str = "privgate-demo";
const KID: &str = "demo-es256";

/// Files the demo issuer wrote.
pub(crate) struct DemoTokens {
    /// The public key set (`jwks_file`).
    pub jwks: PathBuf,
    /// A token whose user signed in with a password only.
    pub password_only: PathBuf,
    /// A token whose user also gave a one-time code just now.
    pub with_mfa: PathBuf,
    /// A token of a data analyst (role analyst, purpose analytics) for `privgate query`.
    pub analyst: PathBuf,
}

/// Contributors to the demo's encrypted sums: (token file stem, subject, organisation).
pub(crate) const BRANCHES: [(&str, &str, &str); 3] = [
    ("branch-north", "branch.north", "north-bank"),
    ("branch-south", "branch.south", "south-bank"),
    ("partner-east", "partner.east", "east-credit-union"),
];

/// The demo issuer's signing key (made by [`setup`]), for the sign-in endpoints.
pub(crate) fn signing_key(dir: &Path) -> anyhow::Result<EncodingKey> {
    let pkcs8 = zeroize::Zeroizing::new(std::fs::read(dir.join("keys/demo-issuer.pk8"))?);
    Ok(EncodingKey::from_ec_der(&pkcs8))
}

/// An RFC 9068 access token (`typ` `at+jwt`) with `claims`, signed with the demo key.
pub(crate) fn sign(key: &EncodingKey, claims: &serde_json::Value) -> anyhow::Result<String> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(KID.into());
    header.typ = Some("at+jwt".into());
    Ok(jsonwebtoken::encode(&header, claims, key)?)
}

/// Makes the signing key once (`keys/demo-issuer.pk8`), writes the JWKS and the tokens
/// (`tokens/*.jwt`) valid for `lifetime_s`.
pub(crate) fn setup(dir: &Path, now_s: i64, lifetime_s: i64) -> anyhow::Result<DemoTokens> {
    let rng = SystemRandom::new();
    let key_path = dir.join("keys/demo-issuer.pk8");
    crate::private_file::create_dir(&dir.join("keys"))?;
    if !key_path.exists() {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("cannot generate the demo issuer key"))?;
        crate::private_file::write(&key_path, pkcs8.as_ref(), Existing::Refuse)?;
    }
    let pkcs8 = zeroize::Zeroizing::new(std::fs::read(&key_path)?);
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
        .map_err(|_| anyhow::anyhow!("{}: not an ES256 key", key_path.display()))?;
    let point = pair.public_key().as_ref();
    let jwks = serde_json::json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": KID, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    }]});
    let tokens = DemoTokens {
        jwks: dir.join("demo-issuer-jwks.json"),
        password_only: dir.join("tokens/password-only.jwt"),
        with_mfa: dir.join("tokens/with-mfa.jwt"),
        analyst: dir.join("tokens/analyst.jwt"),
    };
    std::fs::write(&tokens.jwks, jwks.to_string())?;
    crate::private_file::create_dir(&dir.join("tokens"))?;
    let key = EncodingKey::from_ec_der(&pkcs8);
    let reporting = serde_json::json!(["aggregate_reporting"]);
    let mut people = vec![
        (
            &tokens.password_only,
            serde_json::json!(["pwd"]),
            "ana.analyst",
            &["fraud_analyst"][..],
            serde_json::json!(["fraud_investigation"]),
        ),
        (
            &tokens.with_mfa,
            serde_json::json!(["pwd", "otp", "mfa"]),
            "ana.analyst",
            &["fraud_analyst"],
            serde_json::json!(["fraud_investigation"]),
        ),
        (
            &tokens.analyst,
            serde_json::json!(["pwd"]),
            "dan.data",
            &["analyst"],
            serde_json::json!(["analytics"]),
        ),
    ];
    let senior = dir.join("tokens/senior-analyst.jwt");
    people.push((
        &senior,
        serde_json::json!(["pwd"]),
        "sam.senior",
        &["analyst", "senior_analyst"],
        serde_json::json!(["analytics"]),
    ));
    let reporter = dir.join("tokens/reporting-analyst.jwt");
    people.push((
        &reporter,
        serde_json::json!(["pwd"]),
        "rory.reporting",
        &["analyst"],
        reporting.clone(),
    ));
    let officer = dir.join("tokens/release-officer.jwt");
    people.push((
        &officer,
        serde_json::json!(["pwd"]),
        "rita.release",
        &["release_officer"],
        reporting.clone(),
    ));
    // The payments desk: payments above 1,000.00 need a second factor in the last 5
    // minutes (policies/payments.cedar), so one sign-in with a password only, one with MFA.
    let payments = dir.join("tokens/payments.jwt");
    let payments_mfa = dir.join("tokens/payments-mfa.jwt");
    let paying = serde_json::json!(["payments"]);
    for (path, amr) in [
        (&payments, serde_json::json!(["pwd"])),
        (&payments_mfa, serde_json::json!(["pwd", "otp", "mfa"])),
    ] {
        people.push((path, amr, "pat.payments", &["payments"], paying.clone()));
    }
    let branch_files: Vec<PathBuf> = BRANCHES
        .iter()
        .map(|(stem, _, _)| dir.join(format!("tokens/{stem}.jwt")))
        .collect();
    for (path, (_, sub, _)) in branch_files.iter().zip(BRANCHES) {
        people.push((
            path,
            serde_json::json!(["pwd"]),
            sub,
            &["contributor"],
            reporting.clone(),
        ));
    }
    for (path, amr, sub, roles, purposes) in people {
        let mut claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "client_id": "demo-console",
            "iat": now_s, "exp": now_s + lifetime_s, "auth_time": now_s, "amr": amr,
            "jti": uuid::Uuid::new_v4().to_string(), "roles": roles, "purposes": purposes,
        });
        // Contributors count toward a release threshold by organisation.
        if let Some((_, _, org)) = BRANCHES.iter().find(|(_, branch, _)| *branch == sub) {
            claims["org"] = (*org).into();
        }
        let token = sign(&key, &claims)?;
        // A bearer token is a credential: owner-only, like every key the project writes.
        crate::private_file::write(path, token.as_bytes(), Existing::Replace)?;
    }
    Ok(tokens)
}

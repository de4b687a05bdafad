//! Bad input refused with the right challenge before the upstream; good tokens forwarded.

use super::*;

/// What a refusal must look like: status, error code, exact challenge (None: no header).
type Refusal = (StatusCode, &'static str, Option<&'static str>);

#[tokio::test]
async fn bad_tokens_are_refused_with_the_right_challenge_and_never_reach_the_upstream() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let (ps, rsa_public_pem) = rsa_key("ps-1", 2048);
    let (weak, _) = rsa_key("weak-1024", 1024);
    let es = ec_key("es-1");
    let other_es = ec_key("es-1");
    let jwks_path = ws.write("jwks.json", &jwks(&[&ps, &weak, &es]));
    let source = format!("jwks_file = \"{}\"", jwks_path.display());
    let path = ws.write("privgate.toml", &identity_config(&ws, up.addr, &source));
    let gw = Gateway::start(&path);
    gw.wait_for_log("JWKS key skipped");
    let anonymous = https_client(&ws, None, false);
    let client_b = https_client(&ws, Some("certs/client-b"), false);
    let api = gw.url("/api/echo");

    let good = sign(&es, &claims());
    let (head, rest) = good.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let tampered = format!(
        "{head}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(with(json!({ "sub": "mallory" })).to_string())
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let confused = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("ps-1".into());
        header.typ = Some("at+jwt".into());
        let key = EncodingKey::from_secret(rsa_public_pem.as_bytes());
        encode(&header, &claims(), &key).unwrap()
    };
    let unknown_kid = sign(&ec_key("es-unpublished"), &claims());
    let bound_to_a = sign(
        &es,
        &with(json!({ "cnf": { "x5t#S256": x5t_s256(&ws, "certs/client-a.pem") } })),
    );

    let bad = StatusCode::UNAUTHORIZED;
    let invalid: Refusal = (bad, "invalid_token", Some(INVALID_TOKEN));
    let invalid_request: Refusal = (
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some(INVALID_REQUEST),
    );
    let q = |t: &str| gw.url(&format!("/api/echo?access_token={t}"));
    // (case, client, url, Authorization value, expected)
    let cases: Vec<(&str, &HttpsClient, String, Option<String>, Refusal)> = vec![
        (
            "missing token",
            &anonymous,
            api.clone(),
            None,
            (bad, "authentication_required", Some(MISSING)),
        ),
        (
            "malformed token",
            &anonymous,
            api.clone(),
            Some(bearer("not.a.jwt")),
            invalid,
        ),
        (
            "malformed credential",
            &anonymous,
            api.clone(),
            Some("Bearer a b".into()),
            invalid,
        ),
        (
            "alg none",
            &anonymous,
            api.clone(),
            Some(bearer(&none)),
            invalid,
        ),
        (
            "HS256 with the RSA public key",
            &anonymous,
            api.clone(),
            Some(bearer(&confused)),
            invalid,
        ),
        (
            "unknown kid after refetch",
            &anonymous,
            api.clone(),
            Some(bearer(&unknown_kid)),
            invalid,
        ),
        (
            "same kid, other key",
            &anonymous,
            api.clone(),
            Some(bearer(&sign(&other_es, &claims()))),
            invalid,
        ),
        (
            "RSA-1024 key",
            &anonymous,
            api.clone(),
            Some(bearer(&sign(&weak, &claims()))),
            invalid,
        ),
        (
            "expired",
            &anonymous,
            api.clone(),
            Some(bearer(&sign(&ps, &with(json!({ "exp": now() - 120 }))))),
            invalid,
        ),
        (
            "not yet valid",
            &anonymous,
            api.clone(),
            Some(bearer(&sign(&ps, &with(json!({ "nbf": now() + 120 }))))),
            invalid,
        ),
        (
            "wrong iss",
            &anonymous,
            api.clone(),
            Some(bearer(&sign(
                &es,
                &with(json!({ "iss": "https://evil.test" })),
            ))),
            invalid,
        ),
        (
            "wrong aud",
            &anonymous,
            api.clone(),
            Some(bearer(&sign(&es, &with(json!({ "aud": "api://other" }))))),
            invalid,
        ),
        (
            "tampered payload",
            &anonymous,
            api.clone(),
            Some(bearer(&tampered)),
            invalid,
        ),
        (
            "token in query",
            &anonymous,
            q(&good),
            None,
            invalid_request,
        ),
        (
            "token in two places",
            &anonymous,
            q(&good),
            Some(bearer(&good)),
            invalid_request,
        ),
        (
            "bound token, other certificate",
            &client_b,
            api.clone(),
            Some(bearer(&bound_to_a)),
            invalid,
        ),
        (
            "bound token, no certificate",
            &anonymous,
            api.clone(),
            Some(bearer(&bound_to_a)),
            invalid,
        ),
        (
            "unbound token on bound route",
            &anonymous,
            gw.url("/bound/echo"),
            Some(bearer(&good)),
            invalid,
        ),
    ];
    for (name, client, url, authorization, (status, code, challenge)) in cases {
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let reply = send(client, request(&url, &headers)).await.unwrap();
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (status, code),
            "{name}"
        );
        assert_eq!(
            reply
                .headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            challenge,
            "{name}"
        );
        assert_eq!(up.requests(), 0, "{name} reached the upstream");
    }
    // The token never appears in the gateway's logs.
    let logs = format!("{:?}", gw.logs.lock().unwrap());
    for secret_part in [signature, good.as_str()] {
        assert!(!logs.contains(secret_part), "token logged");
    }
}

#[tokio::test]
async fn good_tokens_reach_the_upstream_with_claim_headers_and_no_spoofed_copies() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let (ps, _) = rsa_key("ps-1", 2048);
    let (es, ed) = (ec_key("es-1"), ed_key("ed-1"));
    let jwks_path = ws.write("jwks.json", &jwks(&[&ps, &es, &ed]));
    let source = format!("jwks_file = \"{}\"", jwks_path.display());
    let path = ws.write("privgate.toml", &identity_config(&ws, up.addr, &source));
    let gw = Gateway::start(&path);
    let client_a = https_client(&ws, Some("certs/client-a"), false);
    let hs = SigningKey {
        alg: Algorithm::HS256,
        kid: "hs".into(),
        key: EncodingKey::from_secret(SECRET.as_bytes()),
        jwk: Value::Null,
    };

    for key in [&ps, &es, &ed, &hs] {
        let token = sign(key, &claims());
        let headers = [
            ("authorization", bearer(&token)),
            ("x-privgate-subject", "admin".to_owned()),
            ("X-Privgate-Client", "spoofed".to_owned()),
        ];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = send(&client_a, request(&gw.url("/api/echo"), &headers))
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{:?}", key.alg);
        let seen = &reply.json()["headers"];
        assert_eq!(seen["x-privgate-subject"], "alice", "{:?}", key.alg);
        assert_eq!(seen["x-privgate-client"], "mobile-app");
        assert!(
            seen.get("authorization").is_none(),
            "token forwarded upstream"
        );
    }

    // A token bound to this connection's certificate passes a bound-token route.
    let bound = sign(
        &es,
        &with(json!({ "cnf": { "x5t#S256": x5t_s256(&ws, "certs/client-a.pem") } })),
    );
    let auth = bearer(&bound);
    let reply = send(
        &client_a,
        request(&gw.url("/bound/echo"), &[("authorization", &auth)]),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK);

    // Claim headers are internal everywhere: even anonymous routes drop spoofed copies.
    let reply = send(
        &client_a,
        request(
            &gw.url("/echo"),
            &[("x-privgate-subject", "admin"), ("x-privgate-client", "x")],
        ),
    )
    .await
    .unwrap();
    let seen = &reply.json()["headers"];
    assert!(seen.get("x-privgate-subject").is_none() && seen.get("x-privgate-client").is_none());
}

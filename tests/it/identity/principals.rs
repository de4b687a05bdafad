//! Principal namespaces: a pinned `[[client]]`, an API key's service, a client-credentials
//! token and a user token that all carry the id `fintech-app` are four principals, in the
//! rate limiter's buckets and in the audit trail alike.

use super::*;

#[tokio::test]
async fn one_id_through_four_credentials_is_four_principals() {
    let up = Upstream::start().await;
    let ws = Workspace::new();
    let es = ec_key("es-1");
    let jwks_path = ws.write("jwks.json", &jwks(&[&es]));
    let source = format!("jwks_file = \"{}\"", jwks_path.display());
    let text = format!(
        r#"{base}
[[route]]
name = "metered"
path_prefix = "/metered"
upstream = "main"
authenticate = true
[route.rate_limit]
per_principal = "1/h"
burst = 1

[[client]]
id = "fintech-app"
certificate_sha256 = "{pinned}"
roles = ["partner"]
{audit}"#,
        base = identity_config(&ws, up.addr, &source),
        pinned = thumbprint(&ws, "certs/client-a.pem"),
        audit = crate::audit::audit_section(&ws),
    );
    let path = ws.write("privgate.toml", &text);
    let created = privgate([
        "apikey",
        "create",
        "--service",
        "fintech-app",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert!(created.ok, "{}", created.all());
    let key = created
        .all()
        .lines()
        .find(|l| l.starts_with("pgk_"))
        .unwrap()
        .trim()
        .to_owned();
    let gw = Gateway::start(&path);
    let plain = https_client(&ws, None, false);
    let pinned = https_client(&ws, Some("certs/client-a"), false);
    let api_key = format!("ApiKey {key}");
    let client_credentials = bearer(&sign(
        &es,
        &with(json!({ "sub": "fintech-app", "client_id": "fintech-app", "jti": "t-cc" })),
    ));
    let user = bearer(&sign(
        &es,
        &with(json!({ "sub": "fintech-app", "client_id": "mobile-app", "jti": "t-u" })),
    ));
    let url = gw.url("/metered/x");
    let callers: [(&HttpsClient, Option<&str>); 4] = [
        (&pinned, None),
        (&plain, Some(api_key.as_str())),
        (&plain, Some(client_credentials.as_str())),
        (&plain, Some(user.as_str())),
    ];
    // Each has a bucket of its own: the first request of each passes, the second does not.
    for round in [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
        for (i, (client, auth)) in callers.iter().enumerate() {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let reply = send(client, request(&url, &headers)).await.unwrap();
            assert_eq!(reply.status, round, "caller {i}: {:?}", reply.body);
        }
    }
    assert_eq!(up.requests(), 4);
    crate::audit::stop(gw).await;
    let chain = std::fs::read_to_string(ws.path("audit/gw-test.jsonl")).unwrap();
    let principals: Vec<String> = chain
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["principal"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected = [
        "Service:client:fintech-app",
        "Service:apikey:fintech-app",
        "Service:oauth:fintech-app",
        "User:fintech-app",
    ];
    assert_eq!(principals, [expected, expected].concat());
}

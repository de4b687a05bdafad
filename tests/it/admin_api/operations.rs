//! Approval-gated operations through the API and the CLI: two distinct approvers, exactly
//! one execution, expiry, and no bypass through the direct command.

use super::*;
use crate::store::postgres_store;

#[tokio::test]
async fn a_shred_needs_two_distinct_approvers_and_executes_once() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let path = admin_config(&ws, up.addr, 2);
    // The direct command cannot bypass the two-person rule.
    let direct = cli(&path, &["keys", "shred", "--subject", "9"]);
    assert!(
        !direct.ok && direct.stderr.contains("privgate admin request"),
        "{}",
        direct.all()
    );

    let gw = Gateway::start(&path);
    let admin = https_client(&ws, None, false);
    let operations = gw.url("/admin/v1/operations");
    let shred = json!({ "kind": "keys:shred", "subject": "9" });
    // A consent administrator may not ask for it.
    let reply = call(
        &admin,
        "POST",
        &operations,
        Some(&carol()),
        Some(shred.clone()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // A custodian without a fresh second factor is asked to step up (RFC 9470).
    let no_otp = token("kim", &["key_custodian"], &["key_management"]);
    let reply = call(
        &admin,
        "POST",
        &operations,
        Some(&no_otp),
        Some(shred.clone()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_user_authentication"));
    // A subject id in another spelling than the routes' (integer) is no customer's: a shred
    // of it would reach nobody, so it is refused before anything is recorded.
    for other in ["09", "+9", " 9", "\u{ff19}", "cust-9"] {
        let shred = json!({ "kind": "keys:shred", "subject": other });
        let reply = call(
            &admin,
            "POST",
            &operations,
            Some(&custodian("kim")),
            Some(shred),
        )
        .await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{other:?}"
        );
    }
    let reply = call(
        &admin,
        "POST",
        &operations,
        Some(&custodian("kim")),
        Some(shred),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let op = reply.json();
    assert_eq!(
        (op["status"].as_str(), op["approvers"].clone()),
        (Some("pending"), json!(["User:kim"]))
    );
    let id = op["id"].as_str().unwrap().to_owned();
    let approve = format!("{operations}/{id}/approve");
    // Approvers find pending requests; a listing shows only what the caller may act on.
    let pending = format!("{operations}?status=pending");
    let listed = call(&admin, "GET", &pending, Some(&custodian("lee")), None).await;
    assert_eq!(listed.json()["operations"][0]["id"], id.as_str());
    let listed = call(&admin, "GET", &pending, Some(&carol()), None).await;
    assert_eq!(listed.json()["operations"], json!([]));
    // The requester approving again does not count.
    let reply = call(&admin, "POST", &approve, Some(&custodian("kim")), None).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::CONFLICT, "already_approved")
    );
    let reply = call(&admin, "POST", &approve, Some(&carol()), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let shown = call(
        &admin,
        "GET",
        &format!("{operations}/{id}"),
        Some(&custodian("kim")),
        None,
    )
    .await;
    assert_eq!(shown.json()["status"], "pending");

    // Four custodians approve at once: it executes exactly once.
    let approvals: Vec<_> = ["lee", "max", "ned", "ola"]
        .into_iter()
        .map(|who| {
            let (admin, approve) = (admin.clone(), approve.clone());
            tokio::spawn(async move {
                call(&admin, "POST", &approve, Some(&custodian(who)), None).await
            })
        })
        .collect();
    let mut executors = std::collections::BTreeSet::new();
    for approval in approvals {
        let reply = approval.await.unwrap();
        match reply.status {
            StatusCode::OK => {
                executors.insert(reply.json()["executed_by"].as_str().unwrap().to_owned());
            }
            _ => assert_eq!(reply.error_code(), "operation_not_pending"),
        }
    }
    assert_eq!(executors.len(), 1, "{executors:?}");
    let shown = call(
        &admin,
        "GET",
        &format!("{operations}/{id}"),
        Some(&custodian("kim")),
        None,
    )
    .await;
    let op = shown.json();
    assert_eq!(
        (op["status"].as_str(), op["outcome"].as_str()),
        (
            Some("executed"),
            Some(format!("done: {}", privgate::keys::SHRED_DONE).as_str())
        )
    );
    gw.wait_for_log("admin operation executed");
    let logs = gw.logs.clone();
    stop(gw).await;
    let executed = logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l["message"] == "admin operation executed")
        .count();
    assert_eq!(executed, 1);
    let all = records(&ws);
    assert!(all.iter().any(|r| r["action"] == "keys:shred"
        && r["operation_id"] == id.as_str()
        && r["principal"] == "User:kim"));
}

#[tokio::test]
async fn expired_requests_are_refused_and_cli_and_api_share_requests() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let path = admin_config(&ws, up.addr, 2);
    // A CLI whose requests expire after one second, on the same store.
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "approvals_required = 2",
        "approvals_required = 2\napproval_ttl = \"1s\"",
    );
    let short = ws.write("short.toml", &text);
    let run = cli(&short, &["admin", "request", "shred", "--subject", "07"]);
    assert!(
        !run.ok && run.stderr.contains("as the routes spell subject ids"),
        "{}",
        run.all()
    );
    let run = cli(&short, &["admin", "request", "shred", "--subject", "7"]);
    assert!(run.ok, "{}", run.all());
    let expiring: Value = serde_json::from_str(&run.stdout).unwrap();
    let run = cli(
        &path,
        &["admin", "request", "retire", "pan", "--min-version", "2"],
    );
    assert!(run.ok, "{}", run.all());
    let retire: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(retire["approvers"][0]
        .as_str()
        .unwrap()
        .starts_with("host-uid:"));
    // The same account approving from the CLI again does not count.
    let run = cli(&path, &["admin", "approve", retire["id"].as_str().unwrap()]);
    assert!(
        !run.ok && run.stderr.contains("already approved"),
        "{}",
        run.all()
    );

    let gw = Gateway::start(&path);
    let admin = https_client(&ws, None, false);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let url = gw.url(&format!(
        "/admin/v1/operations/{}/approve",
        expiring["id"].as_str().unwrap()
    ));
    let reply = call(&admin, "POST", &url, Some(&custodian("lee")), None).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::CONFLICT, "operation_expired")
    );
    let run = cli(&path, &["admin", "list"]);
    assert!(
        run.ok && run.stdout.contains("expired") && run.stdout.contains("pending"),
        "{}",
        run.all()
    );
    drop(gw);
}

#[tokio::test]
async fn two_replicas_sharing_postgresql_execute_a_shred_once() {
    let Some((_store, url, _guard)) = postgres_store().await else {
        return;
    };
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let store = postgres_store_section(&ws, &url);
    let path = admin_config_on(&ws, up.addr, 2, &store);
    // The second replica: the same store and keyring, its own audit chain.
    let text = std::fs::read_to_string(&path).unwrap();
    let second = ws.write(
        "second.toml",
        &text.replace("replica = \"gw\"", "replica = \"gw2\""),
    );
    let (one, two) = (Gateway::start(&path), Gateway::start(&second));
    let admin = https_client(&ws, None, false);
    let shred = json!({ "kind": "keys:shred", "subject": "3" });
    let reply = call(
        &admin,
        "POST",
        &one.url("/admin/v1/operations"),
        Some(&custodian("kim")),
        Some(shred),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    // Approvers on both replicas at once.
    let approvals: Vec<_> = [("lee", &one), ("max", &two), ("ned", &one), ("ola", &two)]
        .into_iter()
        .map(|(who, gw)| {
            let admin = admin.clone();
            let approve = gw.url(&format!("/admin/v1/operations/{id}/approve"));
            tokio::spawn(async move {
                call(&admin, "POST", &approve, Some(&custodian(who)), None).await
            })
        })
        .collect();
    let mut executors = std::collections::BTreeSet::new();
    for approval in approvals {
        let reply = approval.await.unwrap();
        match reply.status {
            StatusCode::OK => {
                executors.insert(reply.json()["executed_by"].as_str().unwrap().to_owned());
            }
            _ => assert_eq!(reply.error_code(), "operation_not_pending"),
        }
    }
    assert_eq!(executors.len(), 1, "{executors:?}");
    let shown = call(
        &admin,
        "GET",
        &two.url(&format!("/admin/v1/operations/{id}")),
        Some(&custodian("kim")),
        None,
    )
    .await;
    assert_eq!(
        shown.json()["outcome"],
        format!("done: {}", privgate::keys::SHRED_DONE)
    );
    // The log lines arrive asynchronously: wait for one, then make sure there is no other.
    let mut executed = 0;
    for _ in 0..100 {
        executed = executions(&[&one, &two]);
        if executed > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!((executed, executions(&[&one, &two])), (1, 1));
}

/// How many executions the gateways logged.
fn executions(gateways: &[&Gateway]) -> usize {
    gateways
        .iter()
        .map(|gw| {
            gw.logs
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l["message"] == "admin operation executed")
                .count()
        })
        .sum()
}

/// A second consent administrator: two approvals must come from two people.
fn cole() -> String {
    token("cole", &["consent_admin"], &["consent_administration"])
}

#[tokio::test]
async fn a_consent_revocation_waits_for_a_second_consent_admin_where_configured() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let path = admin_config(&ws, up.addr, 1);
    let text = std::fs::read_to_string(&path).unwrap();
    let four_eyes = text.replacen(
        "[admin]\n",
        "[admin]\nconsent_revocation_approvals = 2\n",
        1,
    );
    assert_ne!(text, four_eyes);
    std::fs::write(&path, four_eyes).unwrap();
    let gw = Gateway::start(&path);
    let partner = https_client(&ws, Some("certs/client-a"), false);
    let admin = https_client(&ws, None, false);
    let account = gw.url("/accounts/customers/42/balances");
    let consents = gw.url("/admin/v1/consents");
    let operations = gw.url("/admin/v1/operations");
    let grant = json!({
        "subject": "42", "grantee": "fintech", "purposes": ["account_information"],
        "permissions": ["ReadAccountsBasic"],
    });
    let reply = call(&admin, "POST", &consents, Some(&carol()), Some(grant)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(get(&partner, &account).await.status, StatusCode::OK);

    // The direct command is refused; nothing is revoked.
    let direct = cli(&path, &["consent", "revoke", &id]);
    assert!(
        !direct.ok && direct.stderr.contains("needs 2 distinct approvals"),
        "{}",
        direct.all()
    );
    // Through the API: recorded, waiting (202), and the consent still holds.
    let revoke = format!("{consents}/{id}/revoke");
    let reply = call(&admin, "POST", &revoke, Some(&carol()), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["outcome"], "awaiting_approval");
    assert_eq!(answer["status"], "Authorised");
    assert_eq!(answer["operation"]["operation"]["kind"], "consent:revoke");
    assert_eq!(answer["operation"]["operation"]["subject"], "42");
    let op = answer["operation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(get(&partner, &account).await.status, StatusCode::OK);

    // The requester cannot approve twice; people without consent:revoke cannot at all,
    // and do not see it in their listing.
    let approve = format!("{operations}/{op}/approve");
    let reply = call(&admin, "POST", &approve, Some(&carol()), None).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::CONFLICT, "already_approved")
    );
    for outsider in [
        custodian("kim"),
        token("tina", &["teller"], &["customer_service"]),
    ] {
        let reply = call(&admin, "POST", &approve, Some(&outsider), None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        let listed = call(&admin, "GET", &operations, Some(&outsider), None).await;
        assert!(
            !String::from_utf8_lossy(&listed.body).contains(&op),
            "an outsider sees the revocation: {:?}",
            listed.body
        );
    }
    assert_eq!(get(&partner, &account).await.status, StatusCode::OK);

    // A request naming another subject than the record's is "not found": policy decides
    // on the subject named, so the record's own subject is the only one accepted.
    let elsewhere = json!({ "kind": "consent:revoke", "consent": id, "subject": "43" });
    let reply = call(&admin, "POST", &operations, Some(&cole()), Some(elsewhere)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);

    // The second consent administrator's approval executes it: the next call is refused.
    let reply = call(&admin, "POST", &approve, Some(&cole()), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json()["status"], "executed");
    assert_eq!(reply.json()["outcome"], "done: consent revoked");
    assert_eq!(
        get(&partner, &account).await.error_code(),
        "consent_required"
    );
    let shown = call(
        &admin,
        "GET",
        &format!("{consents}/{id}"),
        Some(&cole()),
        None,
    )
    .await;
    assert_eq!(shown.json()["status"], "Revoked");
    stop(gw).await;

    // Both people's decisions are in the trail, on the consent's operation.
    let all = records(&ws);
    let on_op: Vec<&Value> = all
        .iter()
        .filter(|r| r["operation_id"] == op.as_str())
        .collect();
    for who in ["User:carol", "User:cole"] {
        assert!(
            on_op
                .iter()
                .any(|r| r["principal"] == who && r["decision"] == "allow"),
            "{who}: {on_op:#?}"
        );
    }
}

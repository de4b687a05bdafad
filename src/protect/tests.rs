//! The executor on the shipped field rules, with an in-memory key source: what goes
//! upstream, and what each view reveals. (The gateway tests run the same with the keyring.)

use super::rules::BodySide;
use super::*;
use crate::config::{BodyMode, Direction, RouteConfig};
use crate::decision::{Decision, FieldView};
use crate::keys::{DataKey, KeyKind};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// Keys made on first use, deterministic per name and version; subjects can be shredded.
#[derive(Default)]
struct MemoryKeys {
    shredded: Mutex<HashSet<String>>,
    current_version: u32,
}

fn key(name: &str, version: u32, kind: KeyKind) -> Arc<DataKey> {
    let seed = name
        .bytes()
        .fold(version as u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    let secret = (0..kind.secret_len()).map(|i| seed ^ i as u8).collect();
    Arc::new(DataKey::new(name, version, kind, Zeroizing::new(secret)).unwrap())
}

fn kind_of(name: &str) -> KeyKind {
    match name {
        "iban" | "pan-token" | "email-token" | "dob-token" => KeyKind::Siv,
        "pan" => KeyKind::Ff1,
        _ => KeyKind::Aead,
    }
}

impl KeySource for MemoryKeys {
    async fn current(&self, name: &str, kind: KeyKind) -> Result<Arc<DataKey>, KeyUnavailable> {
        Ok(key(name, self.current_version.max(1), kind))
    }
    async fn version(&self, name: &str, version: u32) -> Result<Arc<DataKey>, KeyUnavailable> {
        Ok(key(name, version, kind_of(name)))
    }
    async fn subject_key(
        &self,
        subject: &str,
        kind: KeyKind,
    ) -> Result<Arc<DataKey>, KeyUnavailable> {
        if self.shredded.lock().unwrap().contains(subject) {
            return Err(KeyUnavailable::Shredded);
        }
        Ok(key(&format!("subject.{subject}"), 1, kind))
    }
}

fn route(name: &str, action: &str) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        host: None,
        path_prefix: "/customers".into(),
        methods: None,
        upstream: "u".into(),
        strip_prefix: false,
        body: BodyMode::Buffered,
        action: Some(action.into()),
        subject: None,
        amount: None,
        direction: Direction::Inbound,
        authenticate: false,
        require_bound_token: false,
        step_up: None,
        rate_limit: None,
        serve: None,
    }
}

fn shipped() -> Protection {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    Protection::load(
        &dir,
        &[
            route("customers", "customers:read"),
            route("customer_create", "customers:create"),
        ],
    )
    .unwrap()
}

fn decision(views: &[(&str, FieldView)]) -> Decision {
    Decision {
        refusal: None,
        policy_ids: vec![],
        views: views.iter().map(|(c, v)| (c.to_string(), *v)).collect(),
        subject_views: BTreeMap::new(),
        view_policy_ids: BTreeMap::new(),
        policy_set_hash: String::new(),
    }
}

const CUSTOMER: &str = r#"{"id":"c-9", "name":"Jane Example","email":"jane@example.com",
 "card_number":"4000001234567899","iban":"GB82WEST12345698765432","segment":"retail",
 "rate": 1.10, "date_of_birth": "1987-06-05"}"#;

async fn stored(p: &Protection, keys: &MemoryKeys) -> String {
    let out = p
        .protect(
            "customer_create",
            BodySide::Request,
            CUSTOMER.as_bytes(),
            None,
            keys,
        )
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(out).unwrap()
}

async fn shown(
    p: &Protection,
    keys: &MemoryKeys,
    body: &str,
    d: &Decision,
) -> Result<Value, ProtectError> {
    let doc = document::Document::parse(body.as_bytes()).unwrap();
    let located = p.locate("customers", BodySide::Response, &doc);
    let subject = Some("c-9");
    Ok(serde_json::from_str(
        &p.reveal("customers", &doc, &located, subject, d, keys)
            .await?,
    )
    .unwrap())
}

#[tokio::test]
async fn protects_bound_members_and_reveals_each_view() {
    let p = shipped();
    let keys = MemoryKeys::default();
    let body = stored(&p, &keys).await;
    let raw: Value = serde_json::from_str(&body).unwrap();
    assert!(
        raw["name"]
            .as_str()
            .unwrap()
            .starts_with("pgv1.subject.c-9.1."),
        "{raw}"
    );
    assert!(raw["iban"].as_str().unwrap().starts_with("pgt1.iban.1."));
    assert!(
        body.contains("\"rate\": 1.10"),
        "untouched bytes kept: {body}"
    );
    assert_eq!(raw["segment"], "retail");

    use FieldView::*;
    // (views, name, email, card_number, iban)
    let cases = [
        (
            Clear,
            json!("Jane Example"),
            json!("jane@example.com"),
            json!("4000001234567899"),
        ),
        (
            Masked,
            json!("J*** *******"),
            json!("j***@*******.com"),
            json!("************7899"),
        ),
    ];
    for (view, name, email, pan) in cases {
        let d = decision(&[
            ("name", view),
            ("email", view),
            ("pan", view),
            ("iban", view),
            ("dob", view),
        ]);
        let v = shown(&p, &keys, &body, &d).await.unwrap();
        assert_eq!(
            (&v["name"], &v["email"], &v["card_number"]),
            (&name, &email, &pan),
            "{view:?}"
        );
    }
    // Token view: equal values, equal tokens; removed view: no member.
    let d = decision(&[("email", Token), ("name", Removed)]);
    let v = shown(&p, &keys, &body, &d).await.unwrap();
    assert!(v["email"]
        .as_str()
        .unwrap()
        .starts_with("pgt1.email-token.1."));
    assert!(
        v.get("name").is_none() && v.get("card_number").is_none(),
        "{v}"
    );
    let again = shown(&p, &keys, &stored(&p, &keys).await, &d)
        .await
        .unwrap();
    assert_eq!(v["email"], again["email"]);
}

#[tokio::test]
async fn per_subject_views_and_shredded_subjects() {
    let p = shipped();
    let keys = MemoryKeys::default();
    // A page holding one subject whose consent shows names, and one whose does not.
    let list = format!(
        r#"{{"customers":[{a},{b}]}}"#,
        a = stored(&p, &keys).await,
        b = p
            .protect(
                "customer_create",
                BodySide::Request,
                CUSTOMER.replace("c-9", "c-10").as_bytes(),
                None,
                &keys
            )
            .await
            .unwrap()
            .map(|b| String::from_utf8(b).unwrap())
            .unwrap(),
    );
    let mut d = decision(&[("name", FieldView::Masked)]);
    d.subject_views.insert(
        "c-9".into(),
        [("name".to_string(), FieldView::Clear)].into(),
    );
    d.subject_views.insert(
        "c-10".into(),
        [("name".to_string(), FieldView::Removed)].into(),
    );
    let v = shown(&p, &keys, &list, &d).await.unwrap();
    assert_eq!(v["customers"][0]["name"], "Jane Example");
    assert!(v["customers"][1].get("name").is_none(), "{v}");

    keys.shredded.lock().unwrap().insert("c-9".into());
    let v = shown(&p, &keys, &list, &d).await.unwrap();
    assert_eq!(v["customers"][0]["name"], "[erased]");
}

#[tokio::test]
async fn refuses_what_it_cannot_protect_or_reveal() {
    let p = shipped();
    let keys = MemoryKeys::default();
    let protect = |body: &'static str| {
        let p = &p;
        let keys = &keys;
        async move {
            p.protect(
                "customer_create",
                BodySide::Request,
                body.as_bytes(),
                None,
                keys,
            )
            .await
        }
    };
    // (body, the error expected)
    assert!(matches!(
        protect(r#"{"id":"a","name":"x","name":"y"}"#).await,
        Err(ProtectError::Body(document::DocumentError::DuplicateKey))
    ));
    assert!(matches!(
        protect(r#"{"name":"no subject"}"#).await,
        Err(ProtectError::SubjectRequired)
    ));
    assert!(matches!(
        protect(r#"{"id":"a","card_number":"4000001"}"#).await,
        Err(ProtectError::Transform(..))
    ));
    assert!(matches!(
        protect(r#"{"id":"a","note":"card 4111 1111 1111 1111"}"#).await,
        Err(ProtectError::PiiDetected { .. })
    ));
    // A tampered ciphertext is never shown, in any view.
    let body = stored(&p, &keys).await;
    let raw: Value = serde_json::from_str(&body).unwrap();
    let sealed = raw["email"].as_str().unwrap();
    // One character in the middle of the payload (the last one may only carry padding bits).
    let mut chars: Vec<char> = sealed.chars().collect();
    let middle = chars.len() - 10;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    let flipped: String = chars.into_iter().collect();
    let tampered = body.replace(sealed, &flipped);
    let d = decision(&[("email", FieldView::Masked)]);
    assert!(matches!(
        shown(&p, &keys, &tampered, &d).await,
        Err(ProtectError::Transform(..))
    ));
}

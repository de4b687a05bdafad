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
    async fn subject_shredded(&self, subject: &str) -> Result<bool, KeyUnavailable> {
        Ok(self.shredded.lock().unwrap().contains(subject))
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

/// A customer with a value of every class the shipped customer rules bind.
fn full_customer(id: &str) -> String {
    json!({
        "id": id, "name": "Jane Example", "email": "jane@example.com",
        "phone": "+44 20 7946 0000", "national_id": "900-12-3456",
        "date_of_birth": "1987-06-05",
        "address": {"street": "1 High Street", "city": "Leeds", "postcode": "LS1 1AA"},
        "iban": "GB82WEST12345698765432", "card_number": "4000001234567899",
        "segment": "retail"
    })
    .to_string()
}

/// Every member the customer rules bind, as a JSON pointer.
const BOUND: [&str; 9] = [
    "/name",
    "/email",
    "/phone",
    "/national_id",
    "/date_of_birth",
    "/address/street",
    "/address/postcode",
    "/iban",
    "/card_number",
];

async fn onboarded(p: &Protection, keys: &MemoryKeys, id: &str) -> Value {
    let body = full_customer(id);
    let out = p
        .protect(
            "customer_create",
            BodySide::Request,
            body.as_bytes(),
            None,
            keys,
        )
        .await
        .unwrap()
        .unwrap();
    serde_json::from_slice(&out).unwrap()
}

async fn reveal_customers(
    p: &Protection,
    keys: &MemoryKeys,
    body: &Value,
    route_subject: Option<&str>,
    d: &Decision,
) -> Value {
    let text = body.to_string();
    let doc = document::Document::parse(text.as_bytes()).unwrap();
    let located = p.locate("customers", BodySide::Response, &doc);
    let shown = p
        .reveal("customers", &doc, &located, route_subject, d, keys)
        .await
        .unwrap();
    serde_json::from_str(&shown).unwrap()
}

#[tokio::test]
async fn a_shredded_subject_reads_as_erased_in_every_class_view_and_scope() {
    let p = shipped();
    let keys = MemoryKeys::default();
    let (gone, kept) = (
        onboarded(&p, &keys, "c-9").await,
        onboarded(&p, &keys, "c-10").await,
    );
    // Stored in clear before protection was turned on: only the shred list can erase it.
    let legacy: Value = serde_json::from_str(&full_customer("c-9")).unwrap();
    keys.shredded.lock().unwrap().insert("c-9".into());
    let classes = p.classes("customers", BodySide::Response).to_vec();
    assert!(classes.len() >= 8, "{classes:?}");
    for view in [FieldView::Clear, FieldView::Masked, FieldView::Token] {
        let views: Vec<(&str, FieldView)> = classes.iter().map(|c| (c.as_str(), view)).collect();
        let d = decision(&views);
        // (the body, the route's subject, where the shredded customer's record sits)
        let page = json!({"customers": [kept.clone(), gone.clone(), legacy.clone()]});
        let cases = [
            (gone.clone(), Some("c-9"), vec![""]),
            (legacy.clone(), Some("c-9"), vec![""]),
            (page, Some("c-10"), vec!["/customers/1", "/customers/2"]),
        ];
        for (body, route_subject, records) in cases {
            let v = reveal_customers(&p, &keys, &body, route_subject, &d).await;
            for record in records {
                for member in BOUND {
                    assert_eq!(
                        v.pointer(&format!("{record}{member}")),
                        Some(&json!("[erased]")),
                        "{view:?} {record}{member}: {v}"
                    );
                }
                assert_eq!(
                    v.pointer(&format!("{record}/segment")),
                    Some(&json!("retail"))
                );
            }
        }
        // The neighbour on the same page is not touched.
        let page = json!({"customers": [kept.clone(), gone.clone()]});
        let v = reveal_customers(&p, &keys, &page, None, &d).await;
        for member in BOUND {
            let shown = v.pointer(&format!("/customers/0{member}")).unwrap();
            assert_ne!(shown, &json!("[erased]"), "{view:?} {member}: {v}");
        }
        // Accounts of the route's subject: class-keyed tokens, and a clear legacy IBAN.
        let accounts =
            json!({"accounts": [{"iban": gone["iban"]}, {"iban": "GB33BUKB20201555555555"}]});
        let v = reveal_customers(&p, &keys, &accounts, Some("c-9"), &d).await;
        assert_eq!(v["accounts"][0]["iban"], "[erased]", "{view:?}: {v}");
        assert_eq!(v["accounts"][1]["iban"], "[erased]", "{view:?}: {v}");
        let v = reveal_customers(&p, &keys, &accounts, Some("c-10"), &d).await;
        assert_ne!(v["accounts"][1]["iban"], "[erased]", "{view:?}: {v}");
    }
}

#[tokio::test]
async fn nothing_new_is_protected_for_a_shredded_subject_under_any_key() {
    let p = shipped();
    let keys = MemoryKeys::default();
    keys.shredded.lock().unwrap().insert("c-9".into());
    // One class at a time: per-subject keys, the class-keyed token and FPE, the class that
    // became per-subject (dob), a nested member.
    let bodies = [
        json!({"id": "c-9", "iban": "GB82WEST12345698765432"}),
        json!({"id": "c-9", "card_number": "4000001234567899"}),
        json!({"id": "c-9", "date_of_birth": "1987-06-05"}),
        json!({"id": "c-9", "name": "Jane"}),
        json!({"id": "c-9", "address": {"postcode": "LS1 1AA"}}),
    ];
    for body in bodies {
        let text = body.to_string();
        let refused = p
            .protect(
                "customer_create",
                BodySide::Request,
                text.as_bytes(),
                None,
                &keys,
            )
            .await;
        assert!(
            matches!(refused, Err(ProtectError::Key(KeyUnavailable::Shredded))),
            "{body}: {:?}",
            refused.map(|b| b.map(String::from_utf8))
        );
        let other = text.replace("c-9", "c-10");
        let ok = p
            .protect(
                "customer_create",
                BodySide::Request,
                other.as_bytes(),
                None,
                &keys,
            )
            .await;
        assert!(ok.is_ok(), "{other}");
    }
}

#[tokio::test]
async fn dates_of_birth_are_per_subject_and_old_class_keyed_ones_still_open() {
    let p = shipped();
    let keys = MemoryKeys::default();
    let stored = onboarded(&p, &keys, "c-9").await;
    let dob = stored["date_of_birth"].as_str().unwrap();
    assert!(dob.starts_with("pgv1.subject.c-9."), "{dob}");
    // A date of birth sealed under the class key before `dob` became per-subject.
    let class_key = key("dob", 1, KeyKind::Aead);
    let old = match transform::protect(
        &transform::ProtectSpec::Encrypt { key: None },
        Some(&class_key),
        &transform::Binding::class("dob"),
        "\"1950-01-02\"",
    )
    .unwrap()
    {
        document::Edit::Replace(sealed) => sealed,
        other => panic!("{other:?}"),
    };
    let body = json!({"id": "c-9", "date_of_birth": serde_json::from_str::<Value>(&old).unwrap()});
    let d = decision(&[("dob", FieldView::Clear)]);
    let v = reveal_customers(&p, &keys, &body, Some("c-9"), &d).await;
    assert_eq!(v["date_of_birth"], "1950-01-02");
    // Under any other class's key it never opens on this class.
    let email_key = key("email", 1, KeyKind::Aead);
    let foreign = match transform::protect(
        &transform::ProtectSpec::Encrypt { key: None },
        Some(&email_key),
        &transform::Binding::class("email"),
        "\"1950-01-02\"",
    )
    .unwrap()
    {
        document::Edit::Replace(sealed) => sealed,
        other => panic!("{other:?}"),
    };
    let text =
        json!({"id": "c-9", "date_of_birth": serde_json::from_str::<Value>(&foreign).unwrap()})
            .to_string();
    let doc = document::Document::parse(text.as_bytes()).unwrap();
    let located = p.locate("customers", BodySide::Response, &doc);
    assert!(p
        .reveal("customers", &doc, &located, Some("c-9"), &d, &keys)
        .await
        .is_err());
    // Once the subject is shredded, the old one reads as erased too.
    keys.shredded.lock().unwrap().insert("c-9".into());
    let v = reveal_customers(&p, &keys, &body, Some("c-9"), &d).await;
    assert_eq!(v["date_of_birth"], "[erased]");
}

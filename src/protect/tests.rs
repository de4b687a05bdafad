//! The executor on the shipped field rules, with an in-memory key source: what goes
//! upstream, and what each view reveals. (The gateway tests run the same with the keyring.)

use super::rules::BodySide;
use super::*;
use crate::config::{BodyMode, RouteConfig};
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
    /// Every subject worked out ([`KeySource::subject`]), in order.
    asked: Mutex<Vec<String>>,
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
    type Subject = String;

    fn subject(&self, subject_id: &str) -> String {
        self.asked.lock().unwrap().push(subject_id.to_owned());
        subject_id.to_owned()
    }

    async fn current(&self, name: &str, kind: KeyKind) -> Result<Arc<DataKey>, KeyUnavailable> {
        Ok(key(name, self.current_version.max(1), kind))
    }
    async fn version(&self, name: &str, version: u32) -> Result<Arc<DataKey>, KeyUnavailable> {
        Ok(key(name, version, kind_of(name)))
    }
    async fn subject_key(
        &self,
        subject: &String,
        kind: KeyKind,
    ) -> Result<Arc<DataKey>, KeyUnavailable> {
        if self.shredded.lock().unwrap().contains(subject) {
            return Err(KeyUnavailable::Shredded);
        }
        Ok(key(&format!("subject.{subject}"), 1, kind))
    }
    async fn subject_shredded(&self, subject: &String) -> Result<bool, KeyUnavailable> {
        Ok(self.shredded.lock().unwrap().contains(subject))
    }
}

fn route(name: &str, action: &str) -> RouteConfig {
    RouteConfig {
        body: BodyMode::Buffered,
        action: Some(action.into()),
        ..RouteConfig::new(name, "/customers", "u")
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
        views: std::sync::Arc::new(views.iter().map(|(c, v)| (c.to_string(), *v)).collect()),
        subject_views: BTreeMap::new(),
        view_policy_ids: Default::default(),
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
    let located = p.locate("customers", BodySide::Response, &doc)?;
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
        std::sync::Arc::new([("name".to_string(), FieldView::Clear)].into()),
    );
    d.subject_views.insert(
        "c-10".into(),
        std::sync::Arc::new([("name".to_string(), FieldView::Removed)].into()),
    );
    let v = shown(&p, &keys, &list, &d).await.unwrap();
    assert_eq!(v["customers"][0]["name"], "Jane Example");
    assert!(v["customers"][1].get("name").is_none(), "{v}");

    keys.shredded.lock().unwrap().insert("c-9".into());
    let v = shown(&p, &keys, &list, &d).await.unwrap();
    assert_eq!(v["customers"][0]["name"], "[erased]");
}

/// The keyring works a subject's tag out with an HMAC: once per subject and body, however
/// many of its values and key kinds the body holds.
#[tokio::test]
async fn each_subject_is_worked_out_once_per_body() {
    let p = shipped();
    let keys = MemoryKeys::default();
    let a = stored(&p, &keys).await;
    assert_eq!(*keys.asked.lock().unwrap(), ["c-9"], "protect");
    let b = p
        .protect(
            "customer_create",
            BodySide::Request,
            CUSTOMER.replace("c-9", "c-10").as_bytes(),
            None,
            &keys,
        )
        .await
        .unwrap()
        .map(|b| String::from_utf8(b).unwrap())
        .unwrap();
    keys.asked.lock().unwrap().clear();
    let list = format!(r#"{{"customers":[{a},{b},{a}]}}"#);
    let views = ["name", "email", "pan", "iban", "dob"].map(|c| (c, FieldView::Clear));
    let v = shown(&p, &keys, &list, &decision(&views)).await.unwrap();
    assert_eq!(v["customers"][2]["name"], "Jane Example");
    assert_eq!(
        v["customers"][1]["date_of_birth"].as_str().map(str::len),
        Some(10)
    );
    let mut asked = keys.asked.lock().unwrap().clone();
    asked.sort();
    assert_eq!(asked, ["c-10", "c-9"], "reveal");
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
    let located = p.locate("customers", BodySide::Response, &doc).unwrap();
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

/// `"1950-01-02"` encrypted under `class`'s own (version 1) key, bound to that class.
fn sealed_under_class_key(class: &str) -> String {
    let class_key = key(class, 1, KeyKind::Aead);
    match transform::protect(
        &transform::ProtectSpec::Encrypt { key: None },
        Some(&class_key),
        &transform::Binding::class(class),
        "\"1950-01-02\"",
        &mut crate::keys::aead::Nonces::expecting(1),
    )
    .unwrap()
    {
        document::Edit::Replace(sealed) => sealed,
        other => panic!("{other:?}"),
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
    let old = sealed_under_class_key("dob");
    let body = json!({"id": "c-9", "date_of_birth": serde_json::from_str::<Value>(&old).unwrap()});
    let d = decision(&[("dob", FieldView::Clear)]);
    let v = reveal_customers(&p, &keys, &body, Some("c-9"), &d).await;
    assert_eq!(v["date_of_birth"], "1950-01-02");
    // Under any other class's key it never opens on this class.
    let foreign = sealed_under_class_key("email");
    let text =
        json!({"id": "c-9", "date_of_birth": serde_json::from_str::<Value>(&foreign).unwrap()})
            .to_string();
    let doc = document::Document::parse(text.as_bytes()).unwrap();
    let located = p.locate("customers", BodySide::Response, &doc).unwrap();
    assert!(p
        .reveal("customers", &doc, &located, Some("c-9"), &d, &keys)
        .await
        .is_err());
    // Once the subject is shredded, the old one reads as erased too.
    keys.shredded.lock().unwrap().insert("c-9".into());
    let v = reveal_customers(&p, &keys, &body, Some("c-9"), &d).await;
    assert_eq!(v["date_of_birth"], "[erased]");
}

/// A protection over the shipped classes with these rules for a `customers`-like route
/// (action `customers:create`), for guard and spelling cases the shipped rules lack.
fn with_rules(routes_toml: &str) -> Protection {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    std::fs::copy(shipped.join("fields.toml"), dir.path().join("fields.toml")).unwrap();
    std::fs::write(dir.path().join(ROUTES_FILE), routes_toml).unwrap();
    Protection::load(dir.path(), &[route("r", "customers:create")]).unwrap()
}

async fn protect_r(p: &Protection, keys: &MemoryKeys, body: &str) -> Result<Value, ProtectError> {
    let out = p
        .protect("r", BodySide::Request, body.as_bytes(), Some("c-1"), keys)
        .await?;
    Ok(serde_json::from_slice(&out.unwrap_or_else(|| body.as_bytes().to_vec())).unwrap())
}

/// Item 8: a member spelled like a bound member (case, `_`, `-`, Unicode case folding),
/// anywhere in the body, refuses the body on both sides; exact spellings pass.
#[tokio::test]
async fn members_spelled_like_bound_members_are_refused() {
    let p = shipped();
    let keys = MemoryKeys::default();
    for body in [
        r#"{"id":"a","Name":"Jane Example"}"#,
        r#"{"id":"a","NATIONAL_ID":"AB123456C"}"#,
        r#"{"id":"a","National_Id":"AB123456C"}"#,
        r#"{"id":"a","nationalId":"AB123456C"}"#,
        r#"{"id":"a","national-id":"AB123456C"}"#,
        r#"{"id":"a","cardNumber":"4111111111111111"}"#,
        r#"{"id":"a","address":{"Street":"1 High St"}}"#,
        r#"{"id":"a","address":{"ſtreet":"1 High St"}}"#,
        r#"{"id":"a","extra":[{"E_MAIL":"jane@example.com"}]}"#,
        r#"{"ID":"a","name":"Jane Example"}"#,
    ] {
        let result = p
            .protect(
                "customer_create",
                BodySide::Request,
                body.as_bytes(),
                None,
                &keys,
            )
            .await;
        assert!(
            matches!(result, Err(ProtectError::Misspelled(_))),
            "{body}: {result:?}"
        );
    }
    // Exact spellings, and names no rule binds, pass.
    let fine = r#"{"id":"a","name":"Jane","segment":"Retail","Segment2":"x","nick_name":"J"}"#;
    let out = p
        .protect(
            "customer_create",
            BodySide::Request,
            fine.as_bytes(),
            None,
            &keys,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8(out).unwrap().contains("pgv1."));
    // The response side: a customer record whose upstream spelled a member otherwise.
    let d = decision(&[("national_id", FieldView::Masked)]);
    for body in [
        r#"{"national_ID":"AB123456C"}"#,
        r#"{"customers":[{"id":"c-1","NationalId":"AB123456C"}]}"#,
    ] {
        assert!(
            matches!(
                shown(&p, &keys, body, &d).await,
                Err(ProtectError::Misspelled(_))
            ),
            "{body}"
        );
    }
}

/// Item 8: the guard scans member names, numbers in every form and strings merely shaped
/// like the gateway's outputs; authentic outputs are still skipped.
#[tokio::test]
async fn guard_sees_names_numbers_and_lookalikes() {
    let p = shipped();
    let keys = MemoryKeys::default();
    let refused = [
        r#"{"id":"a","notes":{"4111111111111111":"card on file"}}"#,
        r#"{"id":"a","contacts":{"jane@example.com":true}}"#,
        r#"{"id":"a","ibans":{"GB82 WEST 1234 5698 7654 32":1}}"#,
        r#"{"id":"a","n":4111111111111111.0}"#,
        r#"{"id":"a","n":4.111111111111111e15}"#,
        r#"{"id":"a","n":4111111111111111E0}"#,
        r#"{"id":"a","n":-5555555555554444}"#,
        r#"{"id":"a","n":[0.5555555555554444e16]}"#,
        r#"{"id":"a","ref":"pgt1.pan.1.4111111111111111"}"#,
        r#"{"id":"a","ref":"pgt1.iban.1.4111111111111111"}"#,
        r#"{"id":"a","ref":"pgv1.dob.1.5555555555554444"}"#,
        r#"{"id":"a","note":"see pgt1.iban-token.1.4111111111111111 please"}"#,
    ];
    for body in refused {
        let result = p
            .protect(
                "customer_create",
                BodySide::Request,
                body.as_bytes(),
                None,
                &keys,
            )
            .await;
        assert!(
            matches!(result, Err(ProtectError::PiiDetected { .. })),
            "{body}: {result:?}"
        );
    }
    // High-precision decimals, timestamps and a genuine token elsewhere in the body pass.
    let stored = stored(&p, &keys).await;
    let raw: Value = serde_json::from_str(&stored).unwrap();
    let token = raw["iban"].as_str().unwrap();
    let fine =
        format!(r#"{{"id":"a","lat":51.50735123456789,"at":1700000000004.0,"payee":"{token}"}}"#);
    assert!(p
        .protect(
            "customer_create",
            BodySide::Request,
            fine.as_bytes(),
            None,
            &keys
        )
        .await
        .is_ok());
}

/// Item 8: a lookalike is told from an authentic output by authentication, not shape: with
/// a detector that fires on the envelope itself, the genuine token passes and a forged one
/// (same class, key and version) does not. A masking guard refuses a finding in a name.
#[tokio::test]
async fn only_authenticated_outputs_are_skipped_and_names_are_never_masked() {
    let rules = |action: &str| {
        format!(
            "[[route.r.request]]\nfields = {{ \"$.iban\" = \"iban\" }}\n\
             [route.r.guard]\naction = \"{action}\"\n\
             custom = [{{ name = \"iban_token\", pattern = 'pgt1\\.iban\\.' }}]\n"
        )
    };
    let p = with_rules(&rules("block"));
    let keys = MemoryKeys::default();
    let out = protect_r(&p, &keys, r#"{"iban":"GB82WEST12345698765432"}"#)
        .await
        .unwrap();
    let genuine = out["iban"].as_str().unwrap().to_owned();
    let payload = genuine.rsplit('.').next().unwrap();
    let mut forged_payload: Vec<char> = payload.chars().collect();
    forged_payload[3] = if forged_payload[3] == 'A' { 'B' } else { 'A' };
    let forged = format!(
        "pgt1.iban.1.{}",
        forged_payload.into_iter().collect::<String>()
    );
    let body = |v: &str| format!(r#"{{"payee":"{v}","note":"ref {v} ok"}}"#);
    assert!(protect_r(&p, &keys, &body(&genuine)).await.is_ok());
    assert!(matches!(
        protect_r(&p, &keys, &body(&forged)).await,
        Err(ProtectError::PiiDetected { .. })
    ));

    // A reporting guard lets the body through as it came (the finding is logged and
    // counted, never the value).
    let p = with_rules(&rules("report"));
    let reported = protect_r(&p, &keys, r#"{"note":"card 4111 1111 1111 1111"}"#)
        .await
        .unwrap();
    assert_eq!(reported["note"], "card 4111 1111 1111 1111");

    let p = with_rules(&rules("mask"));
    let masked = protect_r(
        &p,
        &keys,
        r#"{"note":"card 4111 1111 1111 1111","n":4111111111111111.0}"#,
    )
    .await
    .unwrap();
    assert_eq!(masked["note"], "card **** **** **** ****");
    assert_eq!(masked["n"], "****************.*");
    // Masked in place under any member name (quotes, slashes, `~`, brackets, the empty
    // name) and array element.
    let masked = protect_r(
        &p,
        &keys,
        r#"{"it's":{"a/b~c":["ok","jane@example.com"]},"['x']":{"":"mail a@b.io"}}"#,
    )
    .await
    .unwrap();
    assert_eq!(masked["it's"]["a/b~c"], json!(["ok", "****@*******.***"]));
    assert_eq!(masked["['x']"][""], "mail *@*.**");
    let refused = protect_r(&p, &keys, r#"{"cards":{"4111111111111111":"x"}}"#).await;
    assert!(
        matches!(refused, Err(ProtectError::PiiDetected { .. })),
        "{refused:?}"
    );
    // The error (logged by the gateway) names where, never the name that is the data.
    let shown = format!("{} {:?}", refused.as_ref().unwrap_err(), refused);
    assert!(
        shown.contains("$['cards']['****************']") && !shown.contains("4111"),
        "{shown}"
    );
}

/// A page element that carries protected members but no single subject id in the route's
/// rules is nobody's to decide, key or shred-check: the whole body is refused, on every
/// spelling of a missing id, and a page whose elements all name theirs passes.
#[tokio::test]
async fn page_elements_without_their_subject_refuse_the_body() {
    let p = shipped();
    for element in [
        json!({"iban": "GB82WEST12345698765432"}),
        json!({"id": 3.0, "card_number": "4000001234567899"}),
        json!({"id": null, "email": "jane@example.com"}),
        json!({"id": ["c-3"], "name": "Jane Example"}),
        json!({"id": {"v": "c-3"}, "national_id": "900-12-3456"}),
    ] {
        let body = json!({"customers": [{"id": "c-1", "name": "Ann"}, element]}).to_string();
        let doc = document::Document::parse(body.as_bytes()).unwrap();
        let located = p.locate("customers", BodySide::Response, &doc);
        assert!(
            matches!(located, Err(ProtectError::SubjectRequired)),
            "{body}: {located:?}"
        );
    }
    let body =
        json!({"customers": [{"id": "c-1", "name": "Ann"}, {"id": 3, "segment": "x"}]}).to_string();
    let doc = document::Document::parse(body.as_bytes()).unwrap();
    assert_eq!(
        p.locate("customers", BodySide::Response, &doc)
            .unwrap()
            .len(),
        1
    );
}

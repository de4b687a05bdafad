//! Cedar decisions with the shipped policy set: the route action alone, and the route action
//! with the views of every field class a customer record carries (up to three view actions
//! asked per class, most revealing first), for a teller (masked views) and a partner with
//! consent (clear for consented classes).
//!
//! "first" decisions are ones the engine has not made before (each iteration asks with
//! another authentication age, which the decision memo keys on, so Cedar answers every
//! time; the memo's miss and insert are included); "repeated" ones are answered from the
//! memo.
//!
//! Run: `cargo bench --bench decide -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use privgate::policy::{
    Caller, CallerKind, ConsentGrant, Credential, DecisionRequest, PolicyEngine,
};
use std::path::Path;

fn request(caller: Caller, consent: Option<ConsentGrant>, classes: &[String]) -> DecisionRequest {
    DecisionRequest {
        caller: caller.into(),
        action: "customers:read".into(),
        customer: "c-1".into(),
        purpose: "customer_service".into(),
        amr: ["pwd".into()].into(),
        auth_age_seconds: 60,
        certificate_bound: false,
        amount: None,
        consent,
        field_classes: classes.into(),
        aggregate: None,
        risk: None,
    }
}

fn decisions(c: &mut Criterion) {
    let engine = PolicyEngine::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")))
        .expect("shipped policies load");
    let classes: Vec<String> = engine.field_classes().map(str::to_owned).collect();
    let teller = Caller {
        kind: CallerKind::Service,
        credential: Credential::ClientCertificate,
        id: "branch-desk".into(),
        roles: vec!["teller".into()],
        organisation: None,
        purposes: vec!["customer_service".into()],
    };
    let partner = Caller {
        kind: CallerKind::Service,
        credential: Credential::ClientCertificate,
        id: "fintech-app".into(),
        roles: vec!["partner".into()],
        organisation: Some("fintech".into()),
        purposes: vec!["account_information".into()],
    };
    let consent = ConsentGrant {
        id: "consent-1".into(),
        permissions: vec!["ReadParty".into(), "ReadAccountsBasic".into()],
    };
    let mut partner_request = request(partner, Some(consent), &classes);
    partner_request.purpose = "account_information".into();

    let mut group = c.benchmark_group("decide");
    // A new authentication age each iteration, never reset between criterion's samples: a
    // decision the memo has not seen.
    let first = |b: &mut criterion::Bencher, request: &mut DecisionRequest| {
        b.iter(|| {
            request.auth_age_seconds += 1;
            engine.decide(black_box(&*request)).unwrap()
        })
    };
    let mut action_only = request(teller.clone(), None, &[]);
    group.bench_function("route action only, first", |b| first(b, &mut action_only));
    let teller_views = request(teller, None, &classes);
    assert!(engine.decide(&teller_views).unwrap().allowed());
    let mut fresh = teller_views.clone();
    group.bench_function(
        format!("teller, {} class views, first", classes.len()),
        |b| first(b, &mut fresh),
    );
    group.bench_function(
        format!("teller, {} class views, repeated", classes.len()),
        |b| b.iter(|| engine.decide(black_box(&teller_views)).unwrap()),
    );
    assert!(engine.decide(&partner_request).unwrap().allowed());
    group.bench_function(
        format!("partner with consent, {} class views, first", classes.len()),
        |b| first(b, &mut partner_request),
    );
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);

//! The risk indicators' cost per request (`cargo bench --bench risk`): reading a
//! principal's totals over three windows and counting the request, for one principal
//! reading new subjects and for principals spread over 100,000; and the policy decision
//! with the indicators in its context, from the memo (the indicators' class unchanged),
//! beside the same decision without them.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use privgate::policy::{
    Caller, CallerKind, Credential, DecisionRequest, PolicyEngine, RiskFacts, RiskWindowFacts,
};
use privgate::risk::BenchIndicators;
use std::path::Path;

fn indicators(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("risk");
    let one = BenchIndicators::new();
    let now = 1_700_000_000_000_i64;
    let mut n = 0_u64;
    group.bench_function("one principal, a new subject each request", |b| {
        b.iter(|| {
            n += 1;
            let subject = format!("cust-{n}");
            rt.block_on(one.request("User:alice", black_box(&subject), now))
        })
    });
    let spread = BenchIndicators::new();
    let mut i = 0_u64;
    group.bench_function("100,000 principals round robin", |b| {
        b.iter(|| {
            i += 1;
            let principal = format!("User:analyst-{}", i % 100_000);
            rt.block_on(spread.request(black_box(&principal), "cust-1", now))
        })
    });
    group.finish();

    let engine = PolicyEngine::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")))
        .expect("shipped policies load");
    let classes: Vec<String> = engine.field_classes().map(str::to_owned).collect();
    let mut request = DecisionRequest {
        caller: Caller {
            kind: CallerKind::User,
            credential: Credential::Token,
            id: "fred".into(),
            roles: vec!["fraud_analyst".into()],
            organisation: None,
            purposes: vec!["fraud_prevention".into()],
        }
        .into(),
        action: "customers:read".into(),
        customer: "c-1".into(),
        purpose: "fraud_prevention".into(),
        amr: ["pwd".into()].into(),
        auth_age_seconds: 60,
        certificate_bound: false,
        amount: None,
        consent: None,
        field_classes: classes.clone().into(),
        aggregate: None,
        risk: None,
    };
    let mut group = c.benchmark_group("decide with risk");
    // The baseline: the same decision without `[risk]` (no indicators in the context).
    group.bench_function(
        format!("{} class views, no indicators", classes.len()),
        |b| b.iter(|| engine.decide(black_box(&request)).unwrap()),
    );
    let mut count = 0_i64;
    group.bench_function(
        format!(
            "{} class views, indicators climbing below every threshold",
            classes.len()
        ),
        |b| {
            b.iter(|| {
                count = (count + 1) % 150;
                let mut facts = RiskFacts::default();
                facts.principal.insert(
                    "last_1h".into(),
                    RiskWindowFacts {
                        requests: count,
                        distinct_subjects: count,
                        ..RiskWindowFacts::default()
                    },
                );
                request.risk = Some(facts);
                engine.decide(black_box(&request)).unwrap()
            })
        },
    );
    group.finish();
}

criterion_group!(benches, indicators);
criterion_main!(benches);

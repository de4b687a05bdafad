//! Whole-body field protection on a ~1 KB customer record with 10 protected fields, using
//! the shipped field rules and a real keyring in SQLite: protect (what goes upstream) and
//! reveal in the clear and masked views (what a caller gets back), both together (issue 15's
//! goal: under 20 µs), against parsing alone.
//!
//! The card number is format-preserving with Luhn cycle walking, whose cost depends on the
//! value and the (random) key: from one FF1 call to dozens, about ten on average. One
//! record would measure its own walk, different in every run, so each benchmark cycles
//! through [`RECORDS`] records that differ in their card number's middle digits.
//!
//! Run: `cargo bench --bench protect_body -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use privgate::config::{BodyMode, RouteConfig};
use privgate::decision::{Decision, FieldView};
use privgate::keys::kek::KekMaterial;
use privgate::keys::{maintenance, Keyring, KeyringSettings};
use privgate::protect::document::Document;
use privgate::protect::rules::BodySide;
use privgate::protect::Protection;
use privgate::store::Store;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// The gateway binary's allocator (`src/main.rs`), so that the figures are what a request
/// costs in `privgate serve`: glibc's malloc and free alone were about a quarter of this
/// benchmark's samples.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CUSTOMER: &str = r#"{
  "id": "c-1", "segment": "retail", "since": "2011-04-01", "status": "active",
  "name": "Jane Example", "email": "jane.example@example.com", "phone": "+44 20 7946 0000",
  "national_id": "900-12-3456", "date_of_birth": "1987-06-05",
  "address": { "street": "1 High Street", "city": "Leeds", "postcode": "LS1 1AA", "country": "GB" },
  "iban": "GB82WEST12345698765432", "card_number": "4000001234567899",
  "limits": { "daily_minor": 500000, "monthly_minor": 2500000, "currency": "GBP" },
  "preferences": { "language": "en-GB", "statements": "paper", "marketing": false },
  "notes": "Prefers branch visits on Tuesdays; relationship manager RM-42.",
  "risk": { "score": 0.12, "band": "low", "reviewed": "2026-01-15" },
  "accounts": [ { "id": 7, "kind": "current", "balance_minor": 1234567 },
                { "id": 8, "kind": "savings", "balance_minor": 9876543 } ]
}"#;

/// How many records (distinct valid card numbers) each benchmark cycles through.
const RECORDS: usize = 256;

/// The customer record with the `n`th of [`RECORDS`] Luhn-valid card numbers (same BIN
/// and last four as [`CUSTOMER`]'s but the check digit, other middle digits).
fn customer(n: usize) -> String {
    let body = format!("400000{n:06}789");
    let digits = |check: u32| -> Vec<u32> {
        body.chars()
            .filter_map(|c| c.to_digit(10))
            .chain([check])
            .collect()
    };
    let check = (0..10)
        .find(|&c| privgate::protect::transform::luhn::is_valid(&digits(c)))
        .expect("one check digit makes any number Luhn-valid");
    CUSTOMER.replace("4000001234567899", &format!("{body}{check}"))
}

/// Each call gives the next of `items`, round and round.
fn cycle<'a, T>(items: &'a [T]) -> impl FnMut() -> &'a T {
    let mut next = 0;
    move || {
        next = (next + 1) % items.len();
        &items[next]
    }
}

fn route(name: &str, action: &str) -> RouteConfig {
    RouteConfig {
        body: BodyMode::Buffered,
        action: Some(action.into()),
        ..RouteConfig::new(name, "/customers", "u")
    }
}

fn decision(view: FieldView) -> Decision {
    let classes = [
        "name",
        "email",
        "phone",
        "national_id",
        "dob",
        "address",
        "iban",
        "pan",
    ];
    Decision {
        refusal: None,
        policy_ids: vec![],
        views: std::sync::Arc::new(classes.iter().map(|c| (c.to_string(), view)).collect()),
        subject_views: BTreeMap::new(),
        view_policy_ids: Default::default(),
        policy_set_hash: String::new(),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let keyring = rt.block_on(async {
        let store = Store::open(&url).await.unwrap();
        let material = KekMaterial::Raw(Zeroizing::new([0x3c; 32]));
        maintenance::init(&store, &material, Default::default())
            .await
            .unwrap();
        Keyring::open(store, &material, KeyringSettings::default())
            .await
            .unwrap()
    });
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let protection = Protection::load(
        &policies,
        &[
            route("customers", "customers:read"),
            route("customer_create", "customers:create"),
        ],
    )
    .unwrap();
    let records: Vec<String> = (0..RECORDS).map(customer).collect();
    let protect = |body: &str| {
        rt.block_on(protection.protect(
            "customer_create",
            BodySide::Request,
            black_box(body.as_bytes()),
            None,
            &keyring,
        ))
        .unwrap()
        .unwrap()
    };
    let stored: Vec<Vec<u8>> = records.iter().map(|r| protect(r)).collect();
    println!(
        "body {} bytes, stored {} bytes, {RECORDS} records",
        CUSTOMER.len(),
        stored[0].len()
    );
    c.bench_function("body/parse_only", |b| {
        b.iter(|| Document::parse(black_box(CUSTOMER.as_bytes())).unwrap())
    });
    c.bench_function("body/protect", |b| {
        let mut next = cycle(&records);
        b.iter(|| protect(next()))
    });
    let reveal = |decision: &Decision, stored: &[u8]| {
        let doc = Document::parse(black_box(stored)).unwrap();
        let located = protection
            .locate("customers", BodySide::Response, &doc)
            .unwrap();
        rt.block_on(protection.reveal("customers", &doc, &located, Some("c-1"), decision, &keyring))
            .unwrap()
    };
    for (name, view) in [
        ("body/reveal_clear", FieldView::Clear),
        ("body/reveal_masked", FieldView::Masked),
    ] {
        let decision = decision(view);
        c.bench_function(name, |b| {
            let mut next = cycle(&stored);
            b.iter(|| reveal(&decision, next()))
        });
    }
    let masked = decision(FieldView::Masked);
    // What the protected route does to one record: stored protected (the request side of
    // `customer_create`), then read back masked (the response side of `customers`).
    c.bench_function("body/protect_then_reveal_masked", |b| {
        let mut next = cycle(&records);
        b.iter(|| reveal(&masked, &protect(next())))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

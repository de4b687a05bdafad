//! Server time per contribution for encrypted sums, and release latency.
//!
//! Compared (proof verification excluded from all three and measured on its own, since
//! every pipeline pays it once per contribution):
//! - `plus_u64`: expand each contribution as an `FheUint64` and fold with `+` (carries
//!   propagated on every addition);
//! - `sum_u64` / `sum_u32`: the straightforward pipeline: expand every compact list, then
//!   tfhe's `Sum` over the expanded values;
//! - `ours_16`: privgate's batch fold: 16-bit contributions (the aggregate's width), each
//!   re-randomized before expansion, expanded in parallel across contributions, an
//!   accumulator of exactly the blocks 1,000 contributors need (26 bits), additions
//!   without bootstraps while the carry and noise budget allows.
//!
//! The summary lines (one pass each) come first; criterion then samples the pipelines
//! (`cargo bench --bench fhe_sum -- ours` samples only ours).
//!
//! `expand_16` / `rerand_expand_16`: one 16-bit contribution expanded as sent, and
//! re-randomized then expanded (what the fold does), one at a time.
//!
//! `release_1000` re-randomizes and adds the running total of a 1,000-contribution
//! aggregate's 62 full batches and its last batch's partial and decrypts;
//! `release_1000_open_batch` first folds that open last batch of 8; the summary also
//! times adding all 63 partials. Run: `cargo bench --bench fhe_sum` (release profile;
//! `--profile dev` builds much faster with dependencies equally optimised). With
//! `--features fhe-pbs-stats` the summary also counts programmable bootstraps per
//! contribution.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use criterion::Criterion;
use privgate::analytics::fhe::batches::{self, FoldKeys};
use privgate::analytics::fhe::params::{self, Sizing};
use privgate::analytics::fhe::{contribution, fold, keyset};
use privgate::store::ContributionRow;
use std::time::{Duration, Instant};
use tfhe::prelude::*;
use tfhe::zk::{CompactPkeCrs, ZkComputeLoad};
use tfhe::{
    ClientKey, CompactPublicKey, FheUint32, FheUint64, ProvenCompactCiphertextList, ServerKey,
};

/// Contributions per measured iteration (reported per contribution).
const PER_ITERATION: usize = 4;

struct Setup {
    client: ClientKey,
    keys: FoldKeys,
    lists_u64: Vec<ProvenCompactCiphertextList>,
    lists_u32: Vec<ProvenCompactCiphertextList>,
    rows_16: Vec<ContributionRow>,
}

fn setup() -> Setup {
    let started = Instant::now();
    let config = params::config();
    let client = ClientKey::generate(config);
    let server = ServerKey::new(&client);
    let pk = CompactPublicKey::try_new(&client).unwrap();
    let crs = CompactPkeCrs::from_config(config, params::CRS_MAX_BITS).unwrap();
    let public = keyset::public_from_bytes(
        keyset::serialize(&pk, keyset::PUBLIC_KEY_LIMIT).unwrap(),
        keyset::serialize(&crs, keyset::CRS_LIMIT).unwrap(),
    )
    .unwrap();
    eprintln!("keys and CRS: {:.1} s", started.elapsed().as_secs_f64());
    tfhe::set_server_key(server.clone());
    let meta = b"bench";
    let list = |v: u64, wide: bool| {
        let mut builder = ProvenCompactCiphertextList::builder(&public.public_key);
        if wide {
            builder.push(v);
        } else {
            builder.push(v as u32);
        }
        builder
            .build_with_proof_packed(&public.crs, meta, ZkComputeLoad::Proof)
            .unwrap()
    };
    let started = Instant::now();
    let lists_u64 = (0..PER_ITERATION as u64)
        .map(|v| list(1000 + v, true))
        .collect();
    let lists_u32 = (0..PER_ITERATION as u64)
        .map(|v| list(1000 + v, false))
        .collect();
    let rows_16 = (0..16)
        .map(|i| {
            let nonce = format!("bench-nonce-{i:08}");
            let meta = contribution::metadata("bench", "Service:b", &nonce);
            let bytes = contribution::encrypt(&public, 1000 + i as u64, 16, &meta).unwrap();
            ContributionRow {
                contributor: format!("Service:b{i}"),
                organisation: String::new(),
                slot: i,
                nonce,
                ciphertext: B64.encode(bytes),
            }
        })
        .collect::<Vec<_>>();
    eprintln!(
        "contributions (encrypt + prove, client side): {:.2} s each",
        started.elapsed().as_secs_f64() / (2 * PER_ITERATION + 16) as f64
    );
    let size = B64.decode(&rows_16[0].ciphertext).unwrap().len();
    eprintln!("16-bit contribution with proof: {size} bytes");
    Setup {
        client,
        keys: FoldKeys::new(public, server).unwrap(),
        lists_u64,
        lists_u32,
        rows_16,
    }
}

fn pbs_count() -> u64 {
    #[cfg(feature = "fhe-pbs-stats")]
    return tfhe::shortint::server_key::get_pbs_count();
    #[cfg(not(feature = "fhe-pbs-stats"))]
    0
}

fn reset_pbs() {
    #[cfg(feature = "fhe-pbs-stats")]
    tfhe::shortint::server_key::reset_pbs_count();
}

/// The one value of a contribution list, expanded as sent (the baselines' path).
fn expanded<T: tfhe::HlExpandable + tfhe::prelude::Tagged>(
    list: &ProvenCompactCiphertextList,
) -> T {
    list.expand_without_verification()
        .unwrap()
        .get(0)
        .unwrap()
        .unwrap()
}

fn plus_u64(s: &Setup) -> u64 {
    let mut acc = FheUint64::encrypt_trivial(0u64);
    for list in &s.lists_u64 {
        let v: FheUint64 = expanded(list);
        acc = &acc + &v;
    }
    acc.decrypt(&s.client)
}

fn sum_u64(s: &Setup) -> u64 {
    let values: Vec<FheUint64> = s.lists_u64.iter().map(expanded).collect();
    values.iter().sum::<FheUint64>().decrypt(&s.client)
}

fn sum_u32(s: &Setup) -> u32 {
    let values: Vec<FheUint32> = s.lists_u32.iter().map(expanded).collect();
    values.iter().sum::<FheUint32>().decrypt(&s.client)
}

fn ours_16(s: &Setup, sizing: &Sizing) -> Vec<u8> {
    batches::fold_rows(&s.keys, "bench", sizing, None, &s.rows_16[..PER_ITERATION]).unwrap()
}

/// Times `f` (one iteration = `per` contributions) per contribution.
fn per_contribution(c: &mut Criterion, name: &str, per: usize, mut f: impl FnMut()) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                f();
                total += started.elapsed();
            }
            total / per as u32
        })
    });
}

fn summary(name: &str, per: usize, f: impl FnOnce()) {
    reset_pbs();
    let started = Instant::now();
    f();
    let per_value = started.elapsed().as_secs_f64() * 1000.0 / per as f64;
    match cfg!(feature = "fhe-pbs-stats") {
        true => eprintln!(
            "{name}: {per_value:.0} ms and {} PBS per contribution",
            pbs_count() / per as u64
        ),
        false => eprintln!("{name}: {per_value:.0} ms per contribution"),
    }
}

fn main() {
    let s = setup();
    let sizing = Sizing::new(16, 1000).unwrap();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();

    // One pass of each with counts, then criterion's samples.
    summary("verify proof (each pipeline)", 1, || {
        let list = contribution::parse(
            &B64.decode(&s.rows_16[0].ciphertext).unwrap(),
            &s.keys.public,
        )
        .unwrap();
        let meta = contribution::metadata("bench", "Service:b", &s.rows_16[0].nonce);
        contribution::verify(&list, &s.keys.public, &meta).unwrap();
    });
    summary("plus_u64", PER_ITERATION, || assert_eq!(plus_u64(&s), 4006));
    summary("sum_u64", PER_ITERATION, || assert_eq!(sum_u64(&s), 4006));
    summary("sum_u32", PER_ITERATION, || assert_eq!(sum_u32(&s), 4006));
    summary("ours_16", PER_ITERATION, || {
        let total = fold::load_total(&sizing, &ours_16(&s, &sizing)).unwrap();
        assert_eq!(fold::decrypt(&s.client, &total), 4006);
    });
    summary("ours_16 (batch of 16)", 16, || {
        batches::fold_rows(&s.keys, "bench", &sizing, None, &s.rows_16).unwrap();
    });
    let lists: Vec<_> = s.rows_16[..4]
        .iter()
        .map(|row| {
            let bytes = B64.decode(&row.ciphertext).unwrap();
            let list = contribution::parse(&bytes, &s.keys.public).unwrap();
            let meta = contribution::metadata("bench", &row.contributor, &row.nonce);
            (list, meta)
        })
        .collect();
    summary(
        "expand only, one at a time (16-bit contribution)",
        4,
        || {
            s.keys.install(|| {
                for (list, _) in &lists {
                    contribution::expand_as_sent(list, &sizing).unwrap();
                }
            })
        },
    );
    summary("re-randomize and expand, one at a time", 4, || {
        s.keys.install(|| {
            for (list, meta) in &lists {
                contribution::expand(list, &s.keys.public, meta, &sizing).unwrap();
            }
        })
    });
    summary("clamp (16-bit contribution)", 1, || {
        let radix: &tfhe::integer::ClientKey = s.client.as_ref();
        let v = radix.encrypt_radix(5000u64, sizing.contribution_blocks());
        fold::clamp(s.keys.server.as_ref(), &v, 4000);
    });

    // Release of a 1,000-contribution aggregate (62 full batches of 16 and 8 more). The
    // worker keeps a running total of the full batches, so a release adds the running
    // total and the last batch's partial and decrypts. Partials and the running total are
    // made here with the client key: what a release costs does not depend on that.
    let radix: &tfhe::integer::ClientKey = s.client.as_ref();
    let stored = |v: u64| {
        let ct = radix.encrypt_radix(v, sizing.accumulator_blocks());
        B64.encode(fold::store_total(s.keys.server.as_ref(), &sizing, &ct).unwrap())
    };
    let partials: Vec<String> = (0..63u64).map(|i| stored(16_000 + i)).collect();
    let expected: u128 = (0..63u128).map(|i| 16_000 + i).sum();
    let running = [
        stored(62 * 16_000 + (0..62).sum::<u64>()),
        partials[62].clone(),
    ];
    let started = Instant::now();
    let total = batches::add_partials(&s.keys, "bench", "release", &sizing, &running).unwrap();
    assert_eq!(fold::decrypt(&s.client, &total), expected);
    eprintln!(
        "release_1000 (running total + last batch, decrypted; also the worker's cost per batch): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let last = batches::fold_rows(&s.keys, "bench", &sizing, None, &s.rows_16[..8]).unwrap();
    batches::add_partials(
        &s.keys,
        "bench",
        "release",
        &sizing,
        &[running[0].clone(), B64.encode(last)],
    )
    .unwrap();
    eprintln!(
        "release_1000_open_batch (last 8 folded at release, then added): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let total = batches::add_partials(&s.keys, "bench", "release", &sizing, &partials).unwrap();
    assert_eq!(fold::decrypt(&s.client, &total), expected);
    eprintln!(
        "release_1000 without a running total (63 partials added): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    per_contribution(&mut c, "plus_u64", PER_ITERATION, || {
        plus_u64(&s);
    });
    per_contribution(&mut c, "sum_u64", PER_ITERATION, || {
        sum_u64(&s);
    });
    per_contribution(&mut c, "sum_u32", PER_ITERATION, || {
        sum_u32(&s);
    });
    per_contribution(&mut c, "ours_16", PER_ITERATION, || {
        ours_16(&s, &sizing);
    });

    per_contribution(&mut c, "expand_16", lists.len(), || {
        s.keys.install(|| {
            for (list, _) in &lists {
                contribution::expand_as_sent(list, &sizing).unwrap();
            }
        })
    });
    per_contribution(&mut c, "rerand_expand_16", lists.len(), || {
        s.keys.install(|| {
            for (list, meta) in &lists {
                contribution::expand(list, &s.keys.public, meta, &sizing).unwrap();
            }
        })
    });

    c.bench_function("release_1000", |b| {
        b.iter(|| batches::add_partials(&s.keys, "bench", "release", &sizing, &running).unwrap())
    });
    c.bench_function("release_1000_open_batch", |b| {
        b.iter(|| {
            let last =
                batches::fold_rows(&s.keys, "bench", &sizing, None, &s.rows_16[..8]).unwrap();
            let terms = [running[0].clone(), B64.encode(last)];
            batches::add_partials(&s.keys, "bench", "release", &sizing, &terms).unwrap()
        })
    });
    c.final_summary();
}

//! The arithmetic with real TFHE keys (made once for this test binary: seconds to minutes).

use super::*;
use crate::analytics::fhe::batches::{self, FoldKeys};
use crate::analytics::fhe::contribution;
use crate::analytics::fhe::keyset::{self, PublicMaterial};
use crate::analytics::fhe::params::{self, Sizing};
use crate::store::ContributionRow;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::Rng;
use std::sync::OnceLock;
use tfhe::zk::CompactPkeCrs;
use tfhe::{ClientKey, CompactPublicKey, ServerKey};

struct TestKeys {
    client: ClientKey,
    fold: FoldKeys,
}

/// One key set for every test here (key and CRS generation dominate the run time).
fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let config = params::config();
        let client = ClientKey::generate(config);
        let server = ServerKey::new(&client);
        let public_key = CompactPublicKey::try_new(&client).unwrap();
        let crs = CompactPkeCrs::from_config(config, params::CRS_MAX_BITS).unwrap();
        // Through the bytes and the conformance checks contributors' clients use.
        let public = keyset::public_from_bytes(
            keyset::serialize(&public_key, keyset::PUBLIC_KEY_LIMIT).unwrap(),
            keyset::serialize(&crs, keyset::CRS_LIMIT).unwrap(),
        )
        .unwrap();
        TestKeys {
            client,
            fold: FoldKeys::new(public, server).unwrap(),
        }
    })
}

fn integer_key() -> &'static tfhe::integer::ServerKey {
    keys().fold.server.as_ref()
}

/// A fresh encryption under the compute key (no proof): for the accumulator alone.
fn fresh(value: u64, sizing: &Sizing) -> RadixCiphertext {
    let ck: &tfhe::integer::ClientKey = keys().client.as_ref();
    ck.encrypt_radix(value, sizing.contribution_blocks())
}

fn proven(public: &PublicMaterial, value: u64, bits: u32, meta: &[u8]) -> Vec<u8> {
    contribution::encrypt(public, value, bits, meta).unwrap()
}

fn row(slot: usize, nonce: &str, bytes: &[u8]) -> ContributionRow {
    ContributionRow {
        contributor: format!("Service:c{slot}"),
        organisation: String::new(),
        slot: slot as i64,
        nonce: nonce.into(),
        ciphertext: B64.encode(bytes),
    }
}

#[test]
fn proven_contributions_sum_to_the_plaintext_sum_through_batches() {
    let keys = keys();
    let sizing = Sizing::new(8, 16).unwrap();
    let mut rng = rand::thread_rng();
    let mut values: Vec<u64> = (0..7).map(|_| rng.gen_range(0..=255)).collect();
    values[0] = 255;
    values[1] = 0;
    let rows: Vec<ContributionRow> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let nonce = format!("nonce-{i:012}");
            let meta = contribution::metadata("agg", &format!("Service:c{i}"), &nonce);
            row(i, &nonce, &proven(&keys.fold.public, *v, 8, &meta))
        })
        .collect();
    // Two batches, each folded and stored, then their stored partials added.
    let first = batches::fold_rows(&keys.fold, "agg", &sizing, None, &rows[..4]).unwrap();
    let second = batches::fold_rows(&keys.fold, "agg", &sizing, None, &rows[4..]).unwrap();
    // Parallel expansion, deterministic seeds: folding again gives the same bytes.
    let again = batches::fold_rows(&keys.fold, "agg", &sizing, None, &rows[4..]).unwrap();
    assert!(again == second, "a refold differs");
    let partials = [B64.encode(first), B64.encode(second)];
    let total = batches::add_partials(&keys.fold, "agg", "release", &sizing, &partials).unwrap();
    assert_eq!(
        decrypt(&keys.client, &total),
        values.iter().map(|v| u128::from(*v)).sum::<u128>()
    );
}

#[test]
fn carries_are_saved_once_per_three_additions_and_the_total_never_wraps() {
    let n = 13u64;
    let sizing = Sizing::new(8, n).unwrap();
    let mut acc = Accumulator::new(integer_key(), &sizing);
    for _ in 0..n {
        acc.add(fresh(255, &sizing)).unwrap();
    }
    // Fresh blocks have degree 3 and nominal noise: five fit in a block's carry and noise
    // budget from zero, three after a carry-save round (degree 6, noise 2).
    assert_eq!(acc.rounds, 3, "{} carry rounds", acc.rounds);
    let total = acc.finish();
    // The largest total the sizing allows, exactly (a wrap would show as a small number).
    assert_eq!(decrypt(&keys().client, &total), 255 * u128::from(n));
    assert_eq!(u128::from(255 * n), sizing.max_total());
}

#[test]
fn the_clamp_caps_each_contribution() {
    let sizing = Sizing::new(8, 4).unwrap();
    let mut acc = Accumulator::new(integer_key(), &sizing);
    for value in [10, 100, 101, 255] {
        acc.add(clamp(integer_key(), &fresh(value, &sizing), 100))
            .unwrap();
    }
    assert_eq!(decrypt(&keys().client, &acc.finish()), 10 + 100 + 100 + 100);
}

#[test]
fn contributions_wider_than_the_aggregate_are_refused() {
    let keys = keys();
    let narrow = Sizing::new(8, 4).unwrap();
    let meta = contribution::metadata("agg", "Service:c", "nonce-000000000001");
    let wide = proven(&keys.fold.public, 300, 16, &meta);
    let list = contribution::parse(&wide, &keys.fold.public).unwrap();
    contribution::verify(&list, &keys.fold.public, &meta).unwrap();
    assert!(matches!(
        contribution::check_width(&list, &narrow),
        Err(FheError::TooWide(8))
    ));
    assert!(matches!(
        keys.fold
            .install(|| contribution::expand(&list, &keys.fold.public, &meta, &narrow)),
        Err(FheError::TooWide(8))
    ));
    // The client refuses to encrypt a value its width cannot hold.
    assert!(matches!(
        contribution::encrypt(&keys.fold.public, 256, 8, &meta),
        Err(FheError::TooWide(8))
    ));
}

#[test]
fn proofs_are_bound_to_aggregate_contributor_nonce_and_key() {
    let keys = keys();
    let public = &keys.fold.public;
    let meta = contribution::metadata("agg-1", "Service:bank-a", "nonce-000000000002");
    let bytes = proven(public, 42, 8, &meta);
    let list = contribution::parse(&bytes, public).unwrap();
    contribution::verify(&list, public, &meta).unwrap();
    for other in [
        contribution::metadata("agg-2", "Service:bank-a", "nonce-000000000002"),
        contribution::metadata("agg-1", "Service:bank-b", "nonce-000000000002"),
        contribution::metadata("agg-1", "Service:bank-a", "nonce-000000000003"),
    ] {
        assert!(matches!(
            contribution::verify(&list, public, &other),
            Err(FheError::ProofInvalid)
        ));
    }
    // Another key set's public key (same parameters and CRS): the proof names that key.
    let stranger = ClientKey::generate(params::config());
    let stranger_pk = CompactPublicKey::try_new(&stranger).unwrap();
    let foreign = PublicMaterial {
        public_key: stranger_pk,
        crs: public.crs.clone(),
        public_key_bytes: Vec::new(),
        crs_bytes: Vec::new(),
        sha256: String::new(),
    };
    let alien = proven(&foreign, 42, 8, &meta);
    let list = contribution::parse(&alien, public).unwrap();
    assert!(matches!(
        contribution::verify(&list, public, &meta),
        Err(FheError::ProofInvalid)
    ));
}

#[test]
fn malformed_and_oversized_ciphertexts_are_errors_not_panics() {
    let keys = keys();
    let public = &keys.fold.public;
    let meta = contribution::metadata("agg", "Service:c", "nonce-000000000004");
    let good = proven(public, 7, 8, &meta);
    let mut cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"not a ciphertext".to_vec(),
        good[..good.len() / 2].to_vec(),
        vec![0u8; contribution::CONTRIBUTION_LIMIT as usize + 1],
    ];
    let mut rng = rand::thread_rng();
    for _ in 0..16 {
        let mut flipped = good.clone();
        let at = rng.gen_range(0..flipped.len());
        flipped[at] ^= 1 << rng.gen_range(0..8);
        cases.push(flipped);
    }
    for (i, bytes) in cases.iter().enumerate() {
        let outcome = contribution::parse(bytes, public)
            .and_then(|list| contribution::verify(&list, public, &meta));
        // A flipped bit may land where it changes nothing the checks read; anything that
        // gets through must still verify as what was sent.
        if i < 4 {
            assert!(
                matches!(
                    outcome,
                    Err(FheError::Malformed(_)) | Err(FheError::Invalid(_))
                ),
                "case {i}"
            );
        }
    }
    // A stored total that was tampered with is refused, never trusted.
    let sizing = Sizing::new(8, 4).unwrap();
    let stored = store_total(integer_key(), &sizing, &fresh(9, &sizing)).unwrap();
    assert_eq!(
        decrypt(&keys.client, &load_total(&sizing, &stored).unwrap()),
        9
    );
    assert!(load_total(&sizing, &stored[..stored.len() - 9]).is_err());
    assert!(load_total(&Sizing::new(56, 1 << 20).unwrap(), &stored).is_err());
}

/// The LWE coefficients of each block (what re-randomization changes).
fn coefficients(value: &RadixCiphertext) -> Vec<Vec<u64>> {
    value
        .blocks()
        .iter()
        .map(|b| b.ct.as_ref().to_vec())
        .collect()
}

#[test]
fn contributions_are_re_randomized_before_they_enter_the_fold() {
    let keys = keys();
    let sizing = Sizing::new(8, 4).unwrap();
    let meta = contribution::metadata("agg", "Service:c", "nonce-000000000005");
    let list =
        contribution::parse(&proven(&keys.fold.public, 77, 8, &meta), &keys.fold.public).unwrap();
    let (sent, sent_again, rerandomized, rerandomized_again, other_nonce) =
        keys.fold.install(|| {
            let other = contribution::metadata("agg", "Service:c", "nonce-000000000006");
            let public = &keys.fold.public;
            (
                contribution::expand_as_sent(&list, &sizing).unwrap(),
                contribution::expand_as_sent(&list, &sizing).unwrap(),
                contribution::expand(&list, public, &meta, &sizing).unwrap(),
                contribution::expand(&list, public, &meta, &sizing).unwrap(),
                contribution::expand(&list, public, &other, &sizing).unwrap(),
            )
        });
    // Expansion alone is deterministic, so a difference comes from re-randomization.
    assert_eq!(coefficients(&sent), coefficients(&sent_again));
    assert_ne!(coefficients(&sent), coefficients(&rerandomized));
    // Seeded from the transcript: the same contribution always folds the same way, and
    // another nonce gives other randomness.
    assert_eq!(
        coefficients(&rerandomized),
        coefficients(&rerandomized_again)
    );
    assert_ne!(coefficients(&rerandomized), coefficients(&other_nonce));
    for value in [&sent, &rerandomized, &other_nonce] {
        assert_eq!(decrypt(&keys.client, value), 77);
    }
}

#[test]
fn stored_totals_are_re_randomized_before_they_are_added() {
    let keys = keys();
    let sizing = Sizing::new(8, 4).unwrap();
    let stored = store_total(integer_key(), &sizing, &fresh(201, &sizing)).unwrap();
    let loaded = load_total(&sizing, &stored).unwrap();
    let mut first = loaded.clone();
    crate::analytics::fhe::rerand::total(keys.fold.rerand_key(), "agg", "release", 0, &mut first)
        .unwrap();
    let mut second = loaded.clone();
    crate::analytics::fhe::rerand::total(keys.fold.rerand_key(), "agg", "release", 1, &mut second)
        .unwrap();
    assert_ne!(coefficients(&loaded), coefficients(&first));
    assert_ne!(coefficients(&first), coefficients(&second));
    assert_eq!(decrypt(&keys.client, &first), 201);
    assert_eq!(decrypt(&keys.client, &second), 201);
    // A server key made without re-randomization (a key set from before) is refused.
    let old =
        ClientKey::generate(tfhe::ConfigBuilder::with_custom_parameters(params::compute()).build());
    assert!(matches!(
        crate::analytics::fhe::rerand::derived_key(&ServerKey::new(&old)),
        Err(FheError::Keys(m)) if m.contains("privgate fhe keygen")
    ));
}

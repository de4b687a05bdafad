//! Per-value cost of each field transform, and AES-256-GCM from ring (what
//! `keys::aead` uses) against the `aes-gcm` crate on a 32-byte value.
//!
//! Run: `cargo bench --bench transforms -- --warm-up-time 1 --measurement-time 3`

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::Aes256Gcm;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use privgate::keys::{aead, DataKey, KeyKind};
use privgate::protect::transform::spec::{
    Alphabet, DateShiftSpec, FpeSpec, GeneralizeSpec, MaskSpec,
};
use privgate::protect::transform::{
    date_shift, encrypt, fpe, generalize, hash, mask, tokenize, Binding, Ciphertext,
};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

fn key(kind: KeyKind) -> DataKey {
    DataKey::new("bench", 1, kind, Zeroizing::new(vec![7; kind.secret_len()])).unwrap()
}

const PAN: &str = "\"4111 1111 1111 1111\"";

fn fpe_spec(luhn: bool) -> FpeSpec {
    FpeSpec {
        key: None,
        alphabet: Alphabet::Digits,
        keep_prefix: 6,
        keep_suffix: 4,
        luhn,
        min_length: 16,
        allow_low_entropy: false,
        key_version: 1,
    }
}

fn reversible(c: &mut Criterion) {
    let b = Binding {
        class: "pan",
        subject: Some("customer-17"),
    };
    let gcm = key(KeyKind::Aead);
    let sealed = encrypt::seal(&gcm, &b, PAN).unwrap();
    c.bench_function("encrypt/seal", |x| {
        x.iter(|| encrypt::seal(&gcm, &b, black_box(PAN)))
    });
    c.bench_function("encrypt/open", |x| {
        x.iter(|| encrypt::open(&gcm, &b, Ciphertext::parse(black_box(&sealed)).unwrap()))
    });
    let siv = key(KeyKind::Siv);
    let token = tokenize::tokenize(&siv, &b, PAN).unwrap();
    c.bench_function("tokenize/encode", |x| {
        x.iter(|| tokenize::tokenize(&siv, &b, black_box(PAN)))
    });
    c.bench_function("tokenize/decode", |x| {
        x.iter(|| tokenize::detokenize(&siv, &b, &Ciphertext::parse(black_box(&token)).unwrap()))
    });
    let ff1 = key(KeyKind::Ff1);
    for (name, spec) in [("fpe", fpe_spec(false)), ("fpe_luhn", fpe_spec(true))] {
        let out = fpe::encrypt(&ff1, &b, &spec, PAN).unwrap();
        c.bench_function(&format!("{name}/encode"), |x| {
            x.iter(|| fpe::encrypt(&ff1, &b, &spec, black_box(PAN)))
        });
        c.bench_function(&format!("{name}/decode"), |x| {
            x.iter(|| fpe::decrypt(&ff1, &b, &spec, black_box(&out)))
        });
    }
    let hmac = key(KeyKind::Hmac);
    let spec = DateShiftSpec {
        key: None,
        max_days: 180,
        key_version: 1,
    };
    let date = "\"1987-04-12\"";
    let shifted = date_shift::shift(&hmac, &b, &spec, date).unwrap();
    c.bench_function("date_shift/encode", |x| {
        x.iter(|| date_shift::shift(&hmac, &b, &spec, black_box(date)))
    });
    c.bench_function("date_shift/decode", |x| {
        x.iter(|| date_shift::unshift(&hmac, &b, &spec, black_box(&shifted)))
    });
}

fn one_way(c: &mut Criterion) {
    let b = Binding::class("pan");
    let spec = MaskSpec {
        keep_last: 4,
        ..MaskSpec::default()
    };
    c.bench_function("mask/encode", |x| {
        x.iter(|| mask::mask(&spec, &b, black_box(PAN)))
    });
    let hmac = key(KeyKind::Hmac);
    c.bench_function("hash/encode", |x| {
        x.iter(|| hash::pseudonym(&hmac, &b, black_box(PAN)))
    });
    let bucket = GeneralizeSpec {
        bucket: Some(1000),
        date: None,
        prefix: None,
    };
    c.bench_function("generalize/bucket", |x| {
        x.iter(|| generalize::generalize(&bucket, &b, black_box("123456.78")))
    });
}

/// ring vs aes-gcm, both with a fresh random 96-bit nonce per message, 32-byte plaintext.
fn payload(msg: &[u8]) -> aes_gcm::aead::Payload<'_, '_> {
    aes_gcm::aead::Payload { msg, aad: b"aad" }
}

fn aead_32_bytes(c: &mut Criterion) {
    let secret = [7u8; 32];
    let plaintext = [0x42u8; 32];
    let mut group = c.benchmark_group("aes256gcm_32B");
    let sealed = aead::seal(&secret, b"aad", &plaintext).unwrap();
    group.bench_function("ring/seal", |x| {
        x.iter(|| aead::seal(&secret, b"aad", black_box(&plaintext)))
    });
    group.bench_function("ring/open", |x| {
        x.iter(|| aead::open(&secret, b"aad", black_box(&sealed)))
    });
    let cipher = Aes256Gcm::new_from_slice(&secret).unwrap();
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ct = cipher.encrypt(&nonce, payload(&plaintext)).unwrap();
    group.bench_function("aes-gcm/seal", |x| {
        x.iter(|| {
            let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
            cipher.encrypt(&nonce, payload(black_box(&plaintext)))
        })
    });
    group.bench_function("aes-gcm/open", |x| {
        x.iter(|| cipher.decrypt(&nonce, payload(black_box(&ct))))
    });
    // Key setup per call, as `keys::aead` does (it builds the ring key each time).
    group.bench_function("aes-gcm/open_with_key_setup", |x| {
        x.iter(|| {
            let cipher = Aes256Gcm::new_from_slice(black_box(&secret)).unwrap();
            cipher.decrypt(&nonce, payload(&ct))
        })
    });
    group.bench_function("aes-gcm/seal_with_key_setup", |x| {
        x.iter(|| {
            let cipher = Aes256Gcm::new_from_slice(black_box(&secret)).unwrap();
            let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
            cipher.encrypt(&nonce, payload(&plaintext))
        })
    });
    // ring with the key built once, like aes-gcm above: the primitives themselves.
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secret).unwrap());
    group.bench_function("ring/seal_prebuilt_key", |x| {
        x.iter(|| {
            let mut nonce = [0u8; NONCE_LEN];
            SystemRandom::new().fill(&mut nonce).unwrap();
            let mut buf = black_box(plaintext).to_vec();
            let nonce = Nonce::assume_unique_for_key(nonce);
            ring_key.seal_in_place_append_tag(nonce, Aad::from(b"aad"), &mut buf)
        })
    });
    let (ring_nonce, ring_body) = sealed.split_at(NONCE_LEN);
    group.bench_function("ring/open_prebuilt_key", |x| {
        x.iter(|| {
            let mut buf = black_box(ring_body).to_vec();
            let nonce = Nonce::try_assume_unique_for_key(ring_nonce).unwrap();
            ring_key
                .open_in_place(nonce, Aad::from(b"aad"), &mut buf)
                .map(|p| p.len())
        })
    });
    group.finish();
}

criterion_group!(benches, reversible, one_way, aead_32_bytes);
criterion_main!(benches);

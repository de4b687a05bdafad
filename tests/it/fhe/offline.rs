//! The offline split: a compute node sums contribution files with public material only
//! (`privgate fhe sum`), the key custodian decrypts the total (`privgate fhe decrypt`).

use super::fixture;
use crate::harness::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use privgate::analytics::fhe::contribution;
use serde_json::json;

pub fn contribution_file(
    ws: &Workspace,
    name: &str,
    aggregate: &str,
    contributor: &str,
    value: u64,
) -> String {
    let nonce = format!("{:032x}", rand::random::<u128>());
    let meta = contribution::metadata(aggregate, contributor, &nonce);
    let bytes = contribution::encrypt(&fixture().public, value, 8, &meta).unwrap();
    let file =
        json!({ "contributor": contributor, "nonce": nonce, "ciphertext": B64.encode(bytes) });
    ws.write(name, &file.to_string()).display().to_string()
}

#[test]
fn a_compute_node_sums_with_public_material_and_the_custodian_decrypts() {
    let fixture = fixture();
    let ws = Workspace::new();
    // The compute node gets only the public files: a copy without the sealed client key.
    let public_dir = ws.path("public");
    std::fs::create_dir(&public_dir).unwrap();
    for file in ["keyset.json", "public_key.bin", "crs.bin", "server_key.bin"] {
        std::fs::copy(fixture.fhe_dir().join(file), public_dir.join(file)).unwrap();
    }
    let files = [
        contribution_file(&ws, "a.json", "offline-1", "Service:a", 200),
        contribution_file(&ws, "b.json", "offline-1", "Service:b", 17),
        contribution_file(&ws, "a2.json", "offline-1", "Service:a", 3), // replaces a.json
    ];
    let out = ws.path("total.json");
    let mut args = vec![
        "fhe".to_owned(),
        "sum".into(),
        "--keys".into(),
        public_dir.display().to_string(),
        "--aggregate".into(),
        "offline-1".into(),
        "--bits".into(),
        "8".into(),
        "--max-contributors".into(),
        "4".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    args.extend(files.iter().cloned());
    let run = privgate(&args);
    assert!(run.ok, "{}", run.all());
    assert!(
        run.stdout.contains("summed 2 contributions"),
        "{}",
        run.stdout
    );
    let decrypted = privgate([
        "fhe",
        "decrypt",
        "--config",
        fixture.config().to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(decrypted.ok, "{}", decrypted.all());
    assert!(
        decrypted.stdout.contains("total 20 of 2 contributions"),
        "{}",
        decrypted.stdout
    );

    // A contribution proven for another aggregate is refused, and nothing is written.
    let stray = contribution_file(&ws, "stray.json", "offline-2", "Service:c", 1);
    let out2 = ws.path("total2.json");
    let run = privgate([
        "fhe",
        "sum",
        "--keys",
        public_dir.to_str().unwrap(),
        "--aggregate",
        "offline-1",
        "--bits",
        "8",
        "--max-contributors",
        "4",
        "--out",
        out2.to_str().unwrap(),
        &files[1],
        &stray,
    ]);
    assert!(!run.ok);
    assert!(run.all().contains("proof does not verify"), "{}", run.all());
    assert!(!out2.exists());
}

//! `--output table|tsv|json|csv` on the listing commands, through the real binary over a
//! real SQLite store: stable JSON field names with typed values, CSV with a header and
//! formula-like text neutralised, and each command's default as it was.

use crate::harness::privgate;
use serde_json::Value;
use std::path::Path;

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("privgate.toml");
    let store = dir.join("store.db");
    let text = format!(
        "[[listener]]\nname = \"public\"\naddress = \"127.0.0.1:0\"\ncert = \"s.pem\"\nkey = \"s.key.pem\"\n\n[store]\nurl = \"sqlite://{}\"\n",
        store.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `privgate <command> --config CONFIG ARGS...` and returns stdout, failing on error.
fn run(command: &str, config: &Path, args: &[&str]) -> String {
    let mut all = vec![command, "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = privgate(&all);
    assert!(out.ok, "{all:?}: {}", out.all());
    out.stdout
}

#[test]
fn listing_commands_print_table_tsv_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    // Text a spreadsheet would evaluate (`@...`), in fields an operator chooses.
    let id = run(
        "consent",
        &config,
        &[
            "grant",
            "--subject",
            "cust-42",
            "--grantee",
            "@partner",
            "--purpose",
            "marketing",
            "--permission",
            "ReadPAN",
        ],
    );
    let id = id.trim();
    run(
        "apikey",
        &config,
        &["create", "--service", "@batch", "--roles", "teller"],
    );

    // consent list: a table by default, as before.
    let table = run("consent", &config, &["list"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "id",
            "subject",
            "grantee",
            "status",
            "purposes",
            "permissions"
        ]
    );
    assert!(
        table.contains(id) && table.contains("Authorised"),
        "{table}"
    );

    let json: Value =
        serde_json::from_str(&run("consent", &config, &["list", "--output", "json"])).unwrap();
    assert_eq!(json[0]["id"], id);
    assert_eq!(json[0]["status"], "Authorised");
    assert_eq!(json[0]["grantee"], "@partner");
    assert_eq!(json[0]["purposes"], serde_json::json!(["marketing"]));

    let csv = run("consent", &config, &["list", "--output", "csv"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("id,subject,grantee,status,purposes,permissions")
    );
    assert_eq!(
        lines.next().unwrap(),
        format!("{id},cust-42,'@partner,Authorised,marketing,ReadPAN")
    );

    // consent show: JSON by default; its fields as rows otherwise.
    let shown: Value = serde_json::from_str(&run("consent", &config, &["show", id])).unwrap();
    assert_eq!(shown["id"], id);
    let fields = run("consent", &config, &["show", id, "--output", "tsv"]);
    assert!(fields.starts_with("field\tvalue\n"), "{fields}");
    assert!(fields.contains("\nstatus\tAuthorised\n"), "{fields}");

    // apikey list: tab-separated by default with the header scripts know.
    let tsv = run("apikey", &config, &["list"]);
    assert!(
        tsv.starts_with("id\tservice\troles\tpurposes\tcreated_ms\trevoked_ms\n"),
        "{tsv}"
    );
    assert!(tsv.lines().nth(1).unwrap().ends_with("\t-"), "{tsv}");
    let keys: Value =
        serde_json::from_str(&run("apikey", &config, &["list", "--output", "json"])).unwrap();
    assert_eq!(keys[0]["service"], "@batch");
    assert!(keys[0]["created_ms"].is_i64(), "{keys}");
    assert!(keys[0]["revoked_ms"].is_null(), "{keys}");
    let csv = run("apikey", &config, &["list", "--output", "csv"]);
    assert!(
        csv.lines().nth(1).unwrap().contains(",'@batch,teller,"),
        "{csv}"
    );

    // Lists with no rows: an empty JSON array, a CSV header alone.
    let ops: Value =
        serde_json::from_str(&run("admin", &config, &["list", "--output", "json"])).unwrap();
    assert_eq!(ops, serde_json::json!([]));
    assert_eq!(
        run("totp", &config, &["list", "--output", "csv"]),
        "user,algorithm,digits,state,locked\n"
    );

    // An unknown format is refused by the parser, naming the ones there are.
    let bad = privgate([
        "consent",
        "--config",
        config.to_str().unwrap(),
        "list",
        "--output",
        "xml",
    ]);
    assert!(
        !bad.ok && bad.stderr.contains("table") && bad.stderr.contains("csv"),
        "{}",
        bad.stderr
    );
}

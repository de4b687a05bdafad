use crate::config::parse;
use std::path::Path;

const BASE: &str = r#"
[[listener]]
name = "public"
address = "127.0.0.1:8443"
cert = "server.pem"
key = "server.key.pem"
"#;

const DATASET: &str = r#"
[[dataset]]
name = "transactions"
source = { url = "sqlite://data/bank.db", table = "transactions" }
privacy_unit = "customer_id"
max_rows_per_unit = 10
truncate_order = "id"
analyst_epsilon = 1.0
global_epsilon = 4.0

[dataset.column.amount]
type = "integer"
lower = 0
upper = 100000

[dataset.column.region]
type = "categorical"
categories = ["north", "south"]
"#;

fn problems(dataset: &str) -> Vec<String> {
    match parse(
        Path::new("/etc/privgate/privgate.toml"),
        &format!("{BASE}{dataset}"),
    ) {
        Ok(_) => vec![],
        Err(e) => e.problems.into_iter().map(|p| p.message).collect(),
    }
}

#[test]
fn a_valid_dataset_loads_with_defaults_and_a_resolved_source() {
    let config = parse(
        Path::new("/etc/privgate/privgate.toml"),
        &format!("{BASE}{DATASET}"),
    )
    .unwrap();
    let d = &config.datasets[0];
    assert_eq!(
        d.source.url.as_deref(),
        Some("sqlite:///etc/privgate/data/bank.db")
    );
    assert_eq!(d.budget_period, super::DEFAULT_BUDGET_PERIOD);
    assert_eq!(d.cache_window, super::DEFAULT_CACHE_WINDOW);
    let keyed = DATASET.replace(
        "max_rows_per_unit = 10",
        "max_rows_per_unit = 10\nmax_groups_per_unit = 2\nmax_rows_per_group = 5\n\
         analyst_delta = 1e-7\nglobal_delta = 1e-6\ndefault_query_delta = 1e-8",
    ) + "\n[dataset.column.merchant]\ntype = \"key\"\n";
    let config = parse(
        Path::new("/etc/privgate/privgate.toml"),
        &format!("{BASE}{keyed}"),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let d = &config.datasets[0];
    assert_eq!(
        (d.max_groups_per_unit, d.max_rows_per_group),
        (Some(2), Some(5))
    );
    assert_eq!(d.columns["merchant"], super::ColumnConfig::Key {});
    assert_eq!(d.default_query_delta, Some(1e-8));
    let csv = DATASET.replace(
        "url = \"sqlite://data/bank.db\", ",
        "csv = \"data/tx.csv\", ",
    );
    let config = parse(
        Path::new("/etc/privgate/privgate.toml"),
        &format!("{BASE}{csv}"),
    )
    .unwrap();
    assert_eq!(
        config.datasets[0].source.csv.as_deref(),
        Some(Path::new("/etc/privgate/data/tx.csv"))
    );
}

#[test]
fn invalid_datasets_are_refused_with_what_is_wrong() {
    // (edit of the valid dataset, words the problem must contain)
    let cases: &[(&str, &str, &str)] = &[
        (
            "max_rows_per_unit = 10",
            "max_rows_per_unit = 0",
            "max_rows_per_unit must be 1 to",
        ),
        (
            "analyst_epsilon = 1.0",
            "analyst_epsilon = -1.0",
            "analyst_epsilon must be a positive",
        ),
        (
            "global_epsilon = 4.0",
            "global_epsilon = 0.5",
            "global_epsilon must be at least",
        ),
        ("lower = 0", "lower = 200000", "lower must not exceed upper"),
        (
            "[\"north\", \"south\"]",
            "[\"north\", \"north\"]",
            "categories must be distinct",
        ),
        ("[\"north\", \"south\"]", "[]", "categories must list"),
        (
            "privacy_unit = \"customer_id\"",
            "privacy_unit = \"customer id; DROP\"",
            "privacy_unit `customer id; DROP` must be",
        ),
        (
            "truncate_order = \"id\"",
            "truncate_order = \"\"",
            "truncate_order `` must be",
        ),
        (
            "name = \"transactions\"",
            "name = \"tx-2\"",
            "name must be letters",
        ),
        (
            "sqlite://data/bank.db",
            "mysql://db",
            "source.url must start with",
        ),
        (
            "global_epsilon = 4.0",
            "global_epsilon = 4.0\nrequire_consent_purpose = \"analytics\"",
            "require_consent_purpose needs the dataset in the gateway's own store",
        ),
        (
            "[dataset.column.region]",
            "[dataset.column.customer_id]",
            "privacy unit column cannot be a queryable column",
        ),
        ("type = \"integer\"", "type = \"float\"", "invalid TOML"),
        (
            "max_rows_per_unit = 10",
            "max_rows_per_unit = 10\nmax_groups_per_unit = 2",
            "declare both max_groups_per_unit and max_rows_per_group",
        ),
        (
            "max_rows_per_unit = 10",
            "max_rows_per_unit = 10\nmax_groups_per_unit = 11\nmax_rows_per_group = 2",
            "max_groups_per_unit must be 1 to max_rows_per_unit (10)",
        ),
        (
            "max_rows_per_unit = 10",
            "max_rows_per_unit = 10\nmax_groups_per_unit = 2\nmax_rows_per_group = 0",
            "max_rows_per_group must be 1 to max_rows_per_unit",
        ),
        (
            "global_epsilon = 4.0",
            "global_epsilon = 4.0\nanalyst_delta = 1e-6",
            "declare both analyst_delta and global_delta",
        ),
        (
            "global_epsilon = 4.0",
            "global_epsilon = 4.0\nanalyst_delta = 1e-6\nglobal_delta = 1.5",
            "global_delta must be a number strictly between 0 and 1",
        ),
        (
            "global_epsilon = 4.0",
            "global_epsilon = 4.0\nanalyst_delta = 1e-5\nglobal_delta = 1e-6",
            "global_delta must be at least analyst_delta",
        ),
        (
            "global_epsilon = 4.0",
            "global_epsilon = 4.0\nanalyst_delta = 1e-6\nglobal_delta = 1e-5\ndefault_query_delta = 1e-3",
            "default_query_delta must be positive and at most analyst_delta",
        ),
        (
            "global_epsilon = 4.0",
            "global_epsilon = 4.0\ndefault_query_delta = 1e-9",
            "default_query_delta needs analyst_delta",
        ),
        (
            "global_epsilon = 4.0",
            "global_epsilon = 4.0\n[[dataset.budget_tier]]\nname = \"senior\"\nanalyst_epsilon = 5.0",
            "budget_tier `senior`: analyst_epsilon must not exceed the dataset's global_epsilon",
        ),
        (
            "global_epsilon = 4.0",
            "global_epsilon = 4.0\n[[dataset.budget_tier]]\nname = \"a\"\nanalyst_epsilon = 2.0\n[[dataset.budget_tier]]\nname = \"a\"\nanalyst_epsilon = 0.0",
            "budget_tier `a`: is defined twice",
        ),
        (
            "global_epsilon = 4.0",
            "global_epsilon = 4.0\n[[dataset.budget_tier]]\nname = \"wide\"\nanalyst_epsilon = 2.0\nanalyst_delta = 1e-7",
            "budget_tier `wide`: analyst_delta needs the dataset's analyst_delta and global_delta",
        ),
        (
            "global_epsilon = 4.0",
            "global_epsilon = 4.0\nanalyst_delta = 1e-8\nglobal_delta = 1e-6\n[[dataset.budget_tier]]\nname = \"wide\"\nanalyst_epsilon = 2.0\nanalyst_delta = 1e-5",
            "budget_tier `wide`: analyst_delta must be positive and at most the dataset's global_delta",
        ),
        (
            "table = \"transactions\"",
            "table = \"transactions\", csv = \"tx.csv\"",
            "give url (a database) or csv (a file), not both",
        ),
    ];
    for (from, to, words) in cases {
        assert!(DATASET.contains(from), "{from}");
        let found = problems(&DATASET.replacen(from, to, 1));
        assert!(found.iter().any(|p| p.contains(words)), "{to}: {found:?}");
    }
    let twice = problems(&format!(
        "{DATASET}{}",
        DATASET.split("[dataset.column").next().unwrap()
    ));
    assert!(
        twice.iter().any(|p| p.contains("defined twice")),
        "{twice:?}"
    );
}

//! The SQL subset: what parses to what, and one line per refused form.

use super::*;
use crate::analytics::dp::tests::dataset;

#[test]
fn allowed_forms_parse_to_their_meaning() {
    let d = dataset();
    let q = parse(
        "select region, count(*), SUM(amount), avg(amount) FROM transactions \
         WHERE amount >= -5 AND region IN ('north', 'south') AND channel <> 'atm' \
         AND amount NOT BETWEEN 10 AND 20 GROUP BY region",
        &d,
    )
    .unwrap();
    assert_eq!(
        q.outputs,
        vec![
            Output::Group("region".into()),
            Output::Aggregate(Aggregate::Count),
            Output::Aggregate(Aggregate::Sum("amount".into())),
            Output::Aggregate(Aggregate::Avg("amount".into())),
        ]
    );
    assert_eq!(q.group_by, vec!["region".to_owned()]);
    assert_eq!(
        q.filters,
        vec![
            ("amount".into(), Predicate::Compare(">=", Literal::Int(-5))),
            (
                "region".into(),
                Predicate::In(
                    false,
                    vec![Literal::Text("north".into()), Literal::Text("south".into())]
                )
            ),
            (
                "channel".into(),
                Predicate::Compare("<>", Literal::Text("atm".into()))
            ),
            (
                "amount".into(),
                Predicate::Between(true, Literal::Int(10), Literal::Int(20))
            ),
        ]
    );
    let m = parse(
        "SELECT MEDIAN(amount), QUANTILE(amount, 0.9) FROM transactions",
        &d,
    )
    .unwrap();
    assert_eq!(
        m.aggregates().cloned().collect::<Vec<_>>(),
        vec![
            Aggregate::Quantile("amount".into(), 0.5),
            Aggregate::Quantile("amount".into(), 0.9)
        ]
    );
}

#[test]
fn the_same_question_normalizes_the_same_however_spelled() {
    let d = dataset();
    let a = parse("SELECT COUNT(*) FROM transactions WHERE amount > 3", &d).unwrap();
    let b = parse(
        "select   count(*)\nfrom TRANSACTIONS where (AMOUNT > 3)",
        &d,
    )
    .unwrap();
    let c = parse("SELECT COUNT(*) FROM transactions WHERE amount > 4", &d).unwrap();
    assert_eq!(a.normalized(), b.normalized());
    assert_ne!(a.normalized(), c.normalized());
}

#[test]
fn every_other_form_is_refused_with_what_is_allowed() {
    let d = dataset();
    // (SQL, words the refusal must contain)
    let cases: &[(&str, &str)] = &[
        ("SELECT * FROM transactions", "SELECT *"),
        ("SELECT amount FROM transactions", "not in GROUP BY"),
        ("SELECT region FROM transactions GROUP BY region", "at least one aggregate"),
        ("SELECT COUNT(*) FROM transactions t JOIN other o ON t.x = o.x", "JOIN"),
        ("SELECT COUNT(*) FROM transactions, other", "exactly one dataset"),
        ("SELECT COUNT(*) FROM (SELECT * FROM transactions)", "subqueries"),
        ("SELECT COUNT(*) FROM transactions WHERE amount IN (SELECT 1)", "subqueries"),
        ("SELECT COUNT(*) FROM transactions WHERE EXISTS (SELECT 1)", "subqueries"),
        ("SELECT COUNT(*) FROM other", "FROM must be the dataset"),
        ("SELECT COUNT(*) FROM transactions AS t", "aliases"),
        ("SELECT COUNT(*) AS n FROM transactions", "aliases"),
        ("SELECT COUNT(customer_id) FROM transactions", "COUNT(*)"),
        ("SELECT COUNT(DISTINCT region) FROM transactions", "COUNT(*)"),
        ("SELECT SUM(DISTINCT amount) FROM transactions", "DISTINCT"),
        ("SELECT SUM(secret) FROM transactions", "not declared"),
        ("SELECT SUM(customer_id) FROM transactions", "not declared"),
        ("SELECT SUM(region) FROM transactions", "only integer columns"),
        ("SELECT SUM(amount * 2) FROM transactions", "not expressions"),
        ("SELECT MAX(amount) FROM transactions", "function `max`"),
        ("SELECT COUNT(*) FROM transactions GROUP BY amount", "only categorical columns"),
        ("SELECT COUNT(*) FROM transactions GROUP BY customer_id", "not declared"),
        ("SELECT COUNT(*) FROM transactions WHERE amount > 1 OR amount < 0", "OR"),
        ("SELECT COUNT(*) FROM transactions WHERE amount + 1 > 2", "not expressions"),
        ("SELECT COUNT(*) FROM transactions WHERE amount > other_col", "literal"),
        ("SELECT COUNT(*) FROM transactions WHERE region > 'a'", "= or <>"),
        ("SELECT COUNT(*) FROM transactions WHERE region = 3", "'quoted'"),
        ("SELECT COUNT(*) FROM transactions WHERE amount = 'x'", "whole number"),
        ("SELECT COUNT(*) FROM transactions WHERE amount = 1.5", "whole number"),
        ("SELECT COUNT(*) FROM transactions WHERE region LIKE 'n%'", "simple predicates"),
        ("SELECT COUNT(*) FROM transactions WHERE customer_id = '7'", "not declared"),
        ("SELECT region, COUNT(*) FROM transactions GROUP BY region HAVING COUNT(*) > 5", "HAVING"),
        ("SELECT COUNT(*) FROM transactions ORDER BY 1", "ORDER BY"),
        ("SELECT COUNT(*) FROM transactions LIMIT 1", "LIMIT"),
        ("SELECT DISTINCT COUNT(*) FROM transactions", "DISTINCT"),
        ("WITH t AS (SELECT 1) SELECT COUNT(*) FROM transactions", "WITH"),
        ("SELECT COUNT(*) FROM transactions UNION SELECT COUNT(*) FROM transactions", "UNION"),
        ("SELECT COUNT(*) FROM transactions; SELECT COUNT(*) FROM transactions", "exactly one SELECT"),
        ("DELETE FROM transactions", "exactly one SELECT"),
        ("SELECT COUNT(*) OVER () FROM transactions", "window"),
        ("SELECT QUANTILE(amount, 1.5) FROM transactions", "between 0 and 1"),
        ("SELECT region, MEDIAN(amount) FROM transactions GROUP BY region", "without GROUP BY"),
        ("SELECT COUNT(*) FROM transactions GROUP BY region, region", "twice"),
        ("SELECT COUNT(*), COUNT(*), COUNT(*), COUNT(*), COUNT(*), COUNT(*), COUNT(*), COUNT(*), COUNT(*) FROM transactions", "at most 8"),
        ("SELECT COUNT(*) FROM", "does not parse"),
        ("SELECT 1 + 1 FROM transactions", "only GROUP BY columns and aggregates"),
    ];
    for (sql, words) in cases {
        let err = parse(sql, &d).expect_err(sql);
        let message = err.to_string();
        assert!(message.contains(words), "{sql}: {message}");
        assert!(message.contains(ALLOWED), "{sql}: {message}");
    }
}

#[test]
fn refusals_never_echo_literal_values() {
    let d = dataset();
    for sql in [
        "SELECT COUNT(*) FROM transactions WHERE region = 'Alice Smith' OR amount = 1",
        "SELECT COUNT(*) FROM transactions WHERE amount = 'Alice Smith'",
        "SELECT COUNT(*) FROM transactions WHERE customer_id = 'Alice Smith'",
    ] {
        let message = parse(sql, &d).unwrap_err().to_string();
        assert!(!message.contains("Alice"), "{message}");
    }
}

#[test]
fn oversize_sql_is_refused_before_parsing() {
    let sql = format!(
        "SELECT COUNT(*) FROM transactions WHERE amount > {}",
        "1".repeat(MAX_SQL_BYTES)
    );
    assert!(parse(&sql, &dataset())
        .unwrap_err()
        .to_string()
        .contains("longer than"));
}

#[test]
fn group_by_needs_the_declared_group_bounds() {
    let mut d = dataset();
    let sql = "SELECT region, COUNT(*) FROM transactions GROUP BY region";
    assert!(parse(sql, &d).is_ok());
    d.max_groups_per_unit = None;
    d.max_rows_per_group = None;
    let message = parse(sql, &d).unwrap_err().to_string();
    assert!(
        message.contains("declare max_groups_per_unit")
            && message.contains("max_rows_per_group")
            && message.contains("`transactions`"),
        "{message}"
    );
    // Ungrouped queries need no group bounds.
    assert!(parse("SELECT COUNT(*) FROM transactions", &d).is_ok());
}

#[test]
fn key_columns_group_alone_with_count_only_and_need_delta_budgets() {
    let d = crate::analytics::dp::tests::keyed_dataset();
    let q = parse(
        "SELECT merchant, COUNT(*) FROM transactions WHERE merchant <> 'x' AND amount > 0 GROUP BY merchant",
        &d,
    )
    .unwrap();
    assert!(q.keyed && q.group_by == ["merchant"]);
    // Sums and means come with the count that selects the keys.
    let q = parse(
        "SELECT merchant, SUM(amount), COUNT(*), AVG(amount) FROM transactions GROUP BY merchant",
        &d,
    )
    .unwrap();
    assert!(q.keyed && q.aggregates().count() == 3);
    assert!(
        !parse(
            "SELECT region, COUNT(*) FROM transactions GROUP BY region",
            &d
        )
        .unwrap()
        .keyed
    );
    let cases = [
        (
            "SELECT merchant, SUM(amount) FROM transactions GROUP BY merchant",
            "exactly one COUNT(*)",
        ),
        (
            "SELECT merchant, COUNT(*), COUNT(*) FROM transactions GROUP BY merchant",
            "exactly one COUNT(*)",
        ),
        (
            "SELECT merchant, COUNT(*), MEDIAN(amount) FROM transactions GROUP BY merchant",
            "without GROUP BY",
        ),
        (
            "SELECT merchant, region, COUNT(*) FROM transactions GROUP BY merchant, region",
            "alone",
        ),
        (
            "SELECT COUNT(*) FROM transactions WHERE merchant > 'a'",
            "= or <>",
        ),
        (
            "SELECT SUM(merchant) FROM transactions",
            "only integer columns",
        ),
    ];
    for (sql, words) in cases {
        let message = parse(sql, &d).expect_err(sql).to_string();
        assert!(message.contains(words), "{sql}: {message}");
    }
    let mut no_delta = d.clone();
    no_delta.analyst_delta = None;
    no_delta.global_delta = None;
    let message = parse(
        "SELECT merchant, COUNT(*) FROM transactions GROUP BY merchant",
        &no_delta,
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("needs delta > 0") && message.contains("analyst_delta and global_delta"),
        "{message}"
    );
}

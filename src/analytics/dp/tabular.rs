//! An answer as one flat table, for CSV (`Accept: text/csv`, `privgate query --output csv`)
//! and for anything else that wants rows and columns rather than the JSON answer.
//!
//! The columns are the query's GROUP BY columns as they are, and for each aggregate its
//! estimate under the aggregate's label (`COUNT(*)`) followed by `<label>_plus_minus_95`,
//! `<label>_lower_95` and `<label>_upper_95`: every aggregate has all four, empty where
//! OpenDP has no accuracy helper (AVG, quantiles) or the estimate is undefined (AVG over a
//! noisy count below 1). A dry run has no rows: its table is one line per aggregate with
//! its epsilon and its +/- at 95%. Numbers are written as the JSON answer has them.
//!
//! GROUP BY values can come from the data (keys such as merchant names) and CSV files are
//! opened in spreadsheets: a value that a spreadsheet would read as a formula (starting with
//! `=`, `+`, `-`, `@`, a tab or a carriage return) is written with a leading `'`, as OWASP
//! advises against CSV injection. Numbers are never changed.
//!
//! What was spent and the budget left are not rows: the gateway sends them as response
//! headers beside a CSV answer ([`SPEND_HEADERS`]).

use serde_json::Value;

/// The suffixes of an aggregate's interval columns, in order.
pub const INTERVAL_SUFFIXES: [&str; 3] = ["_plus_minus_95", "_lower_95", "_upper_95"];

/// Response headers beside a CSV answer and the answer's JSON paths they carry: what the
/// query spent and what the caller has left (a CSV body has room only for rows).
pub const SPEND_HEADERS: [(&str, &[&str]); 5] = [
    ("privgate-epsilon-spent", &["epsilon_spent"]),
    ("privgate-delta-spent", &["delta_spent"]),
    ("privgate-cached", &["cached"]),
    ("privgate-epsilon-left", &["budget", "epsilon_left"]),
    ("privgate-budget-refreshes-at", &["budget", "refreshes_at"]),
];

/// The answer (or dry run) `body` as a header row and data rows.
pub fn flatten(body: &Value) -> (Vec<String>, Vec<Vec<String>>) {
    if body["dry_run"] == true {
        return flatten_cost(body);
    }
    let labels: Vec<&str> = body["aggregates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["aggregate"].as_str())
        .collect();
    let columns: Vec<&str> = body["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let is_aggregate = |c: &str| labels.contains(&c);
    let mut header = Vec::new();
    for column in &columns {
        header.push((*column).to_owned());
        if is_aggregate(column) {
            header.extend(INTERVAL_SUFFIXES.iter().map(|s| format!("{column}{s}")));
        }
    }
    let rows = body["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            let mut out = Vec::with_capacity(header.len());
            for (i, column) in columns.iter().enumerate() {
                let value = &row[i];
                if is_aggregate(column) {
                    let interval = &value["interval_95"];
                    out.push(scalar(&value["estimate"]));
                    out.push(scalar(&value["plus_minus_95"]));
                    out.push(scalar(&interval[0]));
                    out.push(scalar(&interval[1]));
                } else {
                    out.push(inert(scalar(value)));
                }
            }
            out
        })
        .collect();
    (header, rows)
}

fn flatten_cost(body: &Value) -> (Vec<String>, Vec<Vec<String>>) {
    let header = ["aggregate", "epsilon", "plus_minus_95"].map(String::from);
    let rows = body["aggregates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            vec![
                scalar(&a["aggregate"]),
                scalar(&a["epsilon"]),
                scalar(&a["plus_minus_95"]),
            ]
        })
        .collect();
    (header.to_vec(), rows)
}

/// One cell: strings as they are, numbers and booleans as JSON writes them, null empty.
fn scalar(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A text cell a spreadsheet will not evaluate (see the module docs); also the CLI's CSV
/// listings (`cli::output`).
pub fn inert(text: String) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text,
    }
}

/// The answer as CSV (RFC 4180, header first), written by the `csv` crate.
pub fn to_csv(body: &Value) -> Result<Vec<u8>, csv::Error> {
    let (header, rows) = flatten(body);
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&header)?;
    for row in rows {
        writer.write_record(&row)?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

/// The value at `path` in the answer as a header value's text (`None` where absent).
pub fn spend_header_value(body: &Value, path: &[&str]) -> Option<String> {
    let value = path.iter().fold(body, |v, key| &v[*key]);
    (!value.is_null()).then(|| scalar(value))
}

#[cfg(test)]
mod tests {
    use super::{flatten, to_csv};
    use serde_json::json;

    #[test]
    fn every_aggregate_gets_its_estimate_and_interval_columns() {
        let body = json!({
            "columns": ["region", "COUNT(*)", "AVG(amount)"],
            "aggregates": [{"aggregate": "COUNT(*)"}, {"aggregate": "AVG(amount)"}],
            "rows": [
                ["north", {"estimate": 12, "plus_minus_95": 3.5, "interval_95": [8.5, 15.5]},
                          {"estimate": 4.25, "plus_minus_95": null}],
                ["south, east", {"estimate": -1, "plus_minus_95": 3.5, "interval_95": [-4.5, 2.5]},
                          {"estimate": null, "plus_minus_95": null}],
            ],
        });
        let (header, rows) = flatten(&body);
        assert_eq!(
            header,
            [
                "region",
                "COUNT(*)",
                "COUNT(*)_plus_minus_95",
                "COUNT(*)_lower_95",
                "COUNT(*)_upper_95",
                "AVG(amount)",
                "AVG(amount)_plus_minus_95",
                "AVG(amount)_lower_95",
                "AVG(amount)_upper_95",
            ]
        );
        assert_eq!(
            rows[0],
            ["north", "12", "3.5", "8.5", "15.5", "4.25", "", "", ""]
        );
        let text = String::from_utf8(to_csv(&body).unwrap()).unwrap();
        // A label with a comma is quoted, not split.
        assert!(
            text.contains("\n\"south, east\",-1,3.5,-4.5,2.5,,,,\n"),
            "{text}"
        );
    }

    #[test]
    fn labels_a_spreadsheet_would_evaluate_are_made_inert_and_numbers_are_not() {
        let body = json!({
            "columns": ["merchant", "COUNT(*)"],
            "aggregates": [{"aggregate": "COUNT(*)"}],
            "rows": [
                ["=HYPERLINK(\"http://x\")", {"estimate": -3, "plus_minus_95": 2.0, "interval_95": [-5.0, -1.0]}],
                ["@sum", {"estimate": 4}], ["+1", {"estimate": 4}], ["-1", {"estimate": 4}],
                ["\tx", {"estimate": 4}], ["cafe", {"estimate": 4}],
            ],
        });
        let (_, rows) = flatten(&body);
        let labels: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(
            labels,
            [
                "'=HYPERLINK(\"http://x\")",
                "'@sum",
                "'+1",
                "'-1",
                "'\tx",
                "cafe"
            ]
        );
        assert_eq!(rows[0][1..], ["-3", "2.0", "-5.0", "-1.0"]);
    }

    #[test]
    fn a_dry_run_is_one_line_per_aggregate() {
        let body = json!({
            "dry_run": true,
            "aggregates": [{"aggregate": "SUM(amount)", "epsilon": 0.25, "plus_minus_95": 40.1}],
        });
        let text = String::from_utf8(to_csv(&body).unwrap()).unwrap();
        assert_eq!(
            text,
            "aggregate,epsilon,plus_minus_95\nSUM(amount),0.25,40.1\n"
        );
    }
}

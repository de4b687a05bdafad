//! `privgate query`: an analyst's client for the gateway's analytics API. Sends one query
//! over HTTPS (`POST <gateway>/analytics/v1/query` by default) with a bearer token and
//! prints the answer as a table (each estimate with its +/- at 95% where one exists), as
//! CSV (the gateway's flat form: estimate and interval columns per aggregate) or as the
//! JSON answer. A query still running after a second shows a spinner with the elapsed time
//! on a terminal; Ctrl-C drops the connection, and the gateway stops the query: nothing is
//! spent unless the answer was already being released (then asking again returns it from
//! the cache, free).

use super::output::{Listing, Output, RULED_STYLE};
use anyhow::{bail, Context};
use bytes::Bytes;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// A query still running after this long gets a spinner: shorter ones finish before a
/// spinner would be legible.
const PROGRESS_AFTER: Duration = Duration::from_secs(1);

/// How long a query may run: the gateway bounds a query's work, this bounds the wait.
const QUERY_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest answer read (a GROUP BY's rows as JSON).
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Arguments of `privgate query`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// The dataset to query.
    #[arg(long)]
    dataset: String,
    /// The query, e.g. "SELECT region, COUNT(*) FROM transactions GROUP BY region".
    sql: String,
    /// Privacy loss to spend on the query (give this or --accuracy).
    #[arg(
        long,
        conflicts_with = "accuracy",
        required_unless_present = "accuracy"
    )]
    epsilon: Option<f64>,
    /// Target +/- at 95% for every COUNT and SUM; the gateway computes the epsilon.
    #[arg(long)]
    accuracy: Option<f64>,
    /// Delta to spend on a GROUP BY over a key column (keys released above a DP
    /// threshold); default: the dataset's configured default. Other queries spend none.
    #[arg(long)]
    delta: Option<f64>,
    /// Ask the cost and the budget left without spending anything.
    #[arg(long)]
    dry_run: bool,
    /// The analytics API's URL.
    #[arg(
        long,
        env = "PRIVGATE_ANALYTICS_URL",
        default_value = "https://localhost:8443/analytics/v1"
    )]
    url: String,
    /// File holding the access token (its first line).
    #[arg(long, env = "PRIVGATE_TOKEN_FILE")]
    token_file: PathBuf,
    /// CA certificate (PEM) the gateway's certificate chains to.
    #[arg(long)]
    ca: PathBuf,
    /// The purpose of use (X-Purpose), when the token carries several.
    #[arg(long)]
    purpose: Option<String>,
    /// How to print the answer: `table` (each estimate with its +/- at 95%, then the spend
    /// and budget), `csv` or `tsv` (estimate and interval columns per aggregate; spend and
    /// budget on stderr), `json` (the gateway's answer as it is).
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

/// Runs `privgate query`.
pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("{}: cannot read", args.token_file.display()))?;
    let token = token.lines().next().unwrap_or("").trim().to_owned();
    // One try: a query spends privacy budget, so a lost answer is not asked again blindly
    // (asking again by hand is free: the gateway answers a repeated query from its cache).
    let client = crate::outbound::OutboundClient::builder()
        .ca(Some(args.ca.clone()))
        .timeout(QUERY_TIMEOUT)
        .max_body(MAX_ANSWER_BYTES)
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let body = json!({
        "dataset": args.dataset,
        "sql": args.sql,
        "epsilon": args.epsilon,
        "accuracy": args.accuracy,
        "delta": args.delta,
        "dry_run": args.dry_run,
    });
    let body = strip_nulls(body);
    let mut request = http::Request::post(format!("{}/query", args.url.trim_end_matches('/')))
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(purpose) = &args.purpose {
        request = request.header("x-purpose", purpose);
    }
    let request = request.body(Bytes::from(body.to_string()))?;
    let exchange = async {
        let answer = client
            .send(request)
            .await
            .context("cannot get an answer from the gateway")?;
        anyhow::Ok((answer.status(), answer.into_body()))
    };
    let (status, bytes) = with_progress(&args.dataset, exchange).await?;
    let answer: Value =
        serde_json::from_slice(&bytes).context("the gateway's answer is not JSON")?;
    if !status.is_success() {
        let error = &answer["error"];
        bail!(
            "{} ({}): {}",
            status.as_u16(),
            error["code"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or("")
        );
    }
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&answer)?),
        Output::Table => print!("{}", render(&answer)),
        // The gateway's own CSV form (`Accept: text/csv`), one writer for both.
        Output::Csv => {
            let csv = crate::analytics::dp::tabular::to_csv(&answer)?;
            print!("{}", String::from_utf8_lossy(&csv));
            eprint!("{}", summary(&answer));
        }
        Output::Tsv => {
            let (header, rows) = crate::analytics::dp::tabular::flatten(&answer);
            let mut listing = Listing::new(header);
            for row in rows {
                listing.push(row.into_iter().map(Value::String).collect());
            }
            listing.print(Output::Tsv)?;
            eprint!("{}", summary(&answer));
        }
    }
    Ok(())
}

/// Runs `exchange`, showing a spinner with the elapsed time on stderr once it has taken
/// `PROGRESS_AFTER` (not drawn when stderr is not a terminal: `cli::progress`); Ctrl-C drops it, which
/// closes the connection and so stops the query at the gateway.
async fn with_progress<T>(
    dataset: &str,
    exchange: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let spinner = super::progress::idle_spinner(format!("querying {dataset} (Ctrl-C cancels)"));
    let show = async {
        tokio::time::sleep(PROGRESS_AFTER).await;
        super::progress::start(&spinner);
        std::future::pending::<()>().await
    };
    let outcome = tokio::select! {
        outcome = exchange => outcome,
        () = show => unreachable!("pending never completes"),
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!(
            "cancelled: the gateway stops the query; nothing is spent unless the answer was already being released (asking again then returns it from the cache)"
        )),
    };
    spinner.finish_and_clear();
    outcome
}

fn strip_nulls(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
    }
    v
}

/// The answer as a table: one line per cell, estimates with `+/- x` at 95%.
pub(super) fn render(answer: &Value) -> String {
    let mut out = if answer["dry_run"] == true {
        render_cost(answer)
    } else {
        render_rows(answer)
    };
    out.push_str(&summary(answer));
    out
}

/// What a query spent (or would cost), the budget left and the note on intervals.
fn summary(answer: &Value) -> String {
    let mut out = if answer["dry_run"] == true {
        String::new()
    } else {
        spent(answer)
    };
    let budget = &answer["budget"];
    out.push_str(&format!(
        "budget left: epsilon {} (dataset, all analysts: {}){}; refreshes at {}\n",
        epsilon(&budget["epsilon_left"]),
        epsilon(&budget["global_epsilon_left"]),
        match (
            budget["delta_left"].as_f64(),
            budget["global_delta_left"].as_f64()
        ) {
            (Some(mine), Some(all)) => format!(", delta {mine:e} (all analysts: {all:e})"),
            _ => String::new(),
        },
        budget["refreshes_at"].as_str().unwrap_or("?")
    ));
    out.push_str(&format!(
        "note: {}\n",
        answer["note"].as_str().unwrap_or("")
    ));
    out
}

/// A dry run: the query's cost and each aggregate's share and interval.
fn render_cost(answer: &Value) -> String {
    let mut out = format!(
        "dry run: this query would cost epsilon {}{}\n",
        epsilon(&answer["epsilon_cost"]),
        delta_part(&answer["delta_cost"], "delta")
    );
    for a in answer["aggregates"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}: epsilon {}, +/- {} at 95%\n",
            a["aggregate"].as_str().unwrap_or(""),
            epsilon(&a["epsilon"]),
            a["plus_minus_95"]
                .as_f64()
                .map_or("(no interval)".into(), |v| format!("{v:.1}"))
        ));
    }
    out
}

/// An answer's rows as an aligned table, estimates with `+/- x` at 95%.
fn render_rows(answer: &Value) -> String {
    let mut listing = Listing::new(
        answer["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().unwrap_or("").to_owned()),
    )
    .with_style(RULED_STYLE);
    for row in answer["rows"].as_array().into_iter().flatten() {
        listing.push(
            row.as_array()
                .into_iter()
                .flatten()
                .map(|v| Value::String(cell(v)))
                .collect(),
        );
    }
    listing.table()
}

/// The key threshold of a keyed answer and what the query spent.
fn spent(answer: &Value) -> String {
    let mut out = String::new();
    if let Some(threshold) = answer["key_threshold"].as_i64() {
        out.push_str(&format!(
            "keys released: only those whose noisy count reached {threshold}\n"
        ));
    }
    out.push_str(&format!(
        "epsilon spent {}{}{}\n",
        epsilon(&answer["epsilon_spent"]),
        delta_part(&answer["delta_spent"], "delta spent"),
        if answer["cached"] == true {
            " (cached answer)"
        } else {
            ""
        }
    ));
    out
}

/// `, <label> <delta>` where a query spends delta (keyed GROUP BY), else nothing.
fn delta_part(v: &Value, label: &str) -> String {
    match v.as_f64() {
        Some(d) if d > 0.0 => format!(", {label} {d:e}"),
        _ => String::new(),
    }
}

/// An epsilon to six decimals, trailing zeros dropped (`0.5`, `0.181532`).
fn epsilon(v: &Value) -> String {
    match v.as_f64() {
        Some(e) => {
            let text = format!("{e:.6}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
        None => "?".into(),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            // `get`, not indexing: a Map's index panics on a missing key.
            let estimate = match o.get("estimate") {
                Some(Value::Number(n)) if n.is_f64() => {
                    format!("{:.2}", n.as_f64().unwrap_or(0.0))
                }
                None | Some(Value::Null) => "n/a".into(),
                Some(other) => other.to_string(),
            };
            match o.get("plus_minus_95").and_then(Value::as_f64) {
                Some(pm) => format!("{estimate} +/- {pm:.1}"),
                None => estimate,
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn a_cell_without_an_estimate_renders_as_n_a_rather_than_panicking() {
        let answer = json!({
            "columns": ["region", "COUNT(*)"],
            "rows": [["north", {"plus_minus_95": 3.0}], ["south", {"estimate": 7, "plus_minus_95": 3.0}]],
        });
        let table = render(&answer);
        assert!(table.contains("north  | n/a +/- 3.0"), "{table}");
        assert!(table.contains("south  | 7 +/- 3.0"), "{table}");
    }
}

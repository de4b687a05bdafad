//! Pushdown: the SQL the source database runs, so that only truncated, clamped, aggregated
//! values leave it (or, for quantiles, truncated and clamped values).
//!
//! ```sql
//! WITH kept AS (
//!   SELECT <columns>, ROW_NUMBER() OVER (PARTITION BY "unit" ORDER BY "order") AS privgate_rn
//!   FROM "table"
//!   WHERE <analyst predicates, as bind parameters> [AND <unit has an active consent>]
//! )
//! SELECT CAST("g" AS TEXT), ..., COUNT(*), CAST(COALESCE(SUM(<clamp(v)>), 0) AS BIGINT), ...
//! FROM kept WHERE privgate_rn <= <max_rows_per_unit> GROUP BY "g", ...
//! ```
//!
//! A grouped query truncates by the dataset's GROUP BY bounds first (`contribution`): rows
//! whose group value is NULL (or, for a categorical column, not a declared category) are
//! dropped, then
//!
//! ```sql
//! privgate_cells AS (SELECT ..., ROW_NUMBER() OVER (PARTITION BY "unit", "g"... ORDER BY "order") AS privgate_rg,
//!                           MIN("order") OVER (PARTITION BY "unit", "g"...) AS privgate_first ...),
//! privgate_groups AS (SELECT *, DENSE_RANK() OVER (PARTITION BY privgate_unit ORDER BY privgate_first, "g"...) AS privgate_gr
//!                     FROM privgate_cells WHERE privgate_rg <= <max_rows_per_group>),
//! kept AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY privgate_unit ORDER BY privgate_ord) AS privgate_rn
//!          FROM privgate_groups WHERE privgate_gr <= <max_groups_per_unit>)
//! ```
//!
//! i.e. each unit keeps its first `max_rows_per_group` rows per group, its first
//! `max_groups_per_unit` groups (by each group's first row; ties, possible only if
//! `truncate_order` is not unique, broken by the group values so the count holds anyway),
//! then its first `max_rows_per_unit` rows of those. Steps that provably keep every row
//! are left out (see `GroupSteps`); `1` stands in for their window.
//!
//! Truncation is deterministic (the first rows of each unit in `truncate_order`); a NULL value
//! is read as 0, then clamped. Identifiers come from the validated config only (letters,
//! digits, `_`, quoted); the analyst's literals are always bind parameters. This moves
//! truncation and clamping out of OpenDP, so a differential test checks them against
//! OpenDP's own transformations (`tests.rs`).

use super::contribution;
use super::query::{Literal, Predicate, Query};
use crate::config::dataset::{ColumnConfig, DatasetConfig};
use sqlx::{AnyPool, Row};
use std::collections::HashMap;

/// A statement and its bind parameters, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushdown {
    /// SQL text with `$n` placeholders.
    pub sql: String,
    /// Values for the placeholders.
    pub binds: Vec<Literal>,
}

/// Exact (not yet noised) aggregates per GROUP BY cell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Per cell (its categories): row count and the clamped sum of each summed column.
    pub cells: HashMap<Vec<String>, (i64, Vec<i64>)>,
    /// The summed columns, in the order of the sums above.
    pub sum_columns: Vec<String>,
}

/// Restricts rows to units with an active consent for `purpose` at `now_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentFilter {
    /// The purpose (lower-case letters, digits, `_`: validated in config).
    pub purpose: String,
    /// The moment consent must be in force at.
    pub now_ms: i64,
}

pub(super) fn quote(identifier: &str) -> String {
    // Identifiers are validated as [A-Za-z0-9_]; quoting keeps reserved words usable.
    format!("\"{identifier}\"")
}

fn clamp_expr(column: &str, (lower, upper): (i64, i64)) -> String {
    let v = format!("COALESCE({}, 0)", quote(column));
    format!("CASE WHEN {v} < {lower} THEN {lower} WHEN {v} > {upper} THEN {upper} ELSE {v} END")
}

/// The columns SUM/AVG read, each once, in first-use order.
pub fn sum_columns(query: &Query) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for aggregate in query.aggregates() {
        if let super::query::Aggregate::Sum(c) | super::query::Aggregate::Avg(c) = aggregate {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
    }
    columns
}

pub(super) fn bounds(dataset: &DatasetConfig, column: &str) -> (i64, i64) {
    match dataset.columns.get(column) {
        Some(ColumnConfig::Integer { lower, upper }) => (*lower, *upper),
        _ => (0, 0),
    }
}

/// The `kept` CTE: filtered (and consent-filtered) rows numbered within their unit.
fn kept(
    dataset: &DatasetConfig,
    query: &Query,
    consent: Option<&ConsentFilter>,
    binds: &mut Vec<Literal>,
) -> String {
    let mut select: Vec<String> = read_columns(query).iter().map(|c| quote(c)).collect();
    let mut conditions: Vec<String> = query
        .filters
        .iter()
        .map(|(column, predicate)| condition(column, predicate, binds))
        .collect();
    let steps = contribution::group_bounds(dataset)
        .filter(|_| !query.group_by.is_empty())
        .map(|b| group_steps(dataset, query, b));
    match &steps {
        Some(steps) => group_windows(dataset, query, steps, binds, &mut select, &mut conditions),
        None => select.push(format!(
            "ROW_NUMBER() OVER (PARTITION BY {} ORDER BY {}) AS privgate_rn",
            quote(&dataset.privacy_unit),
            quote(&dataset.truncate_order)
        )),
    }
    if let Some(consent) = consent {
        conditions.push(consent_condition(dataset, consent, binds));
    }
    let filter = match conditions.is_empty() {
        true => String::new(),
        false => format!(" WHERE {}", conditions.join(" AND ")),
    };
    let from = format!(
        "SELECT {} FROM {}{filter}",
        select.join(", "),
        quote(&dataset.source.table)
    );
    match steps {
        None => format!("WITH kept AS ({from})"),
        Some(steps) => grouped_with(&from, query, &steps),
    }
}

/// The columns the query reads: GROUP BY, WHERE and aggregated columns, each once.
fn read_columns(query: &Query) -> Vec<String> {
    let mut columns: Vec<String> = query.group_by.clone();
    for (c, _) in &query.filters {
        if !columns.contains(c) {
            columns.push(c.clone());
        }
    }
    for a in query.aggregates() {
        if let super::query::Aggregate::Sum(c)
        | super::query::Aggregate::Avg(c)
        | super::query::Aggregate::Quantile(c, _) = a
        {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
    }
    columns
}

/// Only units with a consent in force for the purpose (a subquery on the store's table).
fn consent_condition(
    dataset: &DatasetConfig,
    consent: &ConsentFilter,
    binds: &mut Vec<Literal>,
) -> String {
    format!(
        "CAST({} AS TEXT) IN ({})",
        quote(&dataset.privacy_unit),
        consenting_subjects(consent, binds)
    )
}

/// The subjects with a consent in force for the purpose at the filter's moment.
fn consenting_subjects(consent: &ConsentFilter, binds: &mut Vec<Literal>) -> String {
    binds.push(Literal::Int(consent.now_ms));
    let now = binds.len();
    binds.push(Literal::Text(format!(
        "%\"{}\"%",
        consent.purpose.replace('_', "\\_")
    )));
    let pattern = binds.len();
    format!(
        "SELECT subject FROM consents WHERE (revoked_at IS NULL OR revoked_at > ${now}) \
         AND (expires_at IS NULL OR expires_at > ${now}) AND purposes LIKE ${pattern} ESCAPE '\\'"
    )
}

/// The statement listing the subjects `consent` lets be counted (for the snapshot engine,
/// which filters its copy by them; the same condition as the pushdown's subquery).
pub fn consenting_sql(consent: &ConsentFilter) -> Pushdown {
    let mut binds = Vec::new();
    let sql = consenting_subjects(consent, &mut binds);
    Pushdown { sql, binds }
}

/// Runs a statement whose rows are one text column.
pub async fn run_texts(pool: &AnyPool, pushdown: &Pushdown) -> Result<Vec<String>, sqlx::Error> {
    let rows = bound(pushdown).fetch_all(pool).await?;
    rows.iter().map(|r| r.try_get::<String, _>(0)).collect()
}

/// A grouped query's row filter (rows in no group are dropped: NULL, or not a declared
/// category) and the windows its truncation steps read.
fn group_windows(
    dataset: &DatasetConfig,
    query: &Query,
    steps: &GroupSteps,
    binds: &mut Vec<Literal>,
    select: &mut Vec<String>,
    conditions: &mut Vec<String>,
) {
    for g in &query.group_by {
        conditions.push(format!("{} IS NOT NULL", quote(g)));
        if let Some(ColumnConfig::Categorical { categories }) = dataset.columns.get(g) {
            let list: Vec<Literal> = categories.iter().cloned().map(Literal::Text).collect();
            conditions.push(condition(g, &Predicate::In(false, list), binds));
        }
    }
    let unit = quote(&dataset.privacy_unit);
    let order = quote(&dataset.truncate_order);
    let cell = cell_columns(query);
    select.push(format!("{unit} AS privgate_unit, {order} AS privgate_ord"));
    if steps.rows_per_group.is_some() {
        select.push(format!(
            "ROW_NUMBER() OVER (PARTITION BY {unit}, {cell} ORDER BY {order}) AS privgate_rg"
        ));
    }
    if steps.groups.is_some() {
        select.push(format!(
            "MIN({order}) OVER (PARTITION BY {unit}, {cell}) AS privgate_first"
        ));
    }
}

/// The grouped query's GROUP BY columns, quoted, comma-separated.
fn cell_columns(query: &Query) -> String {
    let cell: Vec<String> = query.group_by.iter().map(|g| quote(g)).collect();
    cell.join(", ")
}

/// The steps of the grouped truncation that can drop a row; the others are left out (each
/// costs the database a sort of the rows) because they provably keep every row:
/// - rows per group: a unit's first `max_rows_per_unit` rows are each within the first
///   `max_rows_per_unit` of their group, so with `max_rows_per_group >= max_rows_per_unit`
///   the per-unit step alone keeps the same rows;
/// - groups: with categories only, a unit touches at most as many groups as there are
///   cells (every combination of declared categories);
/// - rows per unit: after the other two a unit has at most groups x rows per group rows.
struct GroupSteps {
    rows_per_group: Option<u32>,
    groups: Option<u32>,
    rows_per_unit: bool,
}

fn group_steps(dataset: &DatasetConfig, query: &Query, b: contribution::GroupBounds) -> GroupSteps {
    let m = dataset.max_rows_per_unit;
    // None: a key column, whose number of values is not declared.
    let cells = query
        .group_by
        .iter()
        .try_fold(1u64, |n, g| match dataset.columns.get(g) {
            Some(ColumnConfig::Categorical { categories }) => {
                Some(n.saturating_mul(categories.len() as u64))
            }
            _ => None,
        });
    let groups = cells.map_or(u64::from(b.groups), |c| c.min(u64::from(b.groups)));
    let rows_per_group = (b.rows_per_group < m).then_some(b.rows_per_group);
    GroupSteps {
        rows_per_group,
        groups: (groups < cells.unwrap_or(u64::MAX)).then_some(b.groups),
        rows_per_unit: rows_per_group
            .is_none_or(|r| groups.saturating_mul(u64::from(r)) > u64::from(m)),
    }
}

/// The CTEs after `privgate_cells` (the filtered rows with their windows): the group rank
/// and the row number within the unit, or constants for the steps left out.
fn grouped_with(from: &str, query: &Query, steps: &GroupSteps) -> String {
    let keep_rows = steps
        .rows_per_group
        .map_or(String::new(), |r| format!(" WHERE privgate_rg <= {r}"));
    let rank = match steps.groups {
        Some(_) => format!(
            "DENSE_RANK() OVER (PARTITION BY privgate_unit ORDER BY privgate_first, {})",
            cell_columns(query)
        ),
        None => "1".into(),
    };
    let keep_groups = steps
        .groups
        .map_or(String::new(), |g| format!(" WHERE privgate_gr <= {g}"));
    let number = match steps.rows_per_unit {
        true => "ROW_NUMBER() OVER (PARTITION BY privgate_unit ORDER BY privgate_ord)",
        false => "1",
    };
    format!(
        "WITH privgate_cells AS ({from}), \
         privgate_groups AS (SELECT *, {rank} AS privgate_gr FROM privgate_cells{keep_rows}), \
         kept AS (SELECT *, {number} AS privgate_rn FROM privgate_groups{keep_groups})"
    )
}

fn condition(column: &str, predicate: &Predicate, binds: &mut Vec<Literal>) -> String {
    let mut bind = |l: &Literal| {
        binds.push(l.clone());
        format!("${}", binds.len())
    };
    let c = quote(column);
    match predicate {
        Predicate::Compare(op, l) => format!("{c} {op} {}", bind(l)),
        Predicate::In(negated, list) => {
            let list: Vec<String> = list.iter().map(&mut bind).collect();
            let not = if *negated { "NOT " } else { "" };
            format!("{c} {not}IN ({})", list.join(", "))
        }
        Predicate::Between(negated, low, high) => {
            let not = if *negated { "NOT " } else { "" };
            format!("{c} {not}BETWEEN {} AND {}", bind(low), bind(high))
        }
    }
}

/// The statement computing the query's exact counts and clamped sums per cell.
pub fn tally_sql(
    dataset: &DatasetConfig,
    query: &Query,
    consent: Option<&ConsentFilter>,
) -> Pushdown {
    let mut binds = Vec::new();
    let with = kept(dataset, query, consent, &mut binds);
    let mut select: Vec<String> = query
        .group_by
        .iter()
        .map(|g| format!("CAST({} AS TEXT)", quote(g)))
        .collect();
    select.push("COUNT(*)".into());
    for column in sum_columns(query) {
        select.push(format!(
            "CAST(COALESCE(SUM({}), 0) AS BIGINT)",
            clamp_expr(&column, bounds(dataset, &column))
        ));
    }
    let group_by = match query.group_by.is_empty() {
        true => String::new(),
        false => format!(
            " GROUP BY {}",
            query
                .group_by
                .iter()
                .map(|g| quote(g))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Pushdown {
        sql: format!(
            "{with} SELECT {} FROM kept WHERE privgate_rn <= {}{group_by}",
            select.join(", "),
            dataset.max_rows_per_unit
        ),
        binds,
    }
}

/// The statement listing the truncated, clamped values of `column` (for quantiles).
pub fn values_sql(
    dataset: &DatasetConfig,
    query: &Query,
    column: &str,
    consent: Option<&ConsentFilter>,
) -> Pushdown {
    let mut binds = Vec::new();
    let with = kept(dataset, query, consent, &mut binds);
    Pushdown {
        sql: format!(
            "{with} SELECT CAST({} AS BIGINT) FROM kept WHERE privgate_rn <= {}",
            clamp_expr(column, bounds(dataset, column)),
            dataset.max_rows_per_unit
        ),
        binds,
    }
}

fn bound<'q>(
    pushdown: &'q Pushdown,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(&pushdown.sql);
    for b in &pushdown.binds {
        q = match b {
            Literal::Int(v) => q.bind(*v),
            Literal::Text(v) => q.bind(v.as_str()),
        };
    }
    q
}

/// Runs a tally statement: one row per non-empty cell.
pub async fn run_tally(
    pool: &AnyPool,
    pushdown: &Pushdown,
    group_columns: usize,
    sum_columns: Vec<String>,
) -> Result<Tally, sqlx::Error> {
    let rows = bound(pushdown).fetch_all(pool).await?;
    let mut cells = HashMap::new();
    for row in rows {
        let mut key = Vec::with_capacity(group_columns);
        for i in 0..group_columns {
            // A NULL group value is in no declared category: it is dropped like any other.
            match row.try_get::<Option<String>, _>(i)? {
                Some(v) => key.push(v),
                None => break,
            }
        }
        if key.len() < group_columns {
            continue;
        }
        let count: i64 = row.try_get(group_columns)?;
        let sums = (0..sum_columns.len())
            .map(|j| row.try_get::<i64, _>(group_columns + 1 + j))
            .collect::<Result<Vec<_>, _>>()?;
        cells.insert(key, (count, sums));
    }
    Ok(Tally { cells, sum_columns })
}

/// Runs a values statement.
pub async fn run_values(pool: &AnyPool, pushdown: &Pushdown) -> Result<Vec<i64>, sqlx::Error> {
    use futures_util::TryStreamExt;
    // Streamed: every truncated row of the dataset may come back (a quantile's input), and
    // holding them all as rows first would take many times the memory of the integers.
    let mut values = Vec::new();
    let mut rows = bound(pushdown).fetch(pool);
    while let Some(row) = rows.try_next().await? {
        values.push(row.try_get::<i64, _>(0)?);
    }
    Ok(values)
}

//! One query over a [`Snapshot`]: the exact tally (and quantile rows) the pushdown's SQL
//! computes, by one pass over the copy's units in truncation order.
//!
//! The rules are the pushdown's, restated for rows already in order (see `pushdown` for why
//! each bounds a unit's contribution):
//! - a row passes the WHERE filters (a NULL cell passes no predicate, as in SQL), and its
//!   unit has a consent in force when the dataset asks for one;
//! - ungrouped (or no GROUP BY bounds declared): a unit's first `max_rows_per_unit` passing
//!   rows are kept;
//! - GROUP BY with bounds: rows in no group (a NULL, or a value outside the declared
//!   categories) are dropped first; then a unit's first `max_rows_per_group` rows in each
//!   group, its first `max_groups_per_unit` groups ranked by their first row's order, and of
//!   what is left its first `max_rows_per_unit` rows.
//!
//! All three grouped steps always run here: the pushdown leaves out those that provably keep
//! every row (each costs it a sort), which changes nothing in what is kept. The
//! differential tests compare both engines' tallies on the same rows.

use super::contribution;
use super::pushdown::{bounds, sum_columns, Tally};
use super::query::{Literal, Predicate, Query};
use super::snapshot::{Column, Snapshot, NULL_CODE};
use super::AnalyticsError;
use crate::config::dataset::{ColumnConfig, DatasetConfig};
use std::collections::{HashMap, HashSet};

/// Most cells whose totals are kept in a table indexed by cell number.
const DENSE_CELLS: usize = 1 << 16;

/// A WHERE predicate (or a grouped query's "in a group" condition) ready to test rows.
enum Test<'s> {
    /// A text column: whether each dictionary entry passes (NULL never does).
    Text { codes: &'s [u32], passes: Vec<bool> },
    /// An integer column.
    Integer {
        values: &'s [i64],
        present: &'s [bool],
        predicate: &'s Predicate,
    },
}

impl Test<'_> {
    fn passes(&self, row: usize) -> bool {
        match self {
            Test::Text { codes, passes } => match codes[row] {
                NULL_CODE => false,
                code => passes[code as usize],
            },
            Test::Integer {
                values,
                present,
                predicate,
            } => present[row] && holds(predicate, &values[row]),
        }
    }
}

/// Whether `value` satisfies `predicate` (literals of the column's type: the parser's rule).
fn holds<T: Ord + ?Sized>(predicate: &Predicate, value: &T) -> bool
where
    Literal: AsValue<T>,
{
    match predicate {
        Predicate::Compare(op, literal) => match literal.as_value() {
            None => false,
            Some(l) => match *op {
                "=" => value == l,
                "<>" => value != l,
                "<" => value < l,
                "<=" => value <= l,
                ">" => value > l,
                ">=" => value >= l,
                _ => false,
            },
        },
        Predicate::In(negated, list) => {
            let found = list.iter().any(|l| l.as_value() == Some(value));
            found != *negated
        }
        Predicate::Between(negated, low, high) => match (low.as_value(), high.as_value()) {
            (Some(low), Some(high)) => (low <= value && value <= high) != *negated,
            _ => false,
        },
    }
}

/// A literal as a value of one column type (None: the other type).
trait AsValue<T: ?Sized> {
    fn as_value(&self) -> Option<&T>;
}

impl AsValue<i64> for Literal {
    fn as_value(&self) -> Option<&i64> {
        match self {
            Literal::Int(v) => Some(v),
            Literal::Text(_) => None,
        }
    }
}

impl AsValue<str> for Literal {
    fn as_value(&self) -> Option<&str> {
        match self {
            Literal::Text(v) => Some(v),
            Literal::Int(_) => None,
        }
    }
}

fn column<'s>(snapshot: &'s Snapshot, name: &str) -> Result<&'s Column, AnalyticsError> {
    snapshot
        .columns
        .get(name)
        .ok_or_else(|| AnalyticsError::Internal(format!("column `{name}` is not in the snapshot")))
}

fn test<'s>(
    snapshot: &'s Snapshot,
    name: &str,
    predicate: &'s Predicate,
) -> Result<Test<'s>, AnalyticsError> {
    Ok(match column(snapshot, name)? {
        Column::Integer { values, present } => Test::Integer {
            values,
            present,
            predicate,
        },
        Column::Text { codes, dictionary } => Test::Text {
            codes,
            passes: dictionary
                .iter()
                .map(|v| holds(predicate, v.as_str()))
                .collect(),
        },
    })
}

/// The GROUP BY columns' codes, combined into one cell number (a mixed radix over the
/// dictionaries), and back.
struct Cells<'s> {
    columns: Vec<(&'s [u32], &'s [String])>,
}

impl<'s> Cells<'s> {
    fn new(snapshot: &'s Snapshot, query: &Query) -> Result<Self, AnalyticsError> {
        let mut columns = Vec::new();
        for g in &query.group_by {
            match column(snapshot, g)? {
                Column::Text { codes, dictionary } => columns.push((&codes[..], &dictionary[..])),
                Column::Integer { .. } => {
                    return Err(AnalyticsError::Internal(format!(
                        "GROUP BY on integer column `{g}`"
                    )))
                }
            }
        }
        Ok(Self { columns })
    }

    /// How many cell numbers there are (None: more than a u128 counts).
    fn count(&self) -> Option<usize> {
        self.columns.iter().try_fold(1usize, |n, (_, dictionary)| {
            n.checked_mul(dictionary.len() + 1)
        })
    }

    /// The row's cell; None if a GROUP BY value is NULL (in no group).
    fn of(&self, row: usize) -> Option<u128> {
        let mut cell = 0u128;
        for (codes, dictionary) in &self.columns {
            let code = codes[row];
            if code == NULL_CODE {
                return None;
            }
            cell = cell * (dictionary.len() as u128 + 1) + u128::from(code);
        }
        Some(cell)
    }

    /// The GROUP BY values of a cell, as the pushdown returns them (text).
    fn values(&self, mut cell: u128) -> Vec<String> {
        let mut values = Vec::with_capacity(self.columns.len());
        for (_, dictionary) in self.columns.iter().rev() {
            let radix = dictionary.len() as u128 + 1;
            values.push(dictionary[(cell % radix) as usize].clone());
            cell /= radix;
        }
        values.reverse();
        values
    }
}

/// The rows a query keeps, in order: what every aggregate of it reads.
fn kept_rows(
    snapshot: &Snapshot,
    config: &DatasetConfig,
    query: &Query,
    consenting: Option<&HashSet<String>>,
    cells: &Cells,
    mut keep: impl FnMut(usize, Option<u128>),
) -> Result<(), AnalyticsError> {
    let mut tests = Vec::new();
    for (name, predicate) in &query.filters {
        tests.push(test(snapshot, name, predicate)?);
    }
    let bounded = contribution::group_bounds(config).filter(|_| !query.group_by.is_empty());
    // A grouped, bounded query first drops rows in no group (the pushdown's WHERE): a NULL
    // fails every test, a categorical value must be a declared category.
    let in_group: Vec<(&String, Predicate)> = match bounded {
        None => Vec::new(),
        Some(_) => query
            .group_by
            .iter()
            .filter_map(|g| match config.columns.get(g) {
                Some(ColumnConfig::Categorical { categories }) => Some((
                    g,
                    Predicate::In(
                        false,
                        categories.iter().cloned().map(Literal::Text).collect(),
                    ),
                )),
                _ => None,
            })
            .collect(),
    };
    for (name, predicate) in &in_group {
        tests.push(test(snapshot, name, predicate)?);
    }
    let passes = |row: usize| tests.iter().all(|t| t.passes(row));
    let max_rows = config.max_rows_per_unit as usize;
    // Per unit, reused: its passing rows within their group's bound (row, index into
    // `groups`), and the groups it touches (cell, first row's order rank, rows, kept).
    let mut unit_rows: Vec<(usize, usize)> = Vec::new();
    let mut groups: Vec<UnitGroup> = Vec::new();
    let mut ranking: Vec<usize> = Vec::new();
    for (unit, id) in snapshot.units.iter().enumerate() {
        if consenting.is_some_and(|c| !c.contains(id)) {
            continue;
        }
        let rows = snapshot.starts[unit] as usize..snapshot.starts[unit + 1] as usize;
        let Some(b) = bounded else {
            let mut n = 0;
            for row in rows {
                if passes(row) {
                    keep(row, cells.of(row));
                    n += 1;
                    if n == max_rows {
                        break;
                    }
                }
            }
            continue;
        };
        // Rows per group: the unit's first `rows_per_group` rows in each group. A unit
        // touches few groups, so they are found by a linear search.
        unit_rows.clear();
        groups.clear();
        for row in rows {
            if !passes(row) {
                continue;
            }
            let Some(cell) = cells.of(row) else { continue };
            let g = match groups.iter().position(|g| g.cell == cell) {
                Some(g) => g,
                None => {
                    groups.push(UnitGroup {
                        cell,
                        first: snapshot.order_rank[row],
                        rows: 0,
                        kept: false,
                    });
                    groups.len() - 1
                }
            };
            groups[g].rows += 1;
            if groups[g].rows <= b.rows_per_group {
                unit_rows.push((row, g));
            }
        }
        // Groups: the unit's first `groups` groups by their first row's order, ties by
        // value (the pushdown's DENSE_RANK order; values are compared only on a tie).
        ranking.clear();
        ranking.extend(0..groups.len());
        if groups.len() > b.groups as usize {
            ranking.sort_by(|&x, &y| {
                let (x, y) = (&groups[x], &groups[y]);
                x.first
                    .cmp(&y.first)
                    .then_with(|| cells.values(x.cell).cmp(&cells.values(y.cell)))
            });
        }
        for &g in ranking.iter().take(b.groups as usize) {
            groups[g].kept = true;
        }
        // Rows per unit, over what the two steps left.
        let mut n = 0;
        for &(row, g) in &unit_rows {
            if groups[g].kept {
                keep(row, Some(groups[g].cell));
                n += 1;
                if n == max_rows {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// A group one unit's rows fall in, while that unit is scanned.
struct UnitGroup {
    cell: u128,
    /// Order rank of the unit's first row in it.
    first: u32,
    /// The unit's passing rows in it so far.
    rows: u32,
    /// Among the unit's first `max_groups_per_unit` groups.
    kept: bool,
}

/// A clamped integer column's values (NULL counts as 0, then clamped: the pushdown's rule).
fn clamped<'s>(
    snapshot: &'s Snapshot,
    config: &DatasetConfig,
    name: &str,
) -> Result<impl Fn(usize) -> i64 + 's, AnalyticsError> {
    let (lower, upper) = bounds(config, name);
    match column(snapshot, name)? {
        Column::Integer { values, present } => Ok(move |row: usize| {
            let v = if present[row] { values[row] } else { 0 };
            v.clamp(lower, upper)
        }),
        Column::Text { .. } => Err(AnalyticsError::Internal(format!(
            "`{name}` is not an integer column"
        ))),
    }
}

impl Snapshot {
    /// The exact counts and clamped sums per cell, as `pushdown::tally_sql` computes them.
    pub fn tally(
        &self,
        config: &DatasetConfig,
        query: &Query,
        consenting: Option<&HashSet<String>>,
    ) -> Result<Tally, AnalyticsError> {
        let sum_columns = sum_columns(query);
        let sums = sum_columns
            .iter()
            .map(|c| clamped(self, config, c))
            .collect::<Result<Vec<_>, _>>()?;
        let cells = Cells::new(self, query)?;
        // Totals per cell: a table indexed by cell number while the cells are few (every
        // categorical GROUP BY, a key column of moderate cardinality), a map beyond.
        let mut dense: Vec<(i64, Vec<i64>)> = match cells.count() {
            Some(n) if n <= DENSE_CELLS => vec![(0, vec![0; sums.len()]); n],
            _ => Vec::new(),
        };
        let mut sparse: HashMap<u128, (i64, Vec<i64>)> = HashMap::new();
        let mut ungrouped = (0i64, vec![0i64; sums.len()]);
        let grouped = !query.group_by.is_empty();
        kept_rows(self, config, query, consenting, &cells, |row, cell| {
            let entry = match (grouped, cell) {
                (false, _) => &mut ungrouped,
                // A NULL GROUP BY value is in no cell: kept (it used up the unit's quota)
                // but counted nowhere, as the pushdown drops NULL keys.
                (true, None) => return,
                (true, Some(cell)) if !dense.is_empty() => &mut dense[cell as usize],
                (true, Some(cell)) => sparse
                    .entry(cell)
                    .or_insert_with(|| (0, vec![0; sums.len()])),
            };
            entry.0 += 1;
            for (total, value) in entry.1.iter_mut().zip(&sums) {
                *total += value(row);
            }
        })?;
        // Ungrouped, SQL's aggregate row exists even over no rows; grouped, only cells
        // with rows have one.
        let mut out = HashMap::new();
        if !grouped {
            out.insert(Vec::new(), ungrouped);
        }
        let dense = dense.into_iter().enumerate().map(|(c, t)| (c as u128, t));
        for (cell, totals) in dense.chain(sparse).filter(|(_, t)| t.0 > 0) {
            out.insert(cells.values(cell), totals);
        }
        Ok(Tally {
            cells: out,
            sum_columns,
        })
    }

    /// The truncated, clamped values of `column` (for quantiles), as `pushdown::values_sql`.
    pub fn values(
        &self,
        config: &DatasetConfig,
        query: &Query,
        column: &str,
        consenting: Option<&HashSet<String>>,
    ) -> Result<Vec<i64>, AnalyticsError> {
        let value = clamped(self, config, column)?;
        let cells = Cells::new(self, query)?;
        let mut values = Vec::new();
        kept_rows(self, config, query, consenting, &cells, |row, _| {
            values.push(value(row))
        })?;
        Ok(values)
    }
}

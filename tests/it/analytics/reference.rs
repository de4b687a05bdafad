//! The truncation privgate pushes into the database, restated in Rust, and OpenDP's own
//! transformations applied to the rows it keeps: the reference the pushed-down SQL is
//! checked against (engine.rs, grouping.rs).

use super::engine::{GroupOf, Row, REGIONS};
use std::collections::HashMap;

/// The truncation privgate pushes into the database, restated (OpenDP has no per-unit
/// truncation outside its Polars front end, and per-group truncation only there too, so
/// the rule is restated here rather than taken from OpenDP). Each unit's rows in id order;
/// a grouped query (`groups`: max groups per unit, max rows per group, the row's group)
/// drops rows without a group, keeps the first `r` rows of each group, then the first `g`
/// groups by their first row; then every query keeps the unit's first `m` rows.
pub(super) fn truncate<'r>(
    rows: &'r [Row],
    keep: &dyn Fn(&Row) -> bool,
    m: usize,
    groups: Option<(usize, usize, GroupOf)>,
) -> Vec<&'r Row> {
    let mut by_unit: HashMap<&str, Vec<&Row>> = HashMap::new();
    for row in rows.iter().filter(|r| keep(r)) {
        if groups.is_some_and(|(_, _, group)| group(row).is_none()) {
            continue;
        }
        by_unit.entry(row.1.as_str()).or_default().push(row);
    }
    let mut kept = Vec::new();
    for mut unit_rows in by_unit.into_values() {
        unit_rows.sort_by_key(|r| r.0);
        if let Some((g, r, group)) = groups {
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut first: Vec<(i64, String)> = Vec::new();
            unit_rows.retain(|row| {
                let key = group(row).unwrap_or_default();
                let n = seen.entry(key.clone()).or_insert(0);
                if *n == 0 {
                    first.push((row.0, key));
                }
                *n += 1;
                *n <= r
            });
            first.sort();
            let chosen: Vec<String> = first.into_iter().take(g).map(|(_, k)| k).collect();
            unit_rows.retain(|row| chosen.contains(&group(row).unwrap_or_default()));
        }
        kept.extend(unit_rows.into_iter().take(m));
    }
    kept
}

/// A row's region if it is a declared one (the group a categorical GROUP BY puts it in).
pub(super) fn declared_region(row: &Row) -> Option<String> {
    row.2.filter(|r| REGIONS.contains(r)).map(str::to_owned)
}

/// OpenDP's side: rows truncated as restated above, then OpenDP's count-by-categories and
/// clamp-then-sum per region, and the clamped values of the ungrouped truncation.
pub(super) fn reference(
    rows: &[Row],
    (m, g, r): (usize, usize, usize),
    filter: &dyn Fn(&Row) -> bool,
) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    use opendp::domains::{AtomDomain, VectorDomain};
    use opendp::metrics::{L1Distance, SymmetricDistance};
    use opendp::transformations::{make_clamp, make_count_by_categories, make_sum};
    let kept = truncate(rows, filter, m, Some((g, r, &declared_region)));
    let categories: Vec<String> = ["north", "south", "east"].map(String::from).to_vec();
    let keys: Vec<String> = kept
        .iter()
        .map(|r| r.2.unwrap_or("<null>").to_owned())
        .collect();
    let counts = make_count_by_categories::<L1Distance<i64>, String, i64>(
        VectorDomain::new(AtomDomain::default()),
        SymmetricDistance,
        categories.clone(),
        false,
    )
    .unwrap()
    .invoke(&keys)
    .unwrap();
    let clamp = make_clamp(
        VectorDomain::new(AtomDomain::<i64>::default()),
        SymmetricDistance,
        (-10, 100),
    )
    .unwrap();
    let sum = make_sum(clamp.output_domain.clone(), clamp.output_metric.clone()).unwrap();
    let sums = categories
        .iter()
        .map(|c| {
            let values: Vec<i64> = kept
                .iter()
                .filter(|r| r.2 == Some(c.as_str()))
                .map(|r| r.3.unwrap_or(0))
                .collect();
            sum.invoke(&clamp.invoke(&values).unwrap()).unwrap()
        })
        .collect();
    let plain = truncate(rows, filter, m, None);
    let mut clamped: Vec<i64> = clamp
        .invoke(&plain.iter().map(|r| r.3.unwrap_or(0)).collect())
        .unwrap();
    clamped.sort();
    (counts, sums, clamped)
}

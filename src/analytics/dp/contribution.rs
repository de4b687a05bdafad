//! How much one privacy unit may contribute to a GROUP BY answer, and the delta budgets
//! that releasing keys found in the data needs.
//!
//! The bounds are per dataset, not per column: they bound the *cells* of whatever GROUP BY
//! a query asks for (one column, or a combination of columns), so a query grouping on two
//! columns is bounded as tightly as one grouping on one. Declaring them per column would
//! need a rule to combine them for multi-column groups (a product of group counts, a
//! minimum of row counts) that is looser than what the data owner can state directly.
//!
//! ```toml
//! max_rows_per_unit = 20      # rows one unit contributes in all (ungrouped queries too)
//! max_groups_per_unit = 3     # GROUP BY cells one unit's rows may fall in
//! max_rows_per_group = 5      # rows one unit contributes to any one cell
//! ```
//!
//! The database enforces them (`pushdown`): a unit keeps its first `max_rows_per_group`
//! rows in each cell, then its first `max_groups_per_unit` cells (ordered by each cell's
//! first row in `truncate_order`), then its first `max_rows_per_unit` of the rows left. One
//! unit then changes at most `min(max_rows_per_unit, groups x rows per group)` rows, in at
//! most `max_groups_per_unit` cells, at most `max_rows_per_group` in any one: the distances
//! the sensitivities are read at (`mechanism`, `threshold`).

use crate::config::dataset::DatasetConfig;

/// The GROUP BY bounds of a dataset, once declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupBounds {
    /// Most cells one unit's rows fall in.
    pub groups: u32,
    /// Most rows one unit contributes to one cell.
    pub rows_per_group: u32,
}

/// The declared GROUP BY bounds, if both are declared.
pub(crate) fn group_bounds(d: &DatasetConfig) -> Option<GroupBounds> {
    Some(GroupBounds {
        groups: d.max_groups_per_unit?,
        rows_per_group: d.max_rows_per_group?,
    })
}

/// Most rows one unit contributes to a query's answer (the symmetric distance its presence
/// moves the truncated rows by): `max_rows_per_unit`, or for a grouped query the tighter of
/// that and groups x rows per group.
pub(crate) fn rows_per_unit(d: &DatasetConfig, grouped: bool) -> u32 {
    match (grouped, group_bounds(d)) {
        (true, Some(b)) => d
            .max_rows_per_unit
            .min(b.groups.saturating_mul(b.rows_per_group)),
        _ => d.max_rows_per_unit,
    }
}

/// One unit's largest change to a vector of per-key counts, as OpenDP's threshold
/// measurements take it: (keys changed, L1, L-infinity).
pub(crate) fn key_distance(d: &DatasetConfig) -> Option<(u32, i64, i64)> {
    let b = group_bounds(d)?;
    let l1 = rows_per_unit(d, true);
    Some((
        b.groups.min(l1),
        i64::from(l1),
        i64::from(b.rows_per_group.min(l1)),
    ))
}

/// The delta budgets (analyst, global), if declared.
pub(crate) fn delta_budgets(d: &DatasetConfig) -> Option<(f64, f64)> {
    Some((d.analyst_delta?, d.global_delta?))
}

/// Why a GROUP BY cannot run on this dataset: the bounds it needs are not declared.
pub(crate) fn missing_bounds(d: &DatasetConfig, column: &str) -> Option<String> {
    group_bounds(d).is_none().then(|| {
        format!(
            "GROUP BY `{column}` needs the dataset's GROUP BY bounds: declare max_groups_per_unit \
             (how many groups one unit may touch) and max_rows_per_group (how many rows it may \
             contribute to each) for dataset `{}`",
            d.name
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::dataset;

    #[test]
    fn the_tighter_of_the_per_unit_and_per_group_bounds_is_used() {
        let mut d = dataset();
        d.max_rows_per_unit = 20;
        d.max_groups_per_unit = None;
        d.max_rows_per_group = None;
        assert_eq!(super::rows_per_unit(&d, true), 20, "no group bounds: M");
        d.max_groups_per_unit = Some(2);
        d.max_rows_per_group = Some(3);
        assert_eq!(super::rows_per_unit(&d, true), 6);
        assert_eq!(super::rows_per_unit(&d, false), 20, "ungrouped: M");
        assert_eq!(super::key_distance(&d), Some((2, 6, 3)));
        d.max_groups_per_unit = Some(10);
        assert_eq!(super::rows_per_unit(&d, true), 20, "10 x 3 > 20: M");
        assert_eq!(super::key_distance(&d), Some((10, 20, 3)));
    }
}

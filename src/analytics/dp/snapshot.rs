//! The `snapshot` engine's copy of a dataset: the privacy unit, the truncation order and
//! every declared column, read from the source in one statement ordered by unit and then
//! truncation order, and held in memory as columns for `snapshot_max_age` (a CSV source's
//! copy lives as long as its configuration).
//!
//! Why a copy: the per-unit truncation depends on each query's filter, so a database must
//! sort (or walk an index over) every matching row at every query. Ordered once, the
//! truncation of any query is one pass over the copy (`scan`), with no sort at all.
//!
//! What a copy costs: memory (about 20-40 bytes a row; at most `MAX_SNAPSHOT_ROWS` rows) and
//! freshness: rows written to a database source reach answers within `snapshot_max_age`.
//! Consent is never copied: the consent filter reads the store at every query.

use super::pushdown::quote;
use super::AnalyticsError;
use crate::config::dataset::{ColumnConfig, DatasetConfig, MAX_SNAPSHOT_ROWS};
use futures_util::TryStreamExt;
use sqlx::{AnyPool, Row};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The code of a NULL text cell.
pub(super) const NULL_CODE: u32 = u32::MAX;

/// One declared column of the copy.
pub(super) enum Column {
    /// An integer column; `present[i]` is false where row `i` holds NULL.
    Integer {
        values: Vec<i64>,
        present: Vec<bool>,
    },
    /// A text column (categorical or key), dictionary-encoded: `codes[i]` indexes
    /// `dictionary`, or is `NULL_CODE`.
    Text {
        codes: Vec<u32>,
        dictionary: Vec<String>,
    },
}

/// A dataset's rows in memory, every unit's rows together in truncation order.
pub struct Snapshot {
    /// Each unit's id as text (what consents name), in the copy's order.
    pub(super) units: Vec<String>,
    /// Where each unit's rows start, and one more entry: the end of the last.
    pub(super) starts: Vec<u32>,
    /// Per row: its position within its unit, or that of the first row before it with the
    /// same truncation-order value (so ties rank together, as `MIN(order)` would).
    pub(super) order_rank: Vec<u32>,
    /// The declared columns by name.
    pub(super) columns: HashMap<String, Column>,
}

impl Snapshot {
    /// Reads the copy of `config`'s rows from `pool`. Errors name columns and bounds, never
    /// values.
    pub async fn read(pool: &AnyPool, config: &DatasetConfig) -> Result<Self, AnalyticsError> {
        let declared: Vec<(&String, &ColumnConfig)> = config.columns.iter().collect();
        // Output columns get names of their own: PostgreSQL names `CAST(id AS TEXT)` `id`,
        // and ORDER BY would then sort by that text ("62" after "552").
        let mut select = vec![
            format!(
                "CAST({} AS TEXT) AS privgate_unit",
                quote(&config.privacy_unit)
            ),
            format!(
                "CAST({} AS TEXT) AS privgate_order",
                quote(&config.truncate_order)
            ),
        ];
        for (i, (name, column)) in declared.iter().enumerate() {
            select.push(match column {
                ColumnConfig::Integer { .. } => {
                    format!("CAST({} AS BIGINT) AS privgate_c{i}", quote(name))
                }
                _ => format!("CAST({} AS TEXT) AS privgate_c{i}", quote(name)),
            });
        }
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}, {}",
            select.join(", "),
            quote(&config.source.table),
            quote(&config.privacy_unit),
            quote(&config.truncate_order)
        );
        let mut builders: Vec<Builder> = declared
            .iter()
            .map(|(_, c)| match c {
                ColumnConfig::Integer { .. } => Builder::Integer(Vec::new(), Vec::new()),
                _ => Builder::Text(Vec::new(), HashMap::new(), Vec::new()),
            })
            .collect();
        let mut snapshot = Snapshot {
            units: Vec::new(),
            starts: Vec::new(),
            order_rank: Vec::new(),
            columns: HashMap::new(),
        };
        let source = |e: sqlx::Error| AnalyticsError::Source(e.to_string());
        let mut previous_order: Option<String> = None;
        let mut rows = sqlx::query(&sql).fetch(pool);
        while let Some(row) = rows.try_next().await.map_err(source)? {
            let at = snapshot.order_rank.len();
            if at >= MAX_SNAPSHOT_ROWS {
                return Err(AnalyticsError::Source(format!(
                    "dataset `{}` has more than {MAX_SNAPSHOT_ROWS} rows, the most the snapshot \
                     engine holds; use engine = \"pushdown\"",
                    config.name
                )));
            }
            let unit: Option<String> = row.try_get(0).map_err(source)?;
            let order: Option<String> = row.try_get(1).map_err(source)?;
            let (unit, order) = (unit.unwrap_or_default(), order.unwrap_or_default());
            let new_unit = snapshot.units.last() != Some(&unit);
            if new_unit {
                snapshot.units.push(unit);
                snapshot.starts.push(at as u32);
            }
            let tie = !new_unit && previous_order.as_ref() == Some(&order);
            let rank = match tie {
                true => snapshot.order_rank[at - 1],
                false => at as u32 - snapshot.starts[snapshot.starts.len() - 1],
            };
            snapshot.order_rank.push(rank);
            previous_order = Some(order);
            for (i, builder) in builders.iter_mut().enumerate() {
                builder.push(&row, i + 2).map_err(source)?;
            }
        }
        snapshot.starts.push(snapshot.order_rank.len() as u32);
        for ((name, _), builder) in declared.into_iter().zip(builders) {
            snapshot.columns.insert(name.clone(), builder.finish());
        }
        Ok(snapshot)
    }

    /// Rows in the copy.
    pub fn rows(&self) -> usize {
        self.order_rank.len()
    }
}

/// A column being read.
enum Builder {
    Integer(Vec<i64>, Vec<bool>),
    Text(Vec<u32>, HashMap<String, u32>, Vec<String>),
}

impl Builder {
    fn push(&mut self, row: &sqlx::any::AnyRow, i: usize) -> Result<(), sqlx::Error> {
        match self {
            Builder::Integer(values, present) => {
                let v: Option<i64> = row.try_get(i)?;
                values.push(v.unwrap_or(0));
                present.push(v.is_some());
            }
            Builder::Text(codes, index, dictionary) => {
                let v: Option<String> = row.try_get(i)?;
                codes.push(match v {
                    None => NULL_CODE,
                    Some(v) => match index.get(&v) {
                        Some(code) => *code,
                        None => {
                            let code = dictionary.len() as u32;
                            dictionary.push(v.clone());
                            index.insert(v, code);
                            code
                        }
                    },
                });
            }
        }
        Ok(())
    }

    fn finish(self) -> Column {
        match self {
            Builder::Integer(values, present) => Column::Integer { values, present },
            Builder::Text(codes, _, dictionary) => Column::Text { codes, dictionary },
        }
    }
}

/// A dataset's current copy, read again once older than its bound.
pub(super) struct SnapshotCache {
    /// None: never read again (a CSV source, whose rows change only with the configuration).
    max_age: Option<Duration>,
    current: Mutex<Option<(Arc<Snapshot>, Instant)>>,
}

impl SnapshotCache {
    pub(super) fn new(max_age: Option<Duration>) -> Self {
        Self {
            max_age,
            current: Mutex::new(None),
        }
    }

    /// The copy to answer from: the current one if young enough, else one read now. Queries
    /// arriving during a read wait for it (one read at a time); a query dropped during its
    /// read drops the read, and the next query starts it again.
    pub(super) async fn get(
        &self,
        pool: &AnyPool,
        config: &DatasetConfig,
    ) -> Result<Arc<Snapshot>, AnalyticsError> {
        let mut current = self.current.lock().await;
        if let Some((snapshot, read_at)) = current.as_ref() {
            if self.max_age.is_none_or(|age| read_at.elapsed() <= age) {
                return Ok(snapshot.clone());
            }
        }
        let started = Instant::now();
        let snapshot = Arc::new(Snapshot::read(pool, config).await?);
        tracing::info!(
            dataset = %config.name,
            rows = snapshot.rows(),
            units = snapshot.units.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "dataset snapshot read"
        );
        *current = Some((snapshot.clone(), started));
        Ok(snapshot)
    }
}

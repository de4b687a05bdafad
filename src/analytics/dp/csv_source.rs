//! CSV sources: a small dataset in a CSV file (header row first), parsed with the `csv`
//! crate when the configuration is built (start-up or reload: a bad file refuses the
//! configuration, it never fails one analyst's query later) and loaded on first use into an
//! in-memory SQLite database, which is then queried through the same pushdown as any table.
//!
//! Only the columns the dataset declares (and the privacy unit and truncation key) are kept;
//! integer columns must parse as integers, empty cells are NULL. The file is read once per
//! configuration: edits to it take effect at the next reload.

use super::AnalyticsError;
use crate::config::dataset::{ColumnConfig, DatasetConfig, MAX_CSV_BYTES};
use sqlx::AnyPool;
use std::path::Path;
use tokio::sync::OnceCell;

/// Rows per INSERT statement while loading (well under SQLite's bound-parameter limit).
const ROWS_PER_INSERT: usize = 200;

/// A cell as loaded: integers where the column is declared integer (or parses as one, for
/// the truncation key, so `10` sorts after `9`), text otherwise.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Int(i64),
    Text(String),
    Null,
}

/// A parsed CSV file and, once a query needed it, the in-memory database holding it.
pub(super) struct CsvTable {
    table: String,
    columns: Vec<String>,
    rows: Vec<Vec<Cell>>,
    database: OnceCell<AnyPool>,
}

impl CsvTable {
    /// Parses `path` for `dataset`. Errors name the file, row and column, never a value.
    pub(super) fn read(dataset: &DatasetConfig, path: &Path) -> Result<Self, String> {
        let fail = |what: String| format!("CSV source {}: {what}", path.display());
        let size = std::fs::metadata(path)
            .map_err(|e| fail(e.to_string()))?
            .len();
        if size > MAX_CSV_BYTES {
            return Err(fail(format!(
                "larger than {MAX_CSV_BYTES} bytes; put it in a database"
            )));
        }
        let mut reader = csv::Reader::from_path(path).map_err(|e| fail(e.to_string()))?;
        let header = reader
            .headers()
            .map_err(|e| fail(error_kind(&e).into()))?
            .clone();
        let columns = loaded_columns(dataset);
        let mut positions = Vec::with_capacity(columns.len());
        for column in &columns {
            match header.iter().position(|h| h.trim() == column) {
                Some(p) => positions.push(p),
                None => return Err(fail(format!("no column `{column}` in the header row"))),
            }
        }
        let mut rows = Vec::new();
        for (index, record) in reader.records().enumerate() {
            // Row numbers as an editor shows them: the header is row 1.
            let row_number = index + 2;
            let record =
                record.map_err(|e| fail(format!("row {row_number}: {}", error_kind(&e))))?;
            let mut row = Vec::with_capacity(columns.len());
            for (column, &p) in columns.iter().zip(&positions) {
                let cell = cell(dataset, column, record.get(p).unwrap_or("")).ok_or_else(|| {
                    fail(format!(
                        "row {row_number}: column `{column}` is not an integer"
                    ))
                })?;
                row.push(cell);
            }
            rows.push(row);
        }
        Ok(Self {
            table: dataset.source.table.clone(),
            columns,
            rows,
            database: OnceCell::new(),
        })
    }

    /// The in-memory database holding the rows, loaded by the first query that needs it.
    pub(super) async fn database(&self) -> Result<&AnyPool, AnalyticsError> {
        self.database.get_or_try_init(|| self.load()).await
    }

    /// Creates the table in a fresh in-memory SQLite database and inserts every row. The
    /// pool's one connection is the database, so it is never closed while the pool lives.
    async fn load(&self) -> Result<AnyPool, AnalyticsError> {
        let fail = |e: sqlx::Error| AnalyticsError::Source(format!("CSV source: {e}"));
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect("sqlite::memory:")
            .await
            .map_err(fail)?;
        let quoted: Vec<String> = self.columns.iter().map(|c| format!("\"{c}\"")).collect();
        // No declared column types: SQLite then keeps each value as bound (integer or text).
        sqlx::query(&format!(
            "CREATE TABLE \"{}\" ({})",
            self.table,
            quoted.join(", ")
        ))
        .execute(&pool)
        .await
        .map_err(fail)?;
        let mut tx = pool.begin().await.map_err(fail)?;
        for batch in self.rows.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO \"{}\" VALUES {}",
                self.table,
                placeholders(batch.len(), self.columns.len())
            );
            let mut insert = sqlx::query(&sql);
            for cell in batch.iter().flatten() {
                insert = match cell {
                    Cell::Int(v) => insert.bind(*v),
                    Cell::Text(v) => insert.bind(v.clone()),
                    Cell::Null => insert.bind(None::<String>),
                };
            }
            insert.execute(&mut *tx).await.map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        Ok(pool)
    }
}

/// The privacy unit, the truncation key and the declared columns, each once.
fn loaded_columns(dataset: &DatasetConfig) -> Vec<String> {
    let mut columns = vec![dataset.privacy_unit.clone()];
    let rest = std::iter::once(&dataset.truncate_order).chain(dataset.columns.keys());
    for column in rest {
        if !columns.contains(column) {
            columns.push(column.clone());
        }
    }
    columns
}

/// One cell; `None` when a declared integer column holds something else.
fn cell(dataset: &DatasetConfig, column: &str, text: &str) -> Option<Cell> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Cell::Null);
    }
    let integer = matches!(
        dataset.columns.get(column),
        Some(ColumnConfig::Integer { .. })
    );
    match text.parse::<i64>() {
        Ok(v) if integer || column == dataset.truncate_order => Some(Cell::Int(v)),
        Err(_) if integer => None,
        _ => Some(Cell::Text(text.to_owned())),
    }
}

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` values.
fn placeholders(rows: usize, columns: usize) -> String {
    let mut n = 0;
    let rows: Vec<String> = (0..rows)
        .map(|_| {
            let row: Vec<String> = (0..columns)
                .map(|_| {
                    n += 1;
                    format!("${n}")
                })
                .collect();
            format!("({})", row.join(", "))
        })
        .collect();
    rows.join(", ")
}

/// What went wrong reading a record, without the record's content.
fn error_kind(e: &csv::Error) -> &'static str {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { .. } => "a different number of fields than the header",
        csv::ErrorKind::Utf8 { .. } => "not UTF-8",
        csv::ErrorKind::Io(_) => "read error",
        _ => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset() -> DatasetConfig {
        crate::analytics::dp::tests::dataset()
    }

    fn file(content: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), content).unwrap();
        f
    }

    #[test]
    fn quoted_fields_integers_and_empty_cells_parse() {
        let d = dataset();
        let header = "id,customer_id,region,amount,channel,note\n";
        let f = file(&format!(
            "{header}10,c1,north,500,atm,\"a, b\"\n9,c1,,7,card,y\n"
        ));
        let t = CsvTable::read(&d, f.path()).unwrap();
        let at = |row: usize, column: &str| {
            let i = t.columns.iter().position(|c| c == column).unwrap();
            t.rows[row][i].clone()
        };
        assert_eq!(at(0, "id"), Cell::Int(10));
        assert_eq!(at(0, "amount"), Cell::Int(500));
        assert_eq!(at(1, "region"), Cell::Null);
        assert_eq!(at(0, "customer_id"), Cell::Text("c1".into()));
        assert_eq!(at(0, "channel"), Cell::Text("atm".into()));
        assert!(!t.columns.contains(&"note".to_string()), "{:?}", t.columns);
    }

    #[test]
    fn bad_files_are_refused_without_their_content() {
        let d = dataset();
        let cases = [
            ("id,customer_id,region\n1,c1,north\n", "no column `amount`"),
            (
                "id,customer_id,region,amount,channel\n1,c1,north,secret-7,atm\n",
                "row 2: column `amount` is not an integer",
            ),
            (
                "id,customer_id,region,amount,channel\n1,c1,north,5,atm\n2,secret-8\n",
                "row 3: a different number of fields",
            ),
        ];
        for (content, expected) in cases {
            let f = file(content);
            let message = CsvTable::read(&d, f.path()).err().unwrap();
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
        let missing = CsvTable::read(&d, Path::new("/nonexistent/tx.csv"));
        assert!(missing.err().unwrap().contains("/nonexistent/tx.csv"));
    }

    #[test]
    fn placeholders_number_every_value() {
        assert_eq!(placeholders(2, 2), "($1, $2), ($3, $4)");
    }
}

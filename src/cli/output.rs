//! How listing commands print their rows: one `--output` flag and one renderer for every
//! list (`keys list`, `consent list`, `apikey list`, `totp list`, `admin list`, `audit
//! who-saw` and `search`, `risk show`, `query`).
//!
//! A command builds a [`Listing`] (named columns, typed cells) and prints it as:
//! - `table`: aligned columns for people (comfy-table, no terminal styling);
//! - `tsv`: tab-separated with a header line, for the lists that printed that way before
//!   (`apikey list`, `totp list`, `audit who-saw`): their default stays as scripts know it;
//! - `json`: one array of objects whose field names are the column names (stable: scripts
//!   may rely on them), cells as JSON values (numbers stay numbers, absent is `null`);
//! - `csv`: RFC 4180 with a header row (the `csv` crate); a text cell a spreadsheet would
//!   read as a formula is written with a leading `'`, the same neutralising as the analytics
//!   API's CSV answers ([`crate::analytics::dp::tabular::inert`]); numbers are never changed.
//!
//! What surrounds a list on stdout in table form (a keyring's headline, counts, notes) goes
//! to stderr in `json` and `csv`, so stdout holds only the machine-readable rows.

use serde_json::Value;
use std::io::Write;

/// How a listing is printed (`--output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// Aligned columns.
    Table,
    /// Tab-separated, header first.
    Tsv,
    /// A JSON array of objects keyed by column name.
    Json,
    /// CSV, header first, formula-like text neutralised with a leading `'`.
    Csv,
}

impl Output {
    /// Whether this output is for programs: then whatever surrounds the rows goes to stderr.
    pub(crate) fn is_machine(self) -> bool {
        matches!(self, Self::Json | Self::Csv | Self::Tsv)
    }

    /// Prints a line that surrounds the rows (a headline, counts): on stdout beside a table,
    /// on stderr beside rows for programs.
    pub(crate) fn note(self, line: &str) {
        match self.is_machine() {
            true => eprintln!("{line}"),
            false => println!("{line}"),
        }
    }
}

/// Table look: columns two spaces apart, no borders and no rule (the shape the lists had as
/// hand-aligned text). A space in a comfy-table preset is a part left out.
const PLAIN_STYLE: &str = "                   ";

/// Table look for `privgate query`: a rule under the header and ` | ` between columns.
pub(crate) const RULED_STYLE: &str = "     -+ |          ";

/// Named columns and typed rows, printed in any [`Output`].
pub(crate) struct Listing {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    style: &'static str,
    right_aligned: Vec<usize>,
}

impl Listing {
    /// An empty listing with these column names (also the JSON field names).
    pub(crate) fn new<C: Into<String>>(columns: impl IntoIterator<Item = C>) -> Self {
        Self {
            columns: columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            style: PLAIN_STYLE,
            right_aligned: Vec::new(),
        }
    }

    /// Draws the table with `style` (a comfy-table preset) instead of the plain one.
    pub(crate) fn with_style(mut self, style: &'static str) -> Self {
        self.style = style;
        self
    }

    /// Right-aligns a column in table form (counts, versions).
    pub(crate) fn right_aligned(mut self, column: &str) -> Self {
        if let Some(i) = self.columns.iter().position(|c| *c == column) {
            self.right_aligned.push(i);
        }
        self
    }

    /// Appends a row; it must have one cell per column.
    pub(crate) fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len(), "a row per column");
        self.rows.push(row);
    }

    /// The rows as `output` prints them, ending with a newline (empty table: the header).
    pub(crate) fn render(&self, output: Output) -> anyhow::Result<String> {
        if output == Output::Table {
            return Ok(self.table());
        }
        let mut writer = RowWriter::new(self.header_only(), output, Vec::new());
        for row in &self.rows {
            writer.row(row.clone())?;
        }
        Ok(String::from_utf8(writer.finish()?)?)
    }

    /// Prints the rows on stdout as `output` says.
    pub(crate) fn print(&self, output: Output) -> anyhow::Result<()> {
        print!("{}", self.render(output)?);
        Ok(())
    }

    /// Prints rows on stdout as they are pushed (every output but `table`, which needs all
    /// of them for its widths): a long list never has to be held in memory.
    pub(crate) fn stream(self, output: Output) -> RowWriter<std::io::Stdout> {
        RowWriter::new(self, output, std::io::stdout())
    }

    fn header_only(&self) -> Self {
        Self {
            columns: self.columns.clone(),
            rows: Vec::new(),
            style: self.style,
            right_aligned: self.right_aligned.clone(),
        }
    }

    /// The rows as an aligned table.
    pub(crate) fn table(&self) -> String {
        let mut table = comfy_table::Table::new();
        table.load_preset(self.style);
        table.set_header(&self.columns);
        for row in &self.rows {
            table.add_row(row.iter().map(|v| text(v, "-")));
        }
        for &i in &self.right_aligned {
            if let Some(column) = table.column_mut(i) {
                column.set_cell_alignment(comfy_table::CellAlignment::Right);
            }
        }
        // The first column starts at the margin, like the lines printed around the table.
        if let Some(first) = table.column_mut(0) {
            first.set_padding((0, 1));
        }
        let mut out = table.trim_fmt();
        out.push('\n');
        out
    }
}

/// Writes a listing's rows to `out` one at a time (see [`Listing::stream`]).
pub(crate) struct RowWriter<W: Write> {
    listing: Listing,
    output: Output,
    out: W,
    written: usize,
}

impl<W: Write> RowWriter<W> {
    fn new(listing: Listing, output: Output, out: W) -> Self {
        Self {
            listing,
            output,
            out,
            written: 0,
        }
    }

    /// Writes one row (collects it, for a table); it must have one cell per column.
    pub(crate) fn row(&mut self, row: Vec<Value>) -> anyhow::Result<()> {
        if self.output == Output::Table {
            self.listing.push(row);
            return Ok(());
        }
        debug_assert_eq!(row.len(), self.listing.columns.len(), "a row per column");
        if self.written == 0 {
            self.header()?;
        }
        match self.output {
            Output::Tsv => {
                let cells: Vec<String> = row.iter().map(|v| text(v, "-")).collect();
                writeln!(self.out, "{}", cells.join("\t"))?;
            }
            Output::Csv => self.csv_record(row.iter().map(|v| match v {
                Value::Number(_) | Value::Bool(_) | Value::Null => text(v, ""),
                text_like => crate::analytics::dp::tabular::inert(text(text_like, "")),
            }))?,
            Output::Json => {
                let object: serde_json::Map<String, Value> =
                    self.listing.columns.iter().cloned().zip(row).collect();
                // Indented as one element of a pretty-printed array.
                let pretty = serde_json::to_string_pretty(&object)?.replace('\n', "\n  ");
                let separator = if self.written == 0 { "" } else { ",\n" };
                write!(self.out, "{separator}  {pretty}")?;
            }
            Output::Table => unreachable!("collected above"),
        }
        self.written += 1;
        Ok(())
    }

    /// Ends the listing (prints a table, closes a JSON array) and hands back the output.
    pub(crate) fn finish(mut self) -> anyhow::Result<W> {
        match self.output {
            Output::Table => write!(self.out, "{}", self.listing.table())?,
            Output::Json if self.written == 0 => writeln!(self.out, "[]")?,
            Output::Json => writeln!(self.out, "\n]")?,
            Output::Tsv | Output::Csv if self.written == 0 => self.header()?,
            Output::Tsv | Output::Csv => {}
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(&mut self) -> anyhow::Result<()> {
        match self.output {
            Output::Tsv => writeln!(self.out, "{}", self.listing.columns.join("\t"))?,
            Output::Csv => self.csv_record(self.listing.columns.clone().into_iter())?,
            Output::Json => writeln!(self.out, "[")?,
            Output::Table => {}
        }
        Ok(())
    }

    /// One RFC 4180 record, quoted as the `csv` crate quotes.
    fn csv_record(&mut self, cells: impl Iterator<Item = String>) -> anyhow::Result<()> {
        let mut writer = csv::WriterBuilder::new().from_writer(&mut self.out);
        writer.write_record(cells)?;
        writer.flush()?;
        Ok(())
    }
}

/// Prints one object (`consent show`, `admin show`): as it is in `json`, else as a
/// `field`/`value` listing, one row per top-level field.
pub(crate) fn print_one(object: &Value, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(object)?);
        return Ok(());
    }
    let mut listing = Listing::new(["field", "value"]);
    for (field, value) in object.as_object().into_iter().flatten() {
        let value = match value {
            Value::Object(_) => Value::String(value.to_string()),
            other => other.clone(),
        };
        listing.push(vec![Value::String(field.clone()), value]);
    }
    listing.print(output)
}

/// A cell as text: strings as they are, numbers and booleans as JSON writes them, lists
/// joined with commas, `absent` for null.
fn text(value: &Value, absent: &str) -> String {
    match value {
        Value::Null => absent.to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| text(v, absent))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Listing, Output};
    use serde_json::json;

    fn sample() -> Listing {
        let mut listing = Listing::new(["id", "purposes", "uses", "revoked_ms"]);
        listing.push(vec![
            json!("=HYPERLINK(\"http://x\")"),
            json!(["marketing", "fraud"]),
            json!(-3),
            json!(null),
        ]);
        listing.push(vec![json!("k2"), json!([]), json!(12), json!(1700)]);
        listing
    }

    #[test]
    fn json_fields_are_the_column_names_and_cells_keep_their_types() {
        let out = sample().render(Output::Json).unwrap();
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(rows[0]["uses"], -3);
        assert_eq!(rows[0]["revoked_ms"], serde_json::Value::Null);
        assert_eq!(rows[0]["purposes"], json!(["marketing", "fraud"]));
        assert_eq!(rows[1]["id"], "k2");
    }

    #[test]
    fn streamed_json_is_the_pretty_printed_array() {
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&sample().render(Output::Json).unwrap()).unwrap();
        let expected = format!("{}\n", serde_json::to_string_pretty(&rows).unwrap());
        assert_eq!(sample().render(Output::Json).unwrap(), expected);
        assert_eq!(Listing::new(["a"]).render(Output::Json).unwrap(), "[]\n");
    }

    #[test]
    fn csv_neutralises_formulas_but_never_numbers() {
        let out = sample().render(Output::Csv).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "id,purposes,uses,revoked_ms");
        assert_eq!(
            lines[1],
            "\"'=HYPERLINK(\"\"http://x\"\")\",\"marketing,fraud\",-3,"
        );
        assert_eq!(lines[2], "k2,,12,1700");
    }

    #[test]
    fn table_and_tsv_show_absent_cells_as_a_dash() {
        let table = sample()
            .right_aligned("uses")
            .render(Output::Table)
            .unwrap();
        let header = table.lines().next().unwrap();
        assert!(header.starts_with("id "), "{table}");
        assert!(
            table.lines().nth(2).unwrap().ends_with(" 12  1700"),
            "{table}"
        );
        assert!(
            table.lines().nth(1).unwrap().trim_end().ends_with('-'),
            "{table}"
        );
        let tsv = sample().render(Output::Tsv).unwrap();
        assert_eq!(tsv.lines().nth(2), Some("k2\t\t12\t1700"));
        assert!(tsv.lines().nth(1).unwrap().ends_with("\t-3\t-"), "{tsv}");
    }
}

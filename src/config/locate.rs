//! Where a key sits in the configuration file, for problems found after parsing (an
//! undefined upstream, a value out of range): `privgate.toml:12:7: route ...`.
//!
//! The text is parsed a second time by `toml_edit` (the parser `toml` itself uses, already
//! in the tree), which keeps every key's byte span; a key path names the key as the file
//! spells it (`route.2.upstream`: the third `[[route]]`'s `upstream`). Where the key is
//! absent (a default was used) the nearest enclosing table or key that is present is named.

use toml_edit::{ImDocument, Item};

/// A position in the configuration file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

/// Finds keys' positions in one configuration text.
pub(crate) struct Locator {
    document: Option<ImDocument<String>>,
}

impl Locator {
    /// A locator over `text` (none is found where it does not parse).
    pub(crate) fn new(text: &str) -> Self {
        Self {
            document: ImDocument::parse(text.to_owned()).ok(),
        }
    }

    /// Where the key at `path` (dot-separated; array elements by index) or its nearest
    /// present ancestor starts.
    pub(crate) fn locate(&self, path: &str) -> Option<Location> {
        let document = self.document.as_ref()?;
        let mut table_like: Option<&dyn toml_edit::TableLike> = Some(document.as_table());
        let mut item: Option<&Item> = None;
        let mut found = None;
        for segment in path.split('.') {
            let next = match (item, table_like) {
                (Some(Item::ArrayOfTables(array)), _) => segment
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| array.get(i))
                    .map(|table| (table.span(), None, Some(table as &dyn toml_edit::TableLike))),
                (_, Some(table)) => table.get_key_value(segment).map(|(key, value)| {
                    (
                        key.span().or_else(|| value.span()),
                        Some(value),
                        value.as_table_like(),
                    )
                }),
                _ => None,
            };
            let Some((span, value, inner)) = next else {
                break;
            };
            found = span.or(found);
            item = value;
            table_like = inner;
        }
        found.map(|span| position(document.raw(), span.start))
    }

    /// Where the element of the array of tables `array` (`[[route]]`) whose `name` (or, for
    /// `[[issuer]]`, `issuer`) is `name` starts: for problems that name their table.
    pub(crate) fn locate_named(&self, array: &str, name: &str) -> Option<Location> {
        let document = self.document.as_ref()?;
        let field = if array == "issuer" { "issuer" } else { "name" };
        let tables = document.get(array)?.as_array_of_tables()?;
        let table = tables
            .iter()
            .find(|t| t.get(field).and_then(|v| v.as_str()) == Some(name))?;
        table
            .span()
            .map(|span| position(document.raw(), span.start))
    }
}

/// The line and column of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> Location {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::{Location, Locator};

    #[test]
    fn keys_are_found_in_tables_arrays_of_tables_and_dotted_keys() {
        let text = "[store]\nurl = \"x\"\n\n[[route]]\nname = \"a\"\n\n[[route]]\nname = \"b\"\n  upstream = \"core\"\n\n[upstream.core]\nurl = \"http://x\"\n";
        let locator = Locator::new(text);
        let at = |path| locator.locate(path);
        assert_eq!(at("store.url"), Some(Location { line: 2, column: 1 }));
        assert_eq!(
            at("route.1.upstream"),
            Some(Location { line: 9, column: 3 })
        );
        assert_eq!(
            at("upstream.core.url"),
            Some(Location {
                line: 12,
                column: 1
            })
        );
        // A key left to its default: the nearest present ancestor.
        assert_eq!(at("route.0.upstream").map(|l| l.line), Some(4));
        assert_eq!(at("limits.max_body_bytes"), None);
        // By the name a problem gives its table.
        assert_eq!(
            locator.locate_named("route", "b"),
            Some(Location { line: 7, column: 1 })
        );
        assert_eq!(locator.locate_named("route", "c"), None);
    }
}

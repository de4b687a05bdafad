//! What is wrong with a configuration: the problems validation collects, each naming the
//! file it is about, and the error that lists them all.
//!
//! A leaf of `config`: every section's validation adds to [`Problems`] and [`load`](super::load)
//! turns them into a [`ConfigError`], so the section files depend on this, not on `load`.

use super::locate::{Location, Locator};
use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with the configuration, and the file it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in or about.
    pub file: PathBuf,
    /// Where in the file, when the problem is about one key of it.
    pub at: Option<Location>,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

/// `file:line:column: message` (the form editors and compilers use), or `file: message`.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                at.line,
                at.column,
                self.message
            ),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// A configuration that cannot be used; lists every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// A configuration error with a single problem.
    pub fn one(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem {
                file: file.into(),
                at: None,
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems about one file.
pub(crate) struct Problems {
    file: PathBuf,
    locator: Option<Locator>,
    found: Vec<Problem>,
}

impl Problems {
    pub(crate) fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            locator: None,
            found: Vec::new(),
        }
    }

    /// Problems about `file` whose text is `text`, so that [`Self::at`] can say where.
    pub(crate) fn with_text(file: &Path, text: &str) -> Self {
        Self {
            locator: Some(Locator::new(text)),
            ..Self::new(file)
        }
    }

    /// A problem stated without a key path. Messages that begin with the key they are about
    /// (`totp.digits must be ...`, `[console] needs ...`) are placed at that key, and those
    /// that begin by naming their table (``route `api`: ...``) at that table; others (about
    /// several keys, or none) name only the file.
    pub(crate) fn add(&mut self, message: impl Into<String>) {
        let message = message.into();
        let at = self
            .locator
            .as_ref()
            .and_then(|l| match leading_key(&message) {
                Some(key) => l.locate(key),
                None => {
                    leading_name(&message).and_then(|(array, name)| l.locate_named(array, name))
                }
            });
        self.found.push(Problem {
            file: self.file.clone(),
            at,
            message,
        });
    }

    /// A problem about the key at `key` (`route.2.upstream`, see `locate`).
    pub(crate) fn at(&mut self, key: &str, message: impl Into<String>) {
        let at = self.locator.as_ref().and_then(|l| l.locate(key));
        self.found.push(Problem {
            file: self.file.clone(),
            at,
            message: message.into(),
        });
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, ConfigError> {
        if self.found.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                problems: self.found,
            })
        }
    }
}

/// The key path a message starts with: `tracing.endpoint` in "tracing.endpoint must be
/// ...", `console` in "[console] needs ...": lower-case names, digits and `_`, joined by
/// dots.
fn leading_key(message: &str) -> Option<&str> {
    let rest = message.strip_prefix('[').unwrap_or(message);
    let end = rest
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let key = rest[..end].trim_end_matches('.');
    // Bracketed, a table; bare, a dotted path (a bare word is the sentence's first word).
    let closes = match message.starts_with('[') {
        true => rest[end..].starts_with(']'),
        false => key.contains('.') && rest[end..].starts_with([' ', ':']),
    };
    (!key.is_empty() && closes).then_some(key)
}

/// The array of tables and element a message starts by naming: ("route", "api") in
/// "route `api`: ...".
fn leading_name(message: &str) -> Option<(&str, &str)> {
    let (array, rest) = message.split_once(" `")?;
    let (name, _) = rest.split_once("`:")?;
    let plain = !array.is_empty() && array.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    plain.then_some((array, name))
}

#[cfg(test)]
mod tests {
    use super::{leading_key, leading_name};

    #[test]
    fn a_message_is_placed_by_the_key_it_starts_with() {
        assert_eq!(
            leading_key("totp.digits must be 6 or 8"),
            Some("totp.digits")
        );
        assert_eq!(leading_key("[console] needs one route"), Some("console"));
        assert_eq!(leading_key("keys.kek: unreadable"), Some("keys.kek"));
        assert_eq!(
            leading_key("tracing.endpoint. must"),
            Some("tracing.endpoint")
        );
        for unplaced in [
            "route `a`: x",
            "at most one [[issuer]]",
            "Totp.x must",
            "",
            "[x",
        ] {
            assert_eq!(leading_key(unplaced), None, "{unplaced}");
        }
        assert_eq!(
            leading_name("route `api`: no upstream"),
            Some(("route", "api"))
        );
        assert_eq!(
            leading_name("dataset `tx`: name must"),
            Some(("dataset", "tx"))
        );
        assert_eq!(leading_name("route api: x"), None);
        assert_eq!(leading_name("Route `a`: x"), None);
    }
}

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

    /// A problem not about one key (or about one this file cannot place).
    pub(crate) fn add(&mut self, message: impl Into<String>) {
        self.found.push(Problem {
            file: self.file.clone(),
            at: None,
            message: message.into(),
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

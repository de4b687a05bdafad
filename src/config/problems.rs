//! What is wrong with a configuration: the problems validation collects, each naming the
//! file it is about, and the error that lists them all.
//!
//! A leaf of `config`: every section's validation adds to [`Problems`] and [`load`](super::load)
//! turns them into a [`ConfigError`], so the section files depend on this, not on `load`.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with the configuration, and the file it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in or about.
    pub file: PathBuf,
    /// What is wrong, in words an operator can act on.
    pub message: String,
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
            write!(f, "{}: {}", p.file.display(), p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems about one file.
pub(crate) struct Problems {
    file: PathBuf,
    found: Vec<Problem>,
}

impl Problems {
    pub(crate) fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            found: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, message: impl Into<String>) {
        self.found.push(Problem {
            file: self.file.clone(),
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

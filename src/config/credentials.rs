//! Where a configured file path points: relative paths are read from the config file's
//! directory, and a path that starts with `$CREDENTIALS_DIRECTORY/` is read from the
//! directory that environment variable names.
//!
//! systemd's `LoadCredential=` copies secrets (TLS keys, audit keys, passphrases) into a
//! private directory only the service can read and names it in `$CREDENTIALS_DIRECTORY`, so
//! the service user needs no read access to the originals. A config that names such a path
//! while the variable is unset is refused with one problem saying so, rather than a missing
//! file error for each path.

use std::cell::Cell;
use std::path::{Path, PathBuf};

/// The environment variable systemd sets for a unit with `LoadCredential=`.
const VARIABLE: &str = "CREDENTIALS_DIRECTORY";

/// Resolves every configured path of one config file.
pub(super) struct PathResolver<'a> {
    base: &'a Path,
    credentials: Option<PathBuf>,
    /// Whether some path named the credentials directory while it was unset.
    named_unset: Cell<bool>,
}

impl<'a> PathResolver<'a> {
    /// Relative paths against `base`, credentials against `$CREDENTIALS_DIRECTORY` as the
    /// environment has it now.
    pub(super) fn new(base: &'a Path) -> Self {
        Self {
            base,
            credentials: std::env::var_os(VARIABLE)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            named_unset: Cell::new(false),
        }
    }

    /// The config file's directory.
    pub(super) fn base(&self) -> &Path {
        self.base
    }

    /// Rewrites `path` in place to the file the gateway reads.
    pub(super) fn resolve(&self, path: &mut PathBuf) {
        if let Ok(rest) = path.strip_prefix("$CREDENTIALS_DIRECTORY") {
            match &self.credentials {
                Some(dir) => *path = dir.join(rest),
                // Left as written: the problem below names it, and no file is read from a
                // directory named `$CREDENTIALS_DIRECTORY`.
                None => self.named_unset.set(true),
            }
        } else if path.is_relative() {
            *path = self.base.join(&*path);
        }
    }

    /// The problem to report once every path is resolved, if any named an unset directory.
    pub(super) fn problem(&self) -> Option<String> {
        self.named_unset.get().then(|| {
            format!(
                "paths name ${VARIABLE}, which is not set: systemd sets it for a unit with \
                 LoadCredential=; elsewhere (e.g. `privgate check`) set it to a directory \
                 holding the same files"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_absolute_and_credential_paths() {
        let base = Path::new("/etc/privgate");
        let resolver = PathResolver {
            base,
            credentials: Some(PathBuf::from("/run/credentials/privgate.service")),
            named_unset: Cell::new(false),
        };
        for (written, read) in [
            ("tls/server.pem", "/etc/privgate/tls/server.pem"),
            ("/srv/key.pem", "/srv/key.pem"),
            (
                "$CREDENTIALS_DIRECTORY/server.key.pem",
                "/run/credentials/privgate.service/server.key.pem",
            ),
            // Only a whole first component counts.
            (
                "$CREDENTIALS_DIRECTORY_X/k",
                "/etc/privgate/$CREDENTIALS_DIRECTORY_X/k",
            ),
        ] {
            let mut path = PathBuf::from(written);
            resolver.resolve(&mut path);
            assert_eq!(path, Path::new(read), "{written}");
        }
        assert_eq!(resolver.problem(), None);
    }

    #[test]
    fn credential_path_without_the_variable_is_a_problem() {
        let resolver = PathResolver {
            base: Path::new("/etc/privgate"),
            credentials: None,
            named_unset: Cell::new(false),
        };
        let mut path = PathBuf::from("$CREDENTIALS_DIRECTORY/server.key.pem");
        resolver.resolve(&mut path);
        assert_eq!(path, Path::new("$CREDENTIALS_DIRECTORY/server.key.pem"));
        assert!(resolver
            .problem()
            .unwrap()
            .contains("CREDENTIALS_DIRECTORY"));
    }
}

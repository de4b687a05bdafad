//! Files that hold secrets: keys, key backups, signed tokens, private keys of certificates.
//!
//! Every such file the project writes is created here, owner-only (mode 0600) from the first
//! byte: a file created with the default mode and narrowed afterwards is readable by anyone
//! who opens it in between. Replacing a file narrows an existing file's mode as well, so a
//! file left world-readable by an older release does not stay so.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Owner read and write, nobody else.
const OWNER_ONLY: u32 = 0o600;
/// Owner list, create and enter, nobody else.
const OWNER_ONLY_DIR: u32 = 0o700;

/// Whether an existing file may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Refuse to touch a file that exists (keys: losing one loses data).
    Refuse,
    /// Truncate and rewrite it (short-lived material such as demo tokens).
    Replace,
}

/// Creates `path` owner-only and returns it open for writing.
pub(crate) fn create(path: &Path, existing: Existing) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).mode(OWNER_ONLY);
    match existing {
        Existing::Refuse => options.create_new(true),
        Existing::Replace => options.create(true).truncate(true),
    };
    let file = options.open(path)?;
    // `mode` applies only to a file this call creates.
    file.set_permissions(std::fs::Permissions::from_mode(OWNER_ONLY))?;
    Ok(file)
}

/// Creates the directory `path` (and missing parents) for secrets: owner-only (0700), so
/// that even the names of the files in it are private. An existing directory is narrowed.
pub(crate) fn create_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(OWNER_ONLY_DIR)
        .create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(OWNER_ONLY_DIR))
}

/// Writes `bytes` to a new owner-only file at `path` and syncs it to disk.
pub(crate) fn write(path: &Path, bytes: &[u8], existing: Existing) -> std::io::Result<()> {
    let mut file = create(path, existing)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_and_replaced_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.key");
        write(&fresh, b"k1", Existing::Refuse).unwrap();
        assert_eq!(mode(&fresh), 0o600);

        // A file an older release left world-readable is narrowed when replaced.
        let old = dir.path().join("old.jwt");
        std::fs::write(&old, b"old").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&old, b"new", Existing::Replace).unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(std::fs::read(&old).unwrap(), b"new");

        let secrets = dir.path().join("a/keys");
        create_dir(&secrets).unwrap();
        assert_eq!(mode(&secrets), 0o700);
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_dir(&secrets).unwrap();
        assert_eq!(mode(&secrets), 0o700, "an existing directory is narrowed");
    }

    #[test]
    fn an_existing_key_is_never_overwritten_when_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("kek.key");
        write(&key, b"original", Existing::Refuse).unwrap();
        let err = write(&key, b"other", Existing::Refuse).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&key).unwrap(), b"original");
    }
}

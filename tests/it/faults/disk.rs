//! File-system faults under a running gateway: a small tmpfs that fills up, files made
//! read-only. Both need root (mounting, `chattr`); CI runs as root and sets
//! `PRIVGATE_REQUIRE_ROOT=1`, which makes their absence a failure, not a skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs mounted at a directory for the test's life: a real file system that
/// fills up.
pub(super) struct SmallDisk(PathBuf);

impl SmallDisk {
    /// `None` when not root (mounting needs it) and `PRIVGATE_REQUIRE_ROOT` is unset.
    pub(super) fn mount(dir: &Path, size: &str) -> Option<Self> {
        if !root_or_skip("mounting a tmpfs") {
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        succeeds(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir),
        );
        Some(Self(dir.to_owned()))
    }

    /// Writes a filler file until the file system refuses more.
    pub(super) fn fill(&self) {
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while filler.write_all(&chunk).is_ok() {}
        let _ = filler.sync_all();
    }

    pub(super) fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Files made read-only under a running process until dropped: the immutable attribute
/// (`chattr +i`), which refuses writes through descriptors already open, to root too. It
/// stands for a file system gone read-only: Linux refuses an ordinary read-only remount
/// while files are open for writing, and file modes do not bind root.
pub(super) struct ReadOnlyFiles(Vec<PathBuf>);

impl ReadOnlyFiles {
    /// `None` when not root and `PRIVGATE_REQUIRE_ROOT` is unset. Fails where the file
    /// system keeps accepting writes to an immutable file through an open descriptor
    /// (ext4 and XFS refuse them; tmpfs does not), as the test would then prove nothing.
    pub(super) fn make(files: &[PathBuf]) -> Option<Self> {
        if !root_or_skip("making files immutable") {
            return None;
        }
        let dir = files[0].parent().unwrap();
        let probe = dir.join("immutable-probe");
        let mut open = std::fs::File::create(&probe).unwrap();
        chattr("+i", std::slice::from_ref(&probe));
        let refused = open.write_all(b"x").and_then(|()| open.sync_all()).is_err();
        chattr("-i", std::slice::from_ref(&probe));
        std::fs::remove_file(&probe).unwrap();
        assert!(
            refused,
            "{} keeps writing to immutable files: put the test's temporary directory \
             (TMPDIR) on ext4 or XFS",
            dir.display()
        );
        chattr("+i", files);
        Some(Self(files.to_vec()))
    }
}

impl Drop for ReadOnlyFiles {
    fn drop(&mut self) {
        chattr("-i", &self.0);
    }
}

fn chattr(flag: &str, files: &[PathBuf]) {
    succeeds(Command::new("chattr").arg(flag).args(files));
}

/// Runs a system tool the test needs and fails the test, with its error output, if it fails.
fn succeeds(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this test process runs as root (mounting, `chattr` and `runuser` need it).
pub(super) fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// True when root; otherwise says the test did not run, and fails it when
/// `PRIVGATE_REQUIRE_ROOT` is set (as in CI), so that a fault test cannot pass unrun.
fn root_or_skip(what: &str) -> bool {
    if running_as_root() {
        return true;
    }
    assert!(
        std::env::var_os("PRIVGATE_REQUIRE_ROOT").is_none(),
        "PRIVGATE_REQUIRE_ROOT is set but this test is not root ({what} needs it)"
    );
    eprintln!("test did NOT run: {what} needs root");
    false
}

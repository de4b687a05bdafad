//! A policy directory read once into memory: what is validated, signed, verified and
//! activated are the same bytes, so nothing written to the directory between a signature
//! check and a load (a reload racing an edit or the signature file) can be activated.
//!
//! A set is regular files only, in the directory and its subdirectories (`tests/`): a
//! symlink (which could point at files the set's reviewers never saw) or any other kind of
//! entry refuses the whole set. Every file counts, known to the loader or not, so an extra
//! file changes the set's content, and a signed set with one added no longer verifies.

use crate::config::{ConfigError, Problem};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The most bytes a policy set may hold, every file together: policy sets are text a team
/// reviews (the shipped one is about 60 KiB); this bounds what a reload reads into memory.
const MAX_SET_BYTES: u64 = 16 * 1024 * 1024;

/// The most files a policy set may hold (the shipped one has about 20).
const MAX_FILES: usize = 4096;

/// How deep subdirectories may nest (`tests/` is one level).
const MAX_DEPTH: usize = 4;

/// The detached signature, beside the files it signs (and not part of their content).
pub const SIGNATURE_FILE: &str = "policy-set.sig";

/// Every file of a policy directory, read once.
#[derive(Debug, Clone)]
pub struct PolicySnapshot {
    dir: PathBuf,
    /// By path relative to the directory, `/`-separated.
    files: BTreeMap<String, Vec<u8>>,
    /// The signature file's bytes, when there is one.
    signature: Option<Vec<u8>>,
}

impl PolicySnapshot {
    /// Reads every file under `dir`; refuses symlinks, special files, names that are not
    /// UTF-8, and sets beyond the size limits.
    pub fn read(dir: &Path) -> Result<Self, ConfigError> {
        let mut snapshot = Self {
            dir: dir.to_path_buf(),
            files: BTreeMap::new(),
            signature: None,
        };
        let mut problems = Vec::new();
        let mut total = 0;
        snapshot.read_dir(dir, "", 0, &mut total, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(snapshot)
    }

    fn read_dir(
        &mut self,
        dir: &Path,
        prefix: &str,
        depth: usize,
        total: &mut u64,
        problems: &mut Vec<Problem>,
    ) {
        let mut problem = |path: &Path, message: String| {
            problems.push(Problem {
                file: path.to_path_buf(),
                at: None,
                message,
            })
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return problem(dir, format!("cannot read policy directory: {e}")),
        };
        let mut subdirs = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => return problem(dir, format!("cannot read policy directory: {e}")),
            };
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                problem(&path, "file name is not UTF-8".into());
                continue;
            };
            let relative = format!("{prefix}{name}");
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    problem(&path, format!("cannot read: {e}"));
                    continue;
                }
            };
            if meta.file_type().is_symlink() {
                problem(
                    &path,
                    "is a symlink: a policy set holds regular files only (copy the file in)".into(),
                );
            } else if meta.is_dir() {
                subdirs.push((path, relative));
            } else if !meta.is_file() {
                problem(&path, "is not a regular file".into());
            } else if self.files.len() >= MAX_FILES {
                problem(
                    dir,
                    format!("more than {MAX_FILES} files in the policy set"),
                );
                return;
            } else {
                match read_regular(&path, &meta, MAX_SET_BYTES - *total) {
                    Ok(bytes) => {
                        *total += bytes.len() as u64;
                        if relative == SIGNATURE_FILE {
                            self.signature = Some(bytes);
                        } else {
                            self.files.insert(relative, bytes);
                        }
                    }
                    Err(message) => problem(&path, message),
                }
            }
        }
        for (path, relative) in subdirs {
            if depth + 1 > MAX_DEPTH {
                problems.push(Problem {
                    file: path,
                    at: None,
                    message: format!("nested deeper than {MAX_DEPTH} directories"),
                });
                continue;
            }
            self.read_dir(&path, &format!("{relative}/"), depth + 1, total, problems);
        }
    }

    /// The directory it was read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file's text (`Err` says why there is none, for a problem naming the file).
    pub fn text(&self, name: &str) -> Result<&str, String> {
        let bytes = self
            .files
            .get(name)
            .ok_or_else(|| "cannot read: no such file in the policy set".to_owned())?;
        std::str::from_utf8(bytes).map_err(|_| "cannot read: not UTF-8 text".to_owned())
    }

    /// A file's text if the set has the file.
    pub fn optional_text(&self, name: &str) -> Option<Result<&str, String>> {
        self.files.contains_key(name).then(|| self.text(name))
    }

    /// Names of the top-level files ending in `.<extension>`, sorted.
    pub fn top_level(&self, extension: &str) -> Vec<&str> {
        let suffix = format!(".{extension}");
        self.files
            .keys()
            .filter(|name| !name.contains('/') && name.ends_with(&suffix))
            .map(String::as_str)
            .collect()
    }

    /// Names of the files directly in the subdirectory `dir` (`tests/`) ending in `suffix`,
    /// sorted.
    pub(super) fn named<'a>(&'a self, dir: &'a str, suffix: &'a str) -> Vec<&'a str> {
        self.files
            .keys()
            .filter(|name| {
                name.strip_prefix(dir)
                    .is_some_and(|rest| !rest.contains('/') && rest.ends_with(suffix))
            })
            .map(String::as_str)
            .collect()
    }

    /// The signature file's bytes, if any.
    pub(super) fn signature(&self) -> Option<&[u8]> {
        self.signature.as_deref()
    }

    /// SHA-256 over the set's canonical form: a version tag, then every file (the signature
    /// file aside) in byte order of its relative path, each as the length-prefixed path and
    /// length-prefixed content. Lengths make every set's encoding unique; the tag keeps a
    /// signature over any other encoding from ever matching.
    pub fn content_sha256(&self) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"privgate policy set v1\n");
        for (path, bytes) in &self.files {
            for part in [path.as_bytes(), bytes.as_slice()] {
                ctx.update(&(part.len() as u64).to_be_bytes());
                ctx.update(part);
            }
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ctx.finish().as_ref());
        digest
    }
}

/// Reads a file `symlink_metadata` found regular, refusing it if what opened is another
/// file (a symlink swapped in since) or it is larger than `room`.
fn read_regular(path: &Path, seen: &std::fs::Metadata, room: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let opened = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if (opened.dev(), opened.ino()) != (seen.dev(), seen.ino()) || !opened.is_file() {
        return Err("changed into another file while being read (a symlink?)".into());
    }
    let mut bytes = Vec::new();
    file.take(room + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > room {
        return Err(format!(
            "the policy set is larger than {MAX_SET_BYTES} bytes"
        ));
    }
    Ok(bytes)
}

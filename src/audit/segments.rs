//! A replica's chain on disk: one or more segment files, each continuing the chain where the
//! one before it ends (the next record's `seq` and `prev` follow on), so a chain reads the
//! same whether it is one file or many.
//!
//! `<replica>.jsonl` is the first segment (record 1 on); rotation starts
//! `<replica>@<first seq, 20 digits>.jsonl` and never renames or rewrites a segment, so a
//! kill at any point of a rotation leaves whole files: at worst a new, empty segment the
//! writer resumes into. `@` is not allowed in replica ids, so one replica's segments are never
//! taken for another's.

use super::AuditError;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// One file of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) path: PathBuf,
    /// The sequence number its name says its first record has.
    pub(crate) first_seq: u64,
}

/// Where the segment of the chain whose first segment is `base` starting at `first_seq` lives.
pub(crate) fn segment_path(base: &Path, first_seq: u64) -> PathBuf {
    if first_seq <= 1 {
        return base.to_path_buf();
    }
    let stem = stem(base);
    base.with_file_name(format!("{stem}@{first_seq:020}.jsonl"))
}

fn stem(base: &Path) -> String {
    base.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The segment a file name is, for the chain named `stem` (`None`: not one of its files).
fn parse(stem: &str, name: &str) -> Option<u64> {
    if name == format!("{stem}.jsonl") {
        return Some(1);
    }
    let digits = name.strip_prefix(stem)?.strip_prefix('@')?;
    let digits = digits.strip_suffix(".jsonl")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The segments of the chain whose first segment is `base`, oldest first (retention may
/// have deleted the first ones, `base` included).
pub(crate) fn of(base: &Path) -> Result<Vec<Segment>, AuditError> {
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let stem = stem(base);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AuditError::io(dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AuditError::io(dir, e))?;
        let name = entry.file_name();
        if let Some(first_seq) = parse(&stem, &name.to_string_lossy()) {
            found.push(Segment {
                path: dir.join(name),
                first_seq,
            });
        }
    }
    // A first segment named otherwise (a copy verified with `--log backup.txt`) is still
    // the chain's start.
    if !found.iter().any(|s| s.first_seq == 1) && base.exists() {
        found.push(Segment {
            path: base.to_path_buf(),
            first_seq: 1,
        });
    }
    found.sort_by_key(|s| s.first_seq);
    Ok(found)
}

/// Every chain in `dir`, each as its segments oldest first, by replica name.
pub(crate) fn every_chain(dir: &Path) -> Result<Vec<(String, Vec<Segment>)>, AuditError> {
    let mut replicas: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| AuditError::io(dir, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".jsonl")?;
            Some(stem.split('@').next().unwrap_or(stem).to_owned())
        })
        .collect();
    replicas.sort();
    replicas.dedup();
    replicas
        .into_iter()
        .map(|replica| {
            let segments = of(&dir.join(format!("{replica}.jsonl")))?;
            Ok((replica, segments))
        })
        .collect()
}

/// Calls `each` with every line of `segments` in chain order, one line in memory at a time,
/// with the file and its 1-based line number; stops early when `each` says so.
pub(crate) fn for_each_line(
    segments: &[Segment],
    mut each: impl FnMut(&Segment, usize, &str) -> std::ops::ControlFlow<()>,
) -> Result<(), AuditError> {
    for segment in segments {
        let file =
            std::fs::File::open(&segment.path).map_err(|e| AuditError::io(&segment.path, e))?;
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| AuditError::io(&segment.path, e))?;
            if each(segment, index + 1, &line).is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_belong_to_one_chain() {
        let base = Path::new("/a/gw-1.jsonl");
        assert_eq!(segment_path(base, 1), base);
        let later = segment_path(base, 1001);
        assert_eq!(later, Path::new("/a/gw-1@00000000000000001001.jsonl"));
        // (file name, segment of `gw-1`)
        let cases = [
            ("gw-1.jsonl", Some(1)),
            ("gw-1@00000000000000001001.jsonl", Some(1001)),
            ("gw-1@1001.jsonl", None),
            ("gw-1@0000000000000000100x.jsonl", None),
            ("gw-10.jsonl", None),
            ("gw-10@00000000000000001001.jsonl", None),
            ("gw-1.jsonl.tmp", None),
            ("gw-1@00000000000000001001.jsonl.gz", None),
        ];
        for (name, expected) in cases {
            assert_eq!(parse("gw-1", name), expected, "{name}");
        }
    }
}

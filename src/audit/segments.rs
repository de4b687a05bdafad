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
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
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

/// The end of a segment a write cut short: the bytes after its last newline. The writer
/// writes each batch with one `write(2)`, but Linux copies a write to a regular file page by
/// page and stops at a pending SIGKILL, so a kill can leave a batch half-written. Only the
/// newest segment can end so (rotation starts the next one after a write has returned), and
/// nothing in it was acknowledged: callers waiting for their record wait for the `fsync`
/// after the whole write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TornTail {
    /// Where the last whole line ends (0: the segment holds none).
    pub(crate) whole: u64,
    /// The bytes after it.
    pub(crate) torn: u64,
}

/// The torn tail of the segment at `path`, if its last byte is not a newline.
pub(crate) fn torn_tail(path: &Path) -> Result<Option<TornTail>, AuditError> {
    let io = |e| AuditError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    // Back from the end a block at a time: a record is far shorter than a block, so this
    // reads one block unless the file ends in something else.
    let mut end = len;
    let mut block = vec![0; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let block = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        file.read_exact(block).map_err(io)?;
        if let Some(at) = block.iter().rposition(|&b| b == b'\n') {
            let whole = start + at as u64 + 1;
            return Ok((whole < len).then_some(TornTail {
                whole,
                torn: len - whole,
            }));
        }
        end = start;
    }
    Ok((len > 0).then_some(TornTail {
        whole: 0,
        torn: len,
    }))
}

/// Calls `each` with every line of `segments` in chain order, one line in memory at a time,
/// with the file and its 1-based line number; stops early when `each` says so. The newest
/// segment's [torn tail](TornTail), if any, is not a line; an unterminated last line of an
/// older segment is.
pub(crate) fn for_each_line(
    segments: &[Segment],
    mut each: impl FnMut(&Segment, usize, &str) -> std::ops::ControlFlow<()>,
) -> Result<(), AuditError> {
    let mut line = String::new();
    for (index, segment) in segments.iter().enumerate() {
        let newest = index + 1 == segments.len();
        let file = File::open(&segment.path).map_err(|e| AuditError::io(&segment.path, e))?;
        let mut reader = BufReader::new(file);
        for n in 1.. {
            line.clear();
            let read = reader
                .read_line(&mut line)
                .map_err(|e| AuditError::io(&segment.path, e))?;
            let terminated = line.ends_with('\n');
            if read == 0 || (newest && !terminated) {
                break;
            }
            let text = line.strip_suffix('\n').unwrap_or(&line);
            if each(segment, n, text).is_break() {
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

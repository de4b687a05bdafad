use super::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn settings(dir: &Path, every: u64) -> AuditSettings {
    replica_settings(dir, "gw-1", every)
}

/// Settings of `replica`: its own chain file, the sink shared by every replica.
fn replica_settings(dir: &Path, replica: &str, every: u64) -> AuditSettings {
    AuditSettings {
        log: dir.join(format!("{replica}.jsonl")),
        checkpoint_sink: dir.join("sink/checkpoints.jsonl"),
        replica: replica.into(),
        checkpoint_every: every,
        checkpoint_interval: Duration::from_secs(3600),
        rotation: Rotation::default(),
    }
}

fn key() -> AuditKey {
    AuditKey::from_bytes(&[42u8; 32]).unwrap()
}

fn event(i: usize) -> AuditEvent {
    AuditEvent {
        request_id: format!("req-{i}"),
        principal: "anonymous".into(),
        route: "customers".into(),
        method: "GET".into(),
        status: 200,
        decision: "allow".into(),
        ..Default::default()
    }
}

/// Writes `n` records (checkpoint every `every`), closes, returns the settings.
async fn write(dir: &Path, n: usize, every: u64) -> AuditSettings {
    write_replica(dir, "gw-1", n, every).await
}

async fn write_replica(dir: &Path, replica: &str, n: usize, every: u64) -> AuditSettings {
    let s = replica_settings(dir, replica, every);
    let log = AuditLog::open(s.clone(), key()).unwrap();
    for i in 0..n {
        log.append(event(i), i % 3 == 0).await.unwrap();
    }
    log.close().await;
    s
}

/// Verifies as `privgate audit verify` does: the replica from the settings, not the chain.
fn check(s: &AuditSettings) -> VerifyReport {
    verify(&s.log, &s.checkpoint_sink, &s.replica, &key()).unwrap()
}

/// Every record through `edit`, then re-hashed and re-linked: a chain that is internally
/// consistent again, as an attacker without the checkpoint key can make one.
fn rechain(lines: &[String], edit: impl Fn(&mut RecordBody)) -> Vec<String> {
    let mut prev = GENESIS.to_owned();
    lines
        .iter()
        .map(|line| {
            let mut record: AuditRecord = serde_json::from_str(line).unwrap();
            edit(&mut record.body);
            record.body.prev = prev.clone();
            let sealed = record.body.seal();
            prev = sealed.hash.clone();
            serde_json::to_string(&sealed).unwrap()
        })
        .collect()
}

fn lines(path: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rewrite(path: &PathBuf, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

#[tokio::test]
async fn an_intact_chain_verifies_and_resumes_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), 10, 4).await;
    let log = AuditLog::open(s.clone(), key()).unwrap();
    log.append(event(10), true).await.unwrap();
    log.close().await;
    let report = check(&s);
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(report.records, 11);
    // Checkpoints fall on batch boundaries once 4 records have gathered, and on each close.
    assert!(report.checkpoints >= 3, "{report:?}");
    assert_eq!(report.last_checkpoint_seq, 11);
    let text = std::fs::read_to_string(&s.log).unwrap();
    assert!(!text.contains("secret") && text.contains("req-10"));
}

#[tokio::test]
async fn each_kind_of_tampering_is_found_and_located() {
    // (what the attacker does to the lines, expected problem fragment)
    type Tamper = fn(&mut Vec<String>);
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "edit a field",
            |l| l[4] = l[4].replace("\"status\":200", "\"status\":201"),
            "line 5: record edited",
        ),
        (
            "add a field",
            |l| l[4] = l[4].replacen('{', "{\"note\":\"x\",", 1),
            "line 5: record edited",
        ),
        (
            "delete a record",
            |l| {
                l.remove(4);
            },
            "line 5: sequence 6 where 5",
        ),
        (
            "swap two records",
            |l| l.swap(3, 4),
            "line 4: sequence 5 where 4",
        ),
        (
            "insert a copy",
            |l| {
                let c = l[2].clone();
                l.insert(3, c);
            },
            "line 4: sequence 3 where 4",
        ),
        (
            "garbage line",
            |l| l[6] = "not json".into(),
            "line 7: not an audit record",
        ),
        (
            "truncate before the last checkpoint",
            |l| l.truncate(6),
            "a checkpoint pins record 10 of replica `gw-1` but the verified chain ends at record 6",
        ),
    ];
    for (name, tamper, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let s = write(dir.path(), 10, 4).await;
        let mut l = lines(&s.log);
        tamper(&mut l);
        rewrite(&s.log, &l);
        let problems = check(&s).problems;
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{name}: expected `{expected}` in {problems:?}"
        );
    }
}

#[tokio::test]
async fn a_rechained_log_is_caught_by_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), 10, 4).await;
    // The attacker edits record 2 and recomputes every hash after it: the chain is
    // internally consistent again, but checkpoints (MAC'd under a key they lack) disagree.
    let rechained = rechain(&lines(&s.log), |body| {
        if body.seq == 2 {
            body.event.principal = "someone-else".into();
        }
    });
    rewrite(&s.log, &rechained);
    let problems = check(&s).problems;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("record 4 differs from its checkpoint")),
        "{problems:?}"
    );

    // Forging a checkpoint without the key is caught too.
    let mut sink = lines(&s.checkpoint_sink);
    let mut forged: Checkpoint = serde_json::from_str(&sink[0]).unwrap();
    forged.hash = "00".repeat(32);
    sink[0] = serde_json::to_string(&forged).unwrap();
    rewrite(&s.checkpoint_sink, &sink);
    let problems = check(&s).problems;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("checkpoint line 1: MAC invalid")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn truncation_after_the_last_checkpoint_is_not_detectable() {
    // Documented limit (SECURITY.md): records not yet pinned by a checkpoint can be cut.
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 4);
    let log = AuditLog::open(s.clone(), key()).unwrap();
    for i in 0..6 {
        // One durable record at a time: each is its own batch, checkpoint after record 4.
        log.append(event(i), true).await.unwrap();
    }
    // A crash now: the files as they are, without the closing checkpoint.
    let (chain, sink) = (lines(&s.log), lines(&s.checkpoint_sink));
    log.close().await;
    rewrite(&s.checkpoint_sink, &sink);
    rewrite(&s.log, &chain[..5]);
    let report = check(&s);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!((report.records, report.last_checkpoint_seq), (5, 4));
}

#[tokio::test]
async fn a_corrupt_tail_refuses_to_open_and_write_errors_fail_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), 3, 100).await;
    let mut l = lines(&s.log);
    l[2] = l[2].replace("req-2", "req-X");
    rewrite(&s.log, &l);
    match AuditLog::open(s.clone(), key()) {
        Err(AuditError::Corrupt(m)) => assert!(m.contains("does not match its hash"), "{m}"),
        other => panic!("expected corrupt, got {:?}", other.map(|_| ())),
    }

    // A full disk: /dev/full accepts opens and fails every write with ENOSPC.
    if Path::new("/dev/full").exists() {
        let full = AuditSettings {
            log: PathBuf::from("/dev/full"),
            ..settings(dir.path(), 100)
        };
        let log = AuditLog::open(full, key()).unwrap();
        assert!(matches!(
            log.append(event(0), true).await,
            Err(AuditError::Io(_))
        ));
        assert!(!log.is_healthy());
        // Unhealthy: a caller that must wait for the disk hears so at once; other records
        // are held for the writer's next try.
        assert_eq!(log.append(event(1), true).await, Err(AuditError::Failed));
        assert_eq!(log.append(event(2), false).await, Ok(()));
    }
}

#[tokio::test]
async fn a_chain_that_does_not_reach_the_sinks_checkpoints_fails() {
    // What an attacker who can write the chain (not the sink, not the key) can do to the
    // whole file: each must fail verification, however consistent the chain left behind.
    type Attack = fn(&AuditSettings);
    let attacks: Vec<(&str, Attack, &str)> = vec![
        (
            "emptied",
            |s| std::fs::write(&s.log, "").unwrap(),
            "but the verified chain ends at record 0",
        ),
        (
            "deleted",
            |s| std::fs::remove_file(&s.log).unwrap(),
            "the chain file does not exist",
        ),
        (
            "relabelled, hashes recomputed",
            |s| {
                let l = rechain(&lines(&s.log), |b| b.replica = "gw-9".into());
                rewrite(&s.log, &l);
            },
            "line 1: record of replica `gw-9` where the chain of `gw-1` was expected",
        ),
        (
            "relabelled and cut to 35 of 41 records",
            |s| {
                let mut l = rechain(&lines(&s.log), |b| b.replica = "Gw-1".into());
                l.truncate(35);
                rewrite(&s.log, &l);
            },
            "record of replica `Gw-1`",
        ),
        (
            "replaced by another replica's genuine chain",
            |s| {
                std::fs::copy(s.log.with_file_name("gw-2.jsonl"), &s.log)
                    .map(|_| ())
                    .unwrap()
            },
            "record of replica `gw-2`",
        ),
        (
            "replaced by a shorter chain re-labelled as this replica",
            |s| {
                let other = lines(&s.log.with_file_name("gw-2.jsonl"));
                rewrite(&s.log, &rechain(&other, |b| b.replica = "gw-1".into()));
            },
            "differs from its checkpoint",
        ),
        (
            "a fresh chain of one record written in its place",
            |s| {
                let l = rechain(&lines(&s.log)[..1], |b| b.event.status = 500);
                rewrite(&s.log, &l);
            },
            "but the verified chain ends at record 1",
        ),
    ];
    for (name, attack, expected) in attacks {
        let dir = tempfile::tempdir().unwrap();
        write_replica(dir.path(), "gw-2", 5, 2).await;
        let s = write(dir.path(), 41, 4).await;
        assert_eq!(check(&s).problems, Vec::<String>::new(), "{name}: intact");
        attack(&s);
        let report = check(&s);
        assert!(
            report.problems.iter().any(|p| p.contains(expected)),
            "{name}: expected `{expected}` in {:?}",
            report.problems
        );
        // Whatever the first problem, the checkpoints the chain no longer reaches say so.
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("checkpoint") && p.contains("41")),
            "{name}: the last checkpoint (record 41) is not reported unreached: {:?}",
            report.problems
        );
    }
}

#[tokio::test]
async fn the_replica_verified_is_the_one_asked_for_and_the_sink_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let one = write(dir.path(), 6, 2).await;
    let two = write_replica(dir.path(), "gw-2", 3, 2).await;
    // Two replicas sharing a sink each verify against their own checkpoints only.
    for s in [&one, &two] {
        let report = check(s);
        assert_eq!(report.problems, Vec::<String>::new(), "{}", s.replica);
    }
    assert_eq!((check(&one).records, check(&two).records), (6, 3));
    // A genuine chain checked as another replica's (a wrong flag, a renamed file) fails.
    for replica in ["gw-2", "GW-1", "gw-1 ", ""] {
        let report = verify(&one.log, &one.checkpoint_sink, replica, &key()).unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("line 1: record of replica `gw-1`")),
            "{replica:?}: {:?}",
            report.problems
        );
    }
    // A new replica with no checkpoints yet and an empty chain is intact (nothing pinned).
    let fresh = replica_settings(dir.path(), "gw-3", 2);
    std::fs::write(&fresh.log, "").unwrap();
    let report = check(&fresh);
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!((report.records, report.checkpoints), (0, 0));
    // Without its sink, nothing verifies: not even a chain no checkpoint pinned yet.
    std::fs::remove_file(&one.checkpoint_sink).unwrap();
    for s in [&one, &fresh] {
        let problems = check(s).problems;
        assert!(
            problems
                .iter()
                .any(|p| p.contains("checkpoint sink") && p.contains("does not exist")),
            "{problems:?}"
        );
    }
}

#[tokio::test]
async fn the_checkpoint_clock_pins_records_without_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let s = AuditSettings {
        checkpoint_interval: Duration::from_millis(50),
        ..settings(dir.path(), 100)
    };
    let log = AuditLog::open(s.clone(), key()).unwrap();
    log.append(event(0), false).await.unwrap();
    log.append(event(1), true).await.unwrap();
    // Well under `checkpoint_every`: only the clock can have written a checkpoint.
    let mut waited = Duration::ZERO;
    while lines(&s.checkpoint_sink).is_empty() && waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    let report = check(&s);
    assert_eq!((report.records, report.last_checkpoint_seq), (2, 2));
    // An idle log asks for no further checkpoints.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(lines(&s.checkpoint_sink).len(), 1);
    drop(log);
}

/// A full queue is waited on, never overflowed: with room for one record, records appended
/// back to back (most of them finding the queue full while the writer thread takes the one
/// before) all reach the chain, in the order they were appended.
#[tokio::test]
async fn appends_wait_for_room_in_a_full_queue_and_none_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 1_000);
    let log = AuditLog::open_with_queue(s.clone(), key(), 1).unwrap();
    let n: usize = 300;
    for i in 0..n {
        log.append(event(i), i % 100 == 99).await.unwrap();
    }
    log.close().await;
    let report = check(&s);
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(report.records, n as u64);
    let ids: Vec<String> = lines(&s.log)
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(v.get("request_id")?.as_str()?.to_owned())
        })
        .collect();
    let expected: Vec<String> = (0..n).map(|i| format!("req-{i}")).collect();
    assert_eq!(ids, expected);
}

/// `n` records, each its own durable batch, with segments sealed at `max_bytes`.
async fn write_rotated(dir: &Path, n: usize, max_bytes: u64) -> AuditSettings {
    let s = AuditSettings {
        rotation: Rotation {
            max_bytes: Some(max_bytes),
            max_age: None,
        },
        ..settings(dir, 1000)
    };
    let log = AuditLog::open(s.clone(), key()).unwrap();
    for i in 0..n {
        log.append(event(i), true).await.unwrap();
    }
    log.close().await;
    s
}

fn segment_files(s: &AuditSettings) -> Vec<PathBuf> {
    segments::of(&s.log)
        .unwrap()
        .into_iter()
        .map(|segment| segment.path)
        .collect()
}

#[tokio::test]
async fn rotation_continues_the_chain_across_segments_and_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // Two records per segment (a record is 400 to 800 bytes).
    let s = write_rotated(dir.path(), 12, 800).await;
    let files = segment_files(&s);
    assert!(files.len() >= 4, "{files:?}");
    assert_eq!(files[0], s.log);
    // (the other rotation tests cut and edit segments of two records)
    assert!(files[..files.len() - 1].iter().all(|f| lines(f).len() == 2));
    // Each segment starts where its name says and continues the one before it.
    let mut next = 1;
    for file in &files {
        let first: AuditRecord = serde_json::from_str(&lines(file)[0]).unwrap();
        assert_eq!(segments::segment_path(&s.log, first.body.seq), *file);
        assert_eq!(first.body.seq, next);
        next += lines(file).len() as u64;
    }
    let report = check(&s);
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!((report.records, report.segments), (12, files.len()));
    // Every sealed segment's last record is pinned, for retention.
    let sink = lines(&s.checkpoint_sink);
    for file in &files[..files.len() - 1] {
        let last: AuditRecord = serde_json::from_str(lines(file).last().unwrap()).unwrap();
        assert!(
            sink.iter().any(|c| c.contains(&last.hash)),
            "{file:?} ends unpinned"
        );
    }
    // A restart resumes in the newest segment.
    let log = AuditLog::open(s.clone(), key()).unwrap();
    log.append(event(12), true).await.unwrap();
    log.close().await;
    assert_eq!(check(&s).records, 13);
    assert_eq!(check(&s).problems, Vec::<String>::new());
}

#[tokio::test]
async fn a_missing_renamed_or_edited_middle_segment_is_found() {
    type Attack = fn(&[PathBuf]);
    let attacks: Vec<(&str, Attack, &str)> = vec![
        (
            "deleted",
            |f| std::fs::remove_file(&f[2]).unwrap(),
            "a segment missing",
        ),
        (
            "emptied",
            |f| std::fs::write(&f[2], "").unwrap(),
            "a segment missing",
        ),
        (
            "one record edited",
            |f| {
                let l = lines(&f[2]);
                rewrite(&f[2], &[l[0].replace("req-", "req-X")]);
            },
            "line 1: record edited",
        ),
        (
            "re-chained within the segment",
            |f| {
                // The segment's last record edited and re-hashed: the segment is
                // consistent, the next one no longer follows it.
                let mut l = lines(&f[2]);
                let last = l.last_mut().unwrap();
                let mut r: AuditRecord = serde_json::from_str(last).unwrap();
                r.body.event.principal = "someone-else".into();
                *last = serde_json::to_string(&r.body.seal()).unwrap();
                rewrite(&f[2], &l);
            },
            "does not follow the previous record",
        ),
        (
            "renamed over a missing one",
            |f| {
                std::fs::remove_file(&f[2]).unwrap();
                std::fs::rename(&f[3], &f[2]).unwrap();
            },
            "the segment's name says it starts at record",
        ),
    ];
    for (name, attack, expected) in attacks {
        let dir = tempfile::tempdir().unwrap();
        let s = write_rotated(dir.path(), 12, 800).await;
        let files = segment_files(&s);
        assert!(files.len() >= 5, "{files:?}");
        attack(&files);
        let problems = check(&s).problems;
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{name}: expected `{expected}` in {problems:?}"
        );
    }
}

#[tokio::test]
async fn retention_deletes_whole_oldest_segments_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let s = write_rotated(dir.path(), 12, 800).await;
    let files = segment_files(&s);
    let kept_from: AuditRecord = serde_json::from_str(&lines(&files[2])[0]).unwrap();
    for file in &files[..2] {
        std::fs::remove_file(file).unwrap();
    }
    let report = check(&s);
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(
        (report.first_record, report.records),
        (kept_from.body.seq, 12)
    );
    // The writer resumes a pruned chain.
    let log = AuditLog::open(s.clone(), key()).unwrap();
    log.append(event(12), true).await.unwrap();
    log.close().await;
    assert_eq!(check(&s).problems, Vec::<String>::new());

    // Records cut from the head of the oldest kept segment are not retention.
    let mut l = lines(&files[2]);
    l.remove(0);
    rewrite(&files[2], &l);
    let problems = check(&s).problems;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("name says it starts at record")),
        "{problems:?}"
    );
    // Nor is a head whose anchor the sink does not hold.
    std::fs::remove_file(&files[2]).unwrap();
    let anchor: AuditRecord = serde_json::from_str(&lines(&files[3])[0]).unwrap();
    let sink: Vec<String> = lines(&s.checkpoint_sink)
        .into_iter()
        .filter(|c| !c.contains(&anchor.body.prev))
        .collect();
    rewrite(&s.checkpoint_sink, &sink);
    let problems = check(&s).problems;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("no checkpoint pins record")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn a_rotation_killed_after_creating_the_next_segment_resumes_there() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), 5, 2).await;
    // The state a kill leaves between creating the next segment and writing to it.
    let next = segments::segment_path(&s.log, 6);
    std::fs::write(&next, "").unwrap();
    let log = AuditLog::open(s.clone(), key()).unwrap();
    log.append(event(5), true).await.unwrap();
    log.close().await;
    assert_eq!(lines(&next).len(), 1);
    let report = check(&s);
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!((report.records, report.segments), (6, 2));

    // An empty segment that does not continue the chain refuses to open.
    std::fs::write(segments::segment_path(&s.log, 9), "").unwrap();
    match AuditLog::open(s.clone(), key()) {
        Err(AuditError::Corrupt(m)) => assert!(m.contains("empty segment for record 9"), "{m}"),
        other => panic!("expected corrupt, got {:?}", other.map(|_| ())),
    }
}

/// Stops the writer as a kill would: no closing checkpoint in the sink.
async fn crash(log: AuditLog, s: &AuditSettings) {
    let sink = std::fs::read(&s.checkpoint_sink).unwrap();
    log.close().await;
    std::fs::write(&s.checkpoint_sink, sink).unwrap();
}

/// What a kill inside one batch's `write(2)` leaves: `n` records whose last two are one
/// batch, the chain file cut at `keep(where the batch starts, where its first record ends,
/// where it ends)` bytes, and the sink as before the close (a crash writes no closing
/// checkpoint).
async fn torn_at(
    dir: &Path,
    n: usize,
    keep: impl Fn(usize, usize, usize) -> usize,
) -> AuditSettings {
    let s = settings(dir, 1000);
    let log = AuditLog::open(s.clone(), key()).unwrap();
    for i in 0..n - 2 {
        log.append(event(i), true).await.unwrap();
    }
    // The last two records in one batch: queued together, written by one write.
    let (a, b) = tokio::join!(
        log.append(event(n - 2), false),
        log.append(event(n - 1), true)
    );
    assert_eq!((a, b), (Ok(()), Ok(())));
    crash(log, &s).await;
    let text = std::fs::read_to_string(&s.log).unwrap();
    let ends: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
    let cut = keep(ends[n - 3], ends[n - 2], ends[n - 1]);
    std::fs::write(&s.log, &text.as_bytes()[..cut]).unwrap();
    s
}

#[tokio::test]
async fn a_batch_a_kill_tore_is_reported_apart_and_cut_when_the_chain_reopens() {
    // (where the write stopped, whole records left before the tear)
    type Keep = fn(usize, usize, usize) -> usize;
    let cases: [(&str, Keep, u64); 5] = [
        ("one byte into the batch", |start, _, _| start + 1, 4),
        ("mid-record", |start, first, _| (start + first) / 2, 4),
        (
            "a record whole but for its newline",
            |_, first, _| first - 1,
            4,
        ),
        ("a record whole, the next begun", |_, first, _| first + 7, 5),
        (
            "the batch whole but for its last newline",
            |_, _, end| end - 1,
            5,
        ),
    ];
    for (what, keep, whole) in cases {
        let dir = tempfile::tempdir().unwrap();
        let s = torn_at(dir.path(), 6, keep).await;
        let len = std::fs::metadata(&s.log).unwrap().len();
        let report = check(&s);
        assert_eq!(report.problems, Vec::<String>::new(), "{what}");
        assert_eq!(report.records, whole, "{what}");
        assert!(report.torn_bytes > 0, "{what}: {report:?}");
        // The open cuts the tail (only it) and continues from the last whole record.
        let log = AuditLog::open(s.clone(), key()).unwrap();
        let kept = std::fs::metadata(&s.log).unwrap().len();
        assert_eq!(kept + report.torn_bytes, len, "{what}");
        log.append(event(9), true).await.unwrap();
        log.close().await;
        let after = check(&s);
        assert_eq!(after.problems, Vec::<String>::new(), "{what}");
        assert_eq!((after.records, after.torn_bytes), (whole + 1, 0), "{what}");
        assert_eq!(lines(&s.log).len() as u64, whole + 1, "{what}");
    }
}

#[tokio::test]
async fn only_the_newest_segment_can_end_torn() {
    let dir = tempfile::tempdir().unwrap();
    // Two records per segment: segments start at records 1, 3, 5.
    let s = AuditSettings {
        rotation: Rotation {
            max_bytes: Some(800),
            max_age: None,
        },
        ..settings(dir.path(), 1000)
    };
    let log = AuditLog::open(s.clone(), key()).unwrap();
    for i in 0..6 {
        log.append(event(i), true).await.unwrap();
    }
    crash(log, &s).await;
    let files = segment_files(&s);
    assert_eq!(files.len(), 3, "{files:?}");

    // The newest segment's first batch torn: the chain ends with the segment before it, and
    // the open continues into the emptied newest segment.
    let newest = std::fs::read(&files[2]).unwrap();
    std::fs::write(&files[2], &newest[..40]).unwrap();
    let report = check(&s);
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!((report.records, report.torn_bytes), (4, 40));
    let log = AuditLog::open(s.clone(), key()).unwrap();
    log.append(event(6), true).await.unwrap();
    log.close().await;
    let report = check(&s);
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!((report.records, report.segments), (5, 3));
    assert_eq!(lines(&files[2]).len(), 1);

    // An older segment cut short is not a crash's tear (rotation starts a segment only after
    // a write returned): a problem, and the open is refused when the chain continues it.
    let older = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &older[..older.len() - 30]).unwrap();
    let report = check(&s);
    assert_eq!(report.torn_bytes, 0);
    assert!(
        report.problems[0].contains("line 2: not an audit record"),
        "{:?}",
        report.problems
    );
}

//! Appending to a replica's chain.
//!
//! One dedicated writer thread owns the file. Records queue to it; it writes what has
//! gathered as one batch, with one `write` per batch and one `fsync` per batch only when
//! the batch holds a record whose caller waits for durability (group commit). Each record is
//! serialised once: the line written is the JSON its hash covers, with the hash appended.
//! Checkpoints go to the sink every `checkpoint_every` records, every `checkpoint_interval`
//! with new records, and on close.
//!
//! A write error (a full disk, a file system gone read-only, a failed `fsync`) makes the log
//! unhealthy: the gateway refuses new requests, and callers waiting for durability hear the
//! error (their clear reveals are withheld, and their records dropped). The writer cuts the
//! file back to the end of its last complete batch, keeps the other records it holds
//! (requests already served), and tries again every [`RETRY_EVERY`]; once a write succeeds
//! it writes them, chained from the last record on disk, and the log is healthy again: no
//! restart, no gap in the chain, no served request without its record. A panic of the
//! writer still fails the log for good.
//!
//! Rotation ([`Rotation`]) seals the current segment once it is big or old enough: the
//! writer checkpoints its last record (so the segment can later be deleted under retention
//! and what follows still verifies from that checkpoint), creates the next segment, makes
//! the directory entry durable, and only then writes there. A kill at any step leaves the
//! segments whole; the next open resumes after the last record of the newest non-empty one,
//! into the newest (possibly still empty) segment. A rotation that fails (say the disk is
//! full) keeps writing the current segment and tries again later: rotation never makes the
//! log unhealthy on its own.
//!
//! A thread rather than a task: the writes block, and a `spawn_blocking` hop per batch cost
//! two extra thread wake-ups per batch on the request path.
//!
//! After each write the writer lingers ([`LINGER`]) before taking the next batch, so that
//! under load records gather without waking it: waking a parked thread is a system call and
//! a context switch on the request path, once per record when it parks after every write.
//! A record whose caller waits for durability (and a close) wakes it at once, so only
//! records nobody waits for (the response has already left) can reach the file up to that
//! much later.

use super::checkpoint::AuditKey;
use super::record::{AuditEvent, BodyRef};
use super::resume::resume;
use super::AuditError;
use crate::config::AuditConfig;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Records waiting for the writer; beyond this, appends wait (back-pressure, not loss).
const QUEUE: usize = 4096;

/// How long the writer waits after a write for more records before writing again (see the
/// module documentation). Short beside what a crash loses anyway (records not yet written
/// are lost however soon they would have been); long enough to batch a busy gateway's
/// records (about 10 per write at 10,000 requests per second).
pub(crate) const LINGER: Duration = Duration::from_millis(1);

/// How often an unhealthy log tries to write again: short, because the gateway refuses
/// every request meanwhile; each try is one `write` of what is held.
pub(crate) const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Records an unhealthy log holds for its next try (requests served just before the
/// failure, refusals since). Beyond this, appends fail and their records are lost
/// (logged); served requests come first, since new ones are refused while unhealthy.
const HOLD_LIMIT: usize = 65_536;

/// How often an unsuccessful rotation is tried again: the current segment keeps taking
/// records meanwhile, so there is no hurry, and each try costs a checkpoint fsync.
const ROTATION_RETRY: Duration = Duration::from_secs(30);

/// When the writer seals the current segment and starts the next one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Seal a segment once it holds this many bytes (`None`: never by size).
    pub max_bytes: Option<u64>,
    /// Seal a segment once its first record is this old (`None`: never by age).
    pub max_age: Option<Duration>,
}

/// Where and how a replica's chain is written.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The chain's first segment (`<dir>/<replica>.jsonl`); later ones sit beside it.
    pub log: PathBuf,
    /// The checkpoint sink (ideally another file system).
    pub checkpoint_sink: PathBuf,
    /// Replica id.
    pub replica: String,
    /// Records between checkpoints.
    pub checkpoint_every: u64,
    /// Longest time between checkpoints while records arrive.
    pub checkpoint_interval: Duration,
    /// When segments are sealed.
    pub rotation: Rotation,
}

impl AuditSettings {
    /// Where this replica writes, as `[audit]` says.
    pub fn from_config(config: &AuditConfig) -> Self {
        let replica = config.replica_id();
        Self {
            log: config.dir.join(format!("{replica}.jsonl")),
            checkpoint_sink: config.checkpoint_sink.clone(),
            replica,
            checkpoint_every: config.checkpoint_every,
            checkpoint_interval: config.checkpoint_interval,
            rotation: Rotation {
                max_bytes: Some(config.rotate_bytes).filter(|&b| b > 0),
                max_age: Some(config.rotate_after).filter(|d| !d.is_zero()),
            },
        }
    }
}

/// What the writer thread is asked to do.
// Nearly every job is a record, which the queue holds by value as before; boxing it to shrink
// the two rare unit variants would cost an allocation per record.
#[allow(clippy::large_enum_variant)]
enum Job {
    /// Append a record; `done` (if any) hears once it is on disk.
    Record {
        event: AuditEvent,
        done: Option<Done>,
    },
    /// The checkpoint interval passed: checkpoint if records came since the last one.
    Checkpoint,
    /// Write what is queued, a final checkpoint, and stop.
    Close,
}

/// A replica's audit chain, open for appending.
pub struct AuditLog {
    queue: mpsc::Sender<Job>,
    /// The writer thread, unparked by appends that must not wait out its linger.
    writer: std::thread::Thread,
    failed: Arc<AtomicBool>,
    /// Records the writer holds after a failed write, waiting for its next try.
    held: Arc<AtomicUsize>,
    /// When the chain was last fsync'd (Unix ms; 0: not yet), for monitoring.
    durable_at_ms: Arc<AtomicU64>,
    /// Fires when the writer thread has written its last checkpoint and exited.
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

impl AuditLog {
    /// Opens (or creates) the chain and resumes after its last record, first cutting off a
    /// batch a crash left half-written (an unterminated last line). A last whole line that
    /// is not a valid record refuses to open: run `privgate audit verify`. Must be called
    /// within a Tokio runtime (the checkpoint clock is a task).
    pub fn open(settings: AuditSettings, key: AuditKey) -> Result<Self, AuditError> {
        Self::open_with_queue(settings, key, QUEUE)
    }

    /// [`Self::open`] with room for `queue` records waiting for the writer (tests fill it).
    pub(super) fn open_with_queue(
        settings: AuditSettings,
        key: AuditKey,
        queue: usize,
    ) -> Result<Self, AuditError> {
        for path in [&settings.log, &settings.checkpoint_sink] {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
            }
        }
        let resumed = resume(&settings.log, &settings.replica)?;
        if let Some(torn) = resumed.cut {
            // Byte counts only: the cut bytes are part of a record, never logged.
            tracing::warn!(
                segment = %resumed.segment.display(),
                cut_bytes = torn.torn,
                kept_bytes = torn.whole,
                "audit chain ended in a batch a crash left half-written; cut back to its last whole record (nothing cut was acknowledged)"
            );
        }
        let open = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| AuditError::io(p, e))
        };
        let period = settings.checkpoint_interval;
        let sink = open(&settings.checkpoint_sink)?;
        let sink_written = sink
            .metadata()
            .map_err(|e| AuditError::io(&settings.checkpoint_sink, e))?
            .len();
        let failed = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicUsize::new(0));
        let durable_at_ms = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            durable_at_ms: durable_at_ms.clone(),
            file: open(&resumed.segment)?,
            segment: resumed.segment,
            segment_started_ms: resumed.segment_started_ms,
            rotation_blocked_until: None,
            sink,
            seq: resumed.seq,
            prev: resumed.prev,
            written: resumed.written,
            sink_written,
            since_checkpoint: 0,
            checkpoint_owed: false,
            held: Vec::new(),
            held_count: held.clone(),
            key,
            settings,
        };
        let (queue, rx) = mpsc::channel(queue);
        let (stopped_tx, stopped) = oneshot::channel();
        let guard = FailOnPanic(failed.clone());
        let thread = std::thread::Builder::new()
            .name("privgate-audit".into())
            .spawn(move || {
                run(writer, rx, &guard.0);
                let _ = stopped_tx.send(());
                drop(guard);
            })
            .map_err(|e| AuditError::Io(format!("audit writer thread: {e}")))?;
        tokio::spawn(checkpoint_clock(queue.downgrade(), period));
        Ok(Self {
            queue,
            writer: thread.thread().clone(),
            failed,
            held,
            durable_at_ms,
            stopped: Mutex::new(Some(stopped)),
        })
    }

    /// Whether the last write succeeded (false from a failed write until a retry succeeds).
    pub fn is_healthy(&self) -> bool {
        !self.failed.load(Ordering::SeqCst)
    }

    /// Records queued for the writer thread and not yet written.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// When the chain was last fsync'd (Unix ms), if it has been since it was opened.
    pub fn last_durable_ms(&self) -> Option<u64> {
        Some(self.durable_at_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0)
    }

    /// Queues a record. With `durable`, returns once it is on disk (fsync'd).
    ///
    /// While the log is unhealthy a durable append fails at once (its caller must not
    /// release what the record vouches for), and others are held for the writer's next try
    /// (up to `HOLD_LIMIT`, 65,536 records).
    pub async fn append(&self, event: AuditEvent, durable: bool) -> Result<(), AuditError> {
        if !self.is_healthy() && (durable || self.held.load(Ordering::SeqCst) >= HOLD_LIMIT) {
            return Err(AuditError::Failed);
        }
        let (done, wait) = if durable {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        // Queued at once while the queue has room (`try_send` takes a free slot only when no
        // sender waits for one, so none is overtaken); a full queue is waited on in a box:
        // the waiting send holds the record, and unboxed every request's future would
        // carry that too.
        match self.queue.try_send(Job::Record { event, done }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                let send = Box::pin(self.queue.send(job));
                send.await.map_err(|_| AuditError::Failed)?;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(AuditError::Failed),
        }
        match wait {
            Some(rx) => {
                // Its caller waits: the writer must not linger.
                self.writer.unpark();
                rx.await.map_err(|_| AuditError::Failed)?
            }
            None => Ok(()),
        }
    }

    /// Writes what is queued, a final checkpoint, and stops taking records.
    pub async fn close(&self) {
        let stopped = self
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(stopped) = stopped {
            let _ = self.queue.send(Job::Close).await;
            self.writer.unpark();
            let _ = stopped.await;
        }
    }
}

/// Marks the log failed if the writer thread unwinds: appends then refuse instead of
/// queueing to a writer that is gone.
struct FailOnPanic(Arc<AtomicBool>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// Asks for a checkpoint every `period`, until the log is closed or dropped (it holds only
/// a weak handle on the queue, so it never keeps the writer alive).
async fn checkpoint_clock(queue: mpsc::WeakSender<Job>, period: Duration) {
    // interval_at: a plain interval's first tick is immediate and would checkpoint early.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(queue) = queue.upgrade() else { return };
        // A full queue means the writer is busy with records; the next tick asks again.
        if let Err(mpsc::error::TrySendError::Closed(_)) = queue.try_send(Job::Checkpoint) {
            return;
        }
    }
}

struct Writer {
    durable_at_ms: Arc<AtomicU64>,
    /// The segment being written, and its path.
    file: File,
    segment: PathBuf,
    /// When the current segment's first record was taken (`None`: it holds none yet).
    segment_started_ms: Option<i64>,
    /// After a failed rotation, when to try again.
    rotation_blocked_until: Option<std::time::Instant>,
    sink: File,
    /// The last record on disk: the next one chains from it.
    seq: u64,
    prev: String,
    /// The current segment's length through `seq`; a failed write is cut back to it.
    written: u64,
    /// The sink's length through its last complete checkpoint.
    sink_written: u64,
    since_checkpoint: u64,
    /// A checkpoint was due when a write failed; the next successful try writes it.
    checkpoint_owed: bool,
    /// Records taken from the queue but not yet on disk (after a failed write), oldest
    /// first, each with the time it was taken.
    held: Vec<(i64, AuditEvent)>,
    held_count: Arc<AtomicUsize>,
    key: AuditKey,
    settings: AuditSettings,
}

/// Where a caller waiting for its record on disk hears how the write went.
type Done = oneshot::Sender<Result<(), AuditError>>;

/// How one round of writing went.
struct Round {
    /// Whether the round's records are on disk: what waiting callers hear.
    records: Result<(), AuditError>,
    /// Whether every write of the round (records and checkpoint) succeeded.
    health: Result<(), AuditError>,
    /// Held records the round wrote (when `records` is Ok).
    held_written: usize,
}

/// One round's work for the writer: what came from the queue.
#[derive(Default)]
struct Batch {
    /// Each record with the time it was taken and, if its caller waits, where to answer.
    records: Vec<(i64, AuditEvent, Option<Done>)>,
    checkpoint_asked: bool,
    closing: bool,
}

impl Batch {
    fn take(&mut self, job: Job) {
        match job {
            Job::Record { event, done } => {
                self.records.push((crate::store::now_ms(), event, done));
            }
            Job::Checkpoint => self.checkpoint_asked = true,
            Job::Close => self.closing = true,
        }
    }
}

/// The writer thread: takes whatever has queued as one batch, writes it, answers the
/// callers who wait, until closed (or every handle on the log is gone). While unhealthy it
/// wakes every [`RETRY_EVERY`] to try again with what it holds and what has come since.
fn run(mut writer: Writer, mut rx: mpsc::Receiver<Job>, failed: &AtomicBool) {
    // Whether the last round took anything: then linger before parking on the queue.
    let mut busy = false;
    loop {
        let mut batch = Batch::default();
        if failed.load(Ordering::SeqCst) {
            std::thread::sleep(RETRY_EVERY);
        } else if busy {
            // Not parked on the queue meanwhile, so an append wakes nobody (an unpark from
            // a durable append or a close ends the linger early).
            std::thread::park_timeout(LINGER);
        } else {
            match rx.blocking_recv() {
                Some(first) => batch.take(first),
                None => break,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(more) => batch.take(more),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    batch.closing = true;
                    break;
                }
            }
        }
        if batch.closing {
            // Appends that raced the close still get written; later ones are refused.
            rx.close();
            while let Ok(more) = rx.try_recv() {
                batch.take(more);
            }
        }
        busy = !batch.records.is_empty();
        let round = writer.write_round(&batch);
        match &round.health {
            Err(e) if !failed.swap(true, Ordering::SeqCst) => tracing::error!(
                error = %e,
                "audit log write failed; refusing requests until a write succeeds"
            ),
            Ok(()) if failed.swap(false, Ordering::SeqCst) => tracing::warn!(
                held_records_written = round.held_written,
                "audit log writable again; requests are served"
            ),
            _ => {}
        }
        for (_, _, done) in batch.records {
            if let Some(done) = done {
                let _ = done.send(round.records.clone());
            }
        }
        if batch.closing {
            break;
        }
    }
    if !writer.held.is_empty() {
        tracing::error!(
            records = writer.held.len(),
            "audit log closed while unwritable; its held records are lost"
        );
    } else if writer.since_checkpoint > 0 || writer.checkpoint_owed {
        if let Err(e) = writer.checkpoint() {
            tracing::error!(error = %e, "final audit checkpoint failed");
        }
    }
}

impl Writer {
    /// Writes the held records and then `batch`'s in one write (one fsync when a caller in
    /// the batch waits), then a checkpoint if one is due. On failure the file is cut back to its last complete batch, the records of
    /// callers who wait are dropped (they hear the error) and the others are held.
    fn write_round(&mut self, batch: &Batch) -> Round {
        let held = self.held.len();
        let durable = batch.records.iter().any(|(_, _, done)| done.is_some());
        let checkpoint_now = batch.checkpoint_asked && self.since_checkpoint > 0;
        let mut waiting = std::mem::take(&mut self.held);
        let events: Vec<(i64, &AuditEvent)> = waiting
            .iter()
            .map(|(t, e)| (*t, e))
            .chain(batch.records.iter().map(|(t, e, _)| (*t, e)))
            .collect();
        if !events.is_empty() && self.rotation_due() {
            self.rotate();
        }
        let records = match events.is_empty() {
            true => Ok(()),
            false => self.write_records(&events, durable),
        };
        let mut health = records.clone();
        if records.is_ok() {
            if checkpoint_now
                || self.checkpoint_owed
                || self.since_checkpoint >= self.settings.checkpoint_every
            {
                self.checkpoint_owed = true;
                health = self.checkpoint();
            }
        } else {
            waiting.extend(
                batch
                    .records
                    .iter()
                    .filter(|(_, _, done)| done.is_none())
                    .map(|(t, e, _)| (*t, e.clone())),
            );
            self.checkpoint_owed |= checkpoint_now;
            self.held = waiting;
        }
        self.held_count.store(self.held.len(), Ordering::SeqCst);
        Round {
            records,
            health,
            held_written: held,
        }
    }

    /// Appends `events` in one write, chained from the last record on disk; fsyncs when
    /// `durable`. Nothing of a failed write stays in the file (as far as the file system
    /// lets the cut happen).
    fn write_records(
        &mut self,
        events: &[(i64, &AuditEvent)],
        durable: bool,
    ) -> Result<(), AuditError> {
        let mut lines = Vec::new();
        let (mut seq, mut prev) = (self.seq, self.prev.clone());
        for (time_ms, event) in events {
            seq += 1;
            let body = BodyRef {
                replica: &self.settings.replica,
                seq,
                time_ms: *time_ms,
                prev: &prev,
                event,
            };
            prev = body
                .seal_into(&mut lines)
                .map_err(|e| AuditError::Io(e.to_string()))?;
            lines.push(b'\n');
        }
        let log = &self.segment;
        // `File` is unbuffered: one write_all is one write(2) per batch, no flush needed.
        let written = self.file.write_all(&lines).and_then(|()| match durable {
            true => self.file.sync_data(),
            false => Ok(()),
        });
        if let Err(e) = written {
            // A partial line would end the chain in bytes verify and the next open take for
            // a crash's torn batch; the retry rewrites the whole batch after the last
            // complete one.
            let _ = self.file.set_len(self.written);
            return Err(AuditError::io(log, e));
        }
        if durable {
            self.mark_durable();
        }
        self.written += lines.len() as u64;
        self.since_checkpoint += events.len() as u64;
        if self.segment_started_ms.is_none() {
            self.segment_started_ms = events.first().map(|(t, _)| *t);
        }
        (self.seq, self.prev) = (seq, prev);
        Ok(())
    }

    fn mark_durable(&self) {
        let now = u64::try_from(crate::store::now_ms()).unwrap_or(0);
        self.durable_at_ms.store(now, Ordering::Relaxed);
    }

    /// Whether the current segment holds records and is big or old enough to seal.
    fn rotation_due(&self) -> bool {
        let Some(started) = self.segment_started_ms else {
            return false;
        };
        if self
            .rotation_blocked_until
            .is_some_and(|t| std::time::Instant::now() < t)
        {
            return false;
        }
        let rotation = self.settings.rotation;
        let big = rotation.max_bytes.is_some_and(|max| self.written >= max);
        let old = rotation.max_age.is_some_and(|max| {
            let age_ms = crate::store::now_ms().saturating_sub(started);
            u128::try_from(age_ms).unwrap_or(0) >= max.as_millis()
        });
        big || old
    }

    /// Seals the current segment and continues the chain in a new one; on failure keeps
    /// the current one (it stays a valid chain) and tries again after [`ROTATION_RETRY`].
    fn rotate(&mut self) {
        match self.start_next_segment() {
            Ok(()) => {
                self.rotation_blocked_until = None;
                tracing::info!(segment = %self.segment.display(), "audit chain rotated");
            }
            Err(e) => {
                self.rotation_blocked_until = Some(std::time::Instant::now() + ROTATION_RETRY);
                tracing::warn!(error = %e, "audit chain rotation failed; the current segment takes records meanwhile");
            }
        }
    }

    fn start_next_segment(&mut self) -> Result<(), AuditError> {
        // Pinned first: once sealed, the segment may be deleted under retention, and the
        // next one verifies from this checkpoint (one is written even if the last record
        // was pinned before a restart: cheap, rotation is rare).
        self.checkpoint()?;
        let next = super::segments::segment_path(&self.settings.log, self.seq + 1);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&next)
            .map_err(|e| AuditError::io(&next, e))?;
        // The new name must survive a crash before records that callers wait for go there.
        if let Some(dir) = next.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| AuditError::io(dir, e))?;
        }
        let written = file.metadata().map_err(|e| AuditError::io(&next, e))?.len();
        if written != 0 {
            return Err(AuditError::Corrupt(format!(
                "{}: the next segment already holds records",
                next.display()
            )));
        }
        (self.file, self.segment, self.written) = (file, next, 0);
        self.segment_started_ms = None;
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), AuditError> {
        let log = self.segment.clone();
        // The chain must be on disk before a checkpoint vouches for it.
        self.file.sync_data().map_err(|e| AuditError::io(&log, e))?;
        self.mark_durable();
        let c = self.key.checkpoint(
            &self.settings.replica,
            self.seq,
            &self.prev,
            crate::store::now_ms(),
        );
        let sink = self.settings.checkpoint_sink.clone();
        let line = serde_json::to_string(&c).map_err(|e| AuditError::Io(e.to_string()))? + "\n";
        let written = self
            .sink
            .write_all(line.as_bytes())
            .and_then(|()| self.sink.sync_data());
        if let Err(e) = written {
            let _ = self.sink.set_len(self.sink_written);
            return Err(AuditError::io(&sink, e));
        }
        self.sink_written += line.len() as u64;
        self.since_checkpoint = 0;
        self.checkpoint_owed = false;
        Ok(())
    }
}

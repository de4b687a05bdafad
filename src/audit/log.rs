//! Appending to a replica's chain.
//!
//! One dedicated writer thread owns the file. Records queue to it; it writes what has
//! gathered as one batch, with one `write` per batch and one `fsync` per batch only when
//! the batch holds a record whose caller waits for durability (group commit). Each record is
//! serialised once: the line written is the JSON its hash covers, with the hash appended.
//! Checkpoints go to the sink every `checkpoint_every` records, every `checkpoint_interval`
//! with new records, and on close. After any write error (or a panic of the writer) the log
//! is failed for good: the gateway refuses requests rather than serve unaudited.
//!
//! A thread rather than a task: the writes block, and a `spawn_blocking` hop per batch cost
//! two extra thread wake-ups per batch on the request path.

use super::checkpoint::AuditKey;
use super::record::{AuditEvent, AuditRecord, RecordBody, GENESIS};
use super::AuditError;
use crate::config::AuditConfig;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Records waiting for the writer; beyond this, appends wait (back-pressure, not loss).
const QUEUE: usize = 4096;

/// The longest record line the resume scan reads back from the end of a file.
const TAIL_BYTES: u64 = 64 * 1024;

/// Where and how a replica's chain is written.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The chain file.
    pub log: PathBuf,
    /// The checkpoint sink (ideally another file system).
    pub checkpoint_sink: PathBuf,
    /// Replica id.
    pub replica: String,
    /// Records between checkpoints.
    pub checkpoint_every: u64,
    /// Longest time between checkpoints while records arrive.
    pub checkpoint_interval: Duration,
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
        done: Option<oneshot::Sender<Result<(), AuditError>>>,
    },
    /// The checkpoint interval passed: checkpoint if records came since the last one.
    Checkpoint,
    /// Write what is queued, a final checkpoint, and stop.
    Close,
}

/// A replica's audit chain, open for appending.
pub struct AuditLog {
    queue: mpsc::Sender<Job>,
    failed: Arc<AtomicBool>,
    /// When the chain was last fsync'd (Unix ms; 0: not yet), for monitoring.
    durable_at_ms: Arc<AtomicU64>,
    /// Fires when the writer thread has written its last checkpoint and exited.
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

impl AuditLog {
    /// Opens (or creates) the chain and resumes after its last record. A last line that is
    /// not a valid record refuses to open: run `privgate audit verify`. Must be called
    /// within a Tokio runtime (the checkpoint clock is a task).
    pub fn open(settings: AuditSettings, key: AuditKey) -> Result<Self, AuditError> {
        for path in [&settings.log, &settings.checkpoint_sink] {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
            }
        }
        let (seq, prev) = resume(&settings.log, &settings.replica)?;
        let open = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| AuditError::io(p, e))
        };
        let period = settings.checkpoint_interval;
        let durable_at_ms = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            durable_at_ms: durable_at_ms.clone(),
            file: open(&settings.log)?,
            sink: open(&settings.checkpoint_sink)?,
            seq,
            prev,
            since_checkpoint: 0,
            key,
            settings,
        };
        let (queue, rx) = mpsc::channel(QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let (stopped_tx, stopped) = oneshot::channel();
        let guard = FailOnPanic(failed.clone());
        std::thread::Builder::new()
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
            failed,
            durable_at_ms,
            stopped: Mutex::new(Some(stopped)),
        })
    }

    /// Whether every write so far succeeded.
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
    pub async fn append(&self, event: AuditEvent, durable: bool) -> Result<(), AuditError> {
        if !self.is_healthy() {
            return Err(AuditError::Failed);
        }
        let (done, wait) = if durable {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.queue
            .send(Job::Record { event, done })
            .await
            .map_err(|_| AuditError::Failed)?;
        match wait {
            Some(rx) => rx.await.map_err(|_| AuditError::Failed)?,
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
    file: File,
    sink: File,
    seq: u64,
    prev: String,
    since_checkpoint: u64,
    key: AuditKey,
    settings: AuditSettings,
}

/// The writer thread: takes whatever has queued as one batch, writes it, answers the
/// callers who wait, until closed (or every handle on the log is gone).
fn run(mut writer: Writer, mut rx: mpsc::Receiver<Job>, failed: &AtomicBool) {
    let mut closing = false;
    while !closing {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut batch = Vec::new();
        let mut checkpoint_asked = false;
        let mut take = |job: Job, closing: &mut bool| match job {
            Job::Record { event, done } => batch.push((event, done)),
            Job::Checkpoint => checkpoint_asked = true,
            Job::Close => *closing = true,
        };
        take(first, &mut closing);
        while let Ok(more) = rx.try_recv() {
            take(more, &mut closing);
        }
        if closing {
            // Appends that raced the close still get written; later ones are refused.
            rx.close();
            while let Ok(more) = rx.try_recv() {
                take(more, &mut closing);
            }
        }
        if batch.is_empty() && (!checkpoint_asked || writer.since_checkpoint == 0) {
            continue;
        }
        let (events, waiting): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let durable = waiting.iter().any(Option::is_some);
        let result = writer.write_batch(events, durable, checkpoint_asked);
        if result.is_err() {
            failed.store(true, Ordering::SeqCst);
            tracing::error!(error = ?result, "audit log write failed; refusing requests from now on");
        }
        for done in waiting.into_iter().flatten() {
            let _ = done.send(result.clone());
        }
    }
    if writer.since_checkpoint > 0 {
        if let Err(e) = writer.checkpoint() {
            tracing::error!(error = %e, "final audit checkpoint failed");
        }
    }
}

impl Writer {
    /// Appends `events` in one write; fsyncs when a caller waits for durability.
    fn write_batch(
        &mut self,
        events: Vec<AuditEvent>,
        durable: bool,
        checkpoint_now: bool,
    ) -> Result<(), AuditError> {
        let mut lines = Vec::new();
        let count = events.len() as u64;
        for event in events {
            self.seq += 1;
            let body = RecordBody {
                replica: self.settings.replica.clone(),
                seq: self.seq,
                time_ms: crate::store::now_ms(),
                prev: std::mem::take(&mut self.prev),
                event,
            };
            self.prev = body
                .seal_into(&mut lines)
                .map_err(|e| AuditError::Io(e.to_string()))?;
            lines.push(b'\n');
        }
        let log = &self.settings.log;
        if !lines.is_empty() {
            // `File` is unbuffered: one write_all is one write(2) per batch, no flush needed.
            self.file
                .write_all(&lines)
                .map_err(|e| AuditError::io(log, e))?;
            if durable {
                self.file.sync_data().map_err(|e| AuditError::io(log, e))?;
                self.mark_durable();
            }
        }
        self.since_checkpoint += count;
        if checkpoint_now || self.since_checkpoint >= self.settings.checkpoint_every {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn mark_durable(&self) {
        let now = u64::try_from(crate::store::now_ms()).unwrap_or(0);
        self.durable_at_ms.store(now, Ordering::Relaxed);
    }

    fn checkpoint(&mut self) -> Result<(), AuditError> {
        let log = self.settings.log.clone();
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
        self.sink
            .write_all(line.as_bytes())
            .map_err(|e| AuditError::io(&sink, e))?;
        self.sink
            .sync_data()
            .map_err(|e| AuditError::io(&sink, e))?;
        self.since_checkpoint = 0;
        Ok(())
    }
}

/// The sequence number and hash to continue from.
fn resume(path: &Path, replica: &str) -> Result<(u64, String), AuditError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, GENESIS.into())),
        Err(e) => return Err(AuditError::io(path, e)),
    };
    let len = file.metadata().map_err(|e| AuditError::io(path, e))?.len();
    if len == 0 {
        return Ok((0, GENESIS.into()));
    }
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .map_err(|e| AuditError::io(path, e))?;
    let mut tail = String::new();
    file.read_to_string(&mut tail)
        .map_err(|e| AuditError::io(path, e))?;
    let corrupt = |why: &str| {
        AuditError::Corrupt(format!(
            "{}: {why}; run `privgate audit verify`",
            path.display()
        ))
    };
    if !tail.ends_with('\n') {
        return Err(corrupt("last record is incomplete"));
    }
    let last = tail
        .trim_end_matches('\n')
        .rsplit('\n')
        .next()
        .unwrap_or("");
    let record: AuditRecord =
        serde_json::from_str(last).map_err(|_| corrupt("last line is not an audit record"))?;
    if record.body.hash() != record.hash {
        return Err(corrupt("last record does not match its hash"));
    }
    if record.body.replica != replica {
        return Err(corrupt(&format!(
            "written by replica `{}`, not `{replica}`",
            record.body.replica
        )));
    }
    Ok((record.body.seq, record.hash))
}

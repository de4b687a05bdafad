//! Appending to a replica's chain.
//!
//! One writer task owns the file. Records queue to it; it writes them in batches, with one
//! flush per batch and one `fsync` per batch that holds a record whose caller waits for
//! durability (group commit). Checkpoints go to the sink every `checkpoint_every` records,
//! every `checkpoint_interval` with new records, and on close. After any write error the
//! log is failed for good: the gateway refuses requests rather than serve unaudited.

use super::checkpoint::AuditKey;
use super::record::{AuditEvent, AuditRecord, RecordBody, GENESIS};
use super::AuditError;
use crate::config::AuditConfig;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};

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

struct Entry {
    event: AuditEvent,
    done: Option<oneshot::Sender<Result<(), AuditError>>>,
}

/// A replica's audit chain, open for appending.
pub struct AuditLog {
    queue: mpsc::Sender<Entry>,
    failed: Arc<AtomicBool>,
    closing: Arc<Notify>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl AuditLog {
    /// Opens (or creates) the chain and resumes after its last record. A last line that is
    /// not a valid record refuses to open: run `privgate audit verify`.
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
        let writer = Writer {
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
        let closing = Arc::new(Notify::new());
        let writer = tokio::spawn(run(writer, rx, failed.clone(), closing.clone()));
        Ok(Self {
            queue,
            failed,
            closing,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Whether every write so far succeeded.
    pub fn is_healthy(&self) -> bool {
        !self.failed.load(Ordering::SeqCst)
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
            .send(Entry { event, done })
            .await
            .map_err(|_| AuditError::Failed)?;
        match wait {
            Some(rx) => rx.await.map_err(|_| AuditError::Failed)?,
            None => Ok(()),
        }
    }

    /// Writes what is queued, a final checkpoint, and stops taking records.
    pub async fn close(&self) {
        self.closing.notify_one();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }
}

struct Writer {
    file: File,
    sink: File,
    seq: u64,
    prev: String,
    since_checkpoint: u64,
    key: AuditKey,
    settings: AuditSettings,
}

async fn run(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Entry>,
    failed: Arc<AtomicBool>,
    closing: Arc<Notify>,
) {
    // interval_at: a plain interval's first tick is immediate and would checkpoint early.
    let period = writer.settings.checkpoint_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let batch = tokio::select! {
            first = rx.recv() => match first {
                Some(first) => {
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    batch
                }
                None => break,
            },
            _ = tick.tick() => Vec::new(),
            _ = closing.notified() => {
                rx.close();
                let mut rest = Vec::new();
                while let Ok(more) = rx.try_recv() {
                    rest.push(more);
                }
                if rest.is_empty() {
                    break;
                }
                rest
            }
        };
        if batch.is_empty() && writer.since_checkpoint == 0 {
            continue;
        }
        let checkpoint_now = batch.is_empty();
        let (w, result, batch) = tokio::task::spawn_blocking(move || {
            let mut writer = writer;
            let result = writer.write_batch(&batch, checkpoint_now);
            (writer, result, batch)
        })
        .await
        .expect("audit writer thread panicked");
        writer = w;
        if result.is_err() {
            failed.store(true, Ordering::SeqCst);
            tracing::error!(error = ?result, "audit log write failed; refusing requests from now on");
        }
        for entry in batch {
            if let Some(done) = entry.done {
                let _ = done.send(result.clone());
            }
        }
    }
    if writer.since_checkpoint > 0 {
        if let Err(e) = tokio::task::spawn_blocking(move || writer.checkpoint())
            .await
            .unwrap_or(Err(AuditError::Failed))
        {
            tracing::error!(error = %e, "final audit checkpoint failed");
        }
    }
}

impl Writer {
    fn write_batch(&mut self, batch: &[Entry], checkpoint_now: bool) -> Result<(), AuditError> {
        let log = self.settings.log.clone();
        let mut lines = String::new();
        for entry in batch {
            self.seq += 1;
            let record = RecordBody {
                replica: self.settings.replica.clone(),
                seq: self.seq,
                time_ms: crate::store::now_ms(),
                prev: std::mem::take(&mut self.prev),
                event: entry.event.clone(),
            }
            .seal();
            self.prev.clone_from(&record.hash);
            lines.push_str(
                &serde_json::to_string(&record).map_err(|e| AuditError::Io(e.to_string()))?,
            );
            lines.push('\n');
        }
        self.file
            .write_all(lines.as_bytes())
            .map_err(|e| AuditError::io(&log, e))?;
        self.file.flush().map_err(|e| AuditError::io(&log, e))?;
        if batch.iter().any(|e| e.done.is_some()) {
            self.file.sync_data().map_err(|e| AuditError::io(&log, e))?;
        }
        self.since_checkpoint += batch.len() as u64;
        if checkpoint_now || self.since_checkpoint >= self.settings.checkpoint_every {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), AuditError> {
        let log = self.settings.log.clone();
        // The chain must be on disk before a checkpoint vouches for it.
        self.file.sync_data().map_err(|e| AuditError::io(&log, e))?;
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

//! Connection lanes: the threads that serve client connections, each running a
//! single-threaded tokio runtime of its own.
//!
//! Why not the multi-threaded runtime: its workers share one run queue, and a worker that
//! runs out of work parks and is woken (a futex call, often an interrupt to another CPU)
//! whenever a task becomes ready anywhere, so that it can steal. A proxied request wakes
//! several tasks (the client connection, the upstream connection, the pool's return), and
//! on the side-by-side benchmark the stream route spent about a quarter of its CPU on those
//! hand-overs: 30.5 µs per request on two workers, 23.3 on one (docs/performance-history.md,
//! "connection lanes"). A lane never hands work to another thread: a connection, every task
//! it spawns and the upstream connections it uses (one pool per lane, `upstream`) stay on
//! the lane that accepted it, as nginx's workers do.
//!
//! Connections are accepted on the process's multi-threaded runtime (with the listeners'
//! limits and the drain, as before) and each is handed to the lane with the fewest open
//! connections, where it stays: one cross-thread hand-over per connection instead of
//! several per request. What runs outside the request path (reloads, the operations
//! listener, background refreshes) stays on the multi-threaded runtime.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;

thread_local! {
    /// This thread's lane; 0 on threads that are not lanes (they use lane 0's resources).
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// How many lanes serve connections: `TOKIO_WORKER_THREADS` if set (the setting that sized
/// the runtime's workers when they served connections), otherwise one per CPU.
pub(crate) fn count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// The lane the calling thread is (0 outside lanes), below [`count`].
pub(crate) fn current() -> usize {
    LANE.with(Cell::get) % count()
}

/// What a lane is asked to run: makes a connection's future on the lane, then runs it.
type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// One lane as the dispatcher sees it.
struct Lane {
    jobs: mpsc::UnboundedSender<Job>,
    /// Connections handed to this lane and not yet finished.
    open: Arc<AtomicUsize>,
}

/// The running lanes, until [`Lanes::stop`].
pub(crate) struct Lanes {
    lanes: Vec<Lane>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Lanes {
    /// Starts [`count`] lanes, each waiting for connections.
    pub(crate) fn start() -> std::io::Result<Self> {
        let mut lanes = Vec::with_capacity(count());
        let mut threads = Vec::with_capacity(count());
        for lane in 0..count() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (jobs, mut queued) = mpsc::unbounded_channel::<Job>();
            let open = Arc::new(AtomicUsize::new(0));
            let running = open.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("lane-{lane}"))
                    .spawn(move || {
                        LANE.with(|l| l.set(lane));
                        runtime.block_on(async move {
                            while let Some(job) = queued.recv().await {
                                let connection = job();
                                let running = running.clone();
                                tokio::spawn(async move {
                                    connection.await;
                                    running.fetch_sub(1, Ordering::Relaxed);
                                });
                            }
                        });
                        // Dropping the runtime cancels what is still running on it: the
                        // connections the grace period did not see finish.
                    })?,
            );
            lanes.push(Lane { jobs, open });
        }
        Ok(Self { lanes, threads })
    }

    /// Runs the future `connection` makes on the lane with the fewest open connections
    /// (made there, so that its sockets and timers register with that lane's runtime).
    pub(crate) fn serve<F, Fut>(&self, connection: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(lane) = self
            .lanes
            .iter()
            .min_by_key(|lane| lane.open.load(Ordering::Relaxed))
        else {
            return;
        };
        lane.open.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::new(move || Box::pin(connection()));
        if lane.jobs.send(job).is_err() {
            // The lane has stopped (only after the drain): the connection closes unserved.
            lane.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Stops every lane (cancelling what still runs on it) and waits for their threads.
    pub(crate) async fn stop(self) {
        drop(self.lanes);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections spread over the lanes by how many each has open, run on their lane's
    /// thread from start to end, free their place when they finish, and stopping the lanes
    /// ends what still runs.
    #[tokio::test]
    async fn connections_go_to_the_least_busy_lane_and_stay_there() {
        let lanes = Lanes::start().unwrap();
        let name = || std::thread::current().name().map(str::to_owned);
        let (seen, mut saw) = mpsc::unbounded_channel();
        for _ in 0..2 * count() {
            let seen = seen.clone();
            lanes.serve(move || async move {
                let first = name();
                tokio::task::yield_now().await;
                let _ = seen.send((current(), first, name()));
                std::future::pending::<()>().await;
            });
        }
        let mut per_lane = vec![0; count()];
        for _ in 0..2 * count() {
            let (lane, first, then) = saw.recv().await.unwrap();
            assert_eq!(first, Some(format!("lane-{lane}")));
            assert_eq!(then, first);
            per_lane[lane] += 1;
        }
        assert_eq!(per_lane, vec![2; count()]);

        // One that finishes gives its place back.
        let (done, finished) = tokio::sync::oneshot::channel();
        lanes.serve(move || async move {
            let _ = done.send(current());
        });
        let lane = finished.await.unwrap();
        for _ in 0..1000 {
            if lanes.lanes[lane].open.load(Ordering::Relaxed) == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(lanes.lanes[lane].open.load(Ordering::Relaxed), 2);
        tokio::time::timeout(std::time::Duration::from_secs(10), lanes.stop())
            .await
            .expect("stopping ends the connections still running");
        assert_eq!(current(), 0, "a thread that is not a lane uses lane 0");
    }
}

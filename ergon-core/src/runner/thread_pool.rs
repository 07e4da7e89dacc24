//! The thread pool of blocking tasks: a fixed number of threads of its own, fed through a
//! channel, each result sent back to the async side over a `oneshot`.
//!
//! Why not rayon: rayon's pool is built for short CPU-bound jobs that split and steal
//! work; blocking tasks may also wait on I/O for seconds, which would starve every other
//! user of the pool (the global one included, which the user's own `par_iter` runs on).
//! Measured with this pool's internals swapped for a `rayon::ThreadPool` of the same size
//! (BENCHMARKS.md): the same on CPU-bound work, 2.5 times slower for short blocking calls
//! at concurrency 2 (a hand-off through rayon's sleep/wake costs more than this channel
//! with a short spin).
//! A task's pool belongs to that task's worker alone: its size is the policy's
//! `loop.concurrency`, one thread per transaction in flight, so a job never queues
//! behind another transaction's job, and a user's rayon code inside a job runs on rayon's
//! pool as it expects.
//!
//! A thread cannot be killed. When an attempt runs past its deadline, the async side stops
//! waiting and reports a timeout; the job keeps its thread until the code returns, and its
//! result is thrown away. Such attempts are counted (`abandoned_attempts` in the run
//! summary) and logged. The pool never grows because of them: the number of threads is
//! fixed, so stuck code costs throughput, never memory or threads.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::WorkerStats;
use crate::envelope::attempt::panic_message;
use crate::error::TaskError;
use crate::sync::lock;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed-size pool of named threads for blocking task code.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use ergon_core::runner::{ThreadPool, WorkerStats};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let pool = ThreadPool::new("hash", 2, Arc::new(WorkerStats::default())).unwrap();
/// let name = pool.run(|| Ok(std::thread::current().name().map(str::to_owned))).await.unwrap();
/// assert!(name.unwrap().starts_with("ergon-hash-"));
/// # }
/// ```
pub struct ThreadPool {
    jobs: Sender<Job>,
    stats: Arc<WorkerStats>,
}

impl ThreadPool {
    /// Starts `threads` threads named `ergon-{name}-{n}`; abandoned attempts count into
    /// `stats`. The threads end when the pool is dropped and their current job returns.
    ///
    /// # Errors
    ///
    /// The operating system refused a thread.
    pub fn new(name: &str, threads: usize, stats: Arc<WorkerStats>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("ergon-{name}-{n}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Self { jobs, stats })
    }

    /// Runs `call` on one of the pool's threads and waits for its result without blocking
    /// the runtime. A panic in `call` becomes [`TaskError::Panicked`].
    ///
    /// Dropping the returned future before it finished (a timeout, a cancelled
    /// transaction) abandons the call: it still runs to its end, and is counted.
    ///
    /// # Errors
    ///
    /// What `call` returned, its panic, or a closed pool.
    pub async fn run<R, F>(&self, call: F) -> Result<R, TaskError>
    where
        R: Send + 'static,
        F: FnOnce() -> Result<R, TaskError> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome =
                std::panic::catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|panic| {
                    Err(TaskError::Panicked {
                        message: panic_message(panic.as_ref()),
                    })
                });
            // The receiver is gone when the attempt was abandoned: nobody wants the result.
            let _ = reply.send(outcome);
        });
        self.jobs.send(job).map_err(|_| {
            TaskError::system("the blocking thread pool has shut down").non_retryable()
        })?;
        let mut waiting = Waiting {
            stats: &self.stats,
            armed: true,
        };
        let outcome = result.await.unwrap_or_else(|_| {
            Err(TaskError::system(
                "a blocking pool thread ended without answering",
            ))
        });
        waiting.armed = false;
        outcome
    }
}

/// One thread: take the next job, run it, until the pool is dropped.
fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let next = next_job(&lock(queue));
        match next {
            Some(job) => job(),
            None => return,
        }
    }
}

/// Yields this many times looking for the next job before sleeping on the channel.
const SPINS: u32 = 64;

/// The next job, `None` once the pool is dropped. The next job usually arrives within
/// microseconds (the next step of the transaction that just finished), so the thread
/// yields a few times before it sleeps: falling asleep and being woken costs more.
fn next_job(queue: &Receiver<Job>) -> Option<Job> {
    for _ in 0..SPINS {
        match queue.try_recv() {
            Ok(job) => return Some(job),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    queue.recv().ok()
}

/// Counts the call as abandoned when the waiting future is dropped before the answer.
struct Waiting<'a> {
    stats: &'a WorkerStats,
    armed: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.stats.record_abandoned_attempt();
            tracing::warn!(
                "Blocking attempt abandoned before it returned (timeout or cancellation); \
                 its thread stays busy until the code returns"
            );
        }
    }
}

//! Liveness and readiness, from the workers on the board.
//!
//! The seed supervises liveness by progress, not by activity: a worker is stuck when a
//! fetch has been running for `stall_after`, or when it holds transactions in flight and
//! none has finished for `stall_after`; a connector that has failed its health check for
//! `stall_after` (it cannot reconnect) is unhealthy too. An idle worker polling an empty
//! queue finishes fetch after fetch, so it is healthy. Ready means live, every worker
//! connected, every service healthy (its last health check passed), and no shutdown under
//! way. A failing service makes the run not ready, never not live: restarting the process
//! does not mend the API it calls.
//!
//! A watcher samples the workers' counters every `stall_after / 4` (at most every second);
//! the endpoint reads its last verdict, so a check never waits on a connector.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ergon_core::sync::lock;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::board::{PinnedWorker, WorkerBoard};

/// The health of a run.
pub struct Health {
    board: Arc<WorkerBoard>,
    stall_after: Duration,
    shutdown: CancellationToken,
    watches: Mutex<Vec<Watch>>,
    /// The services whose last health check failed, and why.
    services_down: Mutex<Vec<String>>,
}

/// What was last seen of one worker.
struct Watch {
    worker: Arc<PinnedWorker>,
    fetches: (u64, u64),
    fetch_since: Instant,
    processed: u64,
    progress_since: Instant,
    /// Per connector: since when its health check fails, and why.
    down: Vec<Option<(Instant, String)>>,
}

/// A health answer: healthy or not, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the check passes.
    pub ok: bool,
    /// What fails, one line per problem.
    pub problems: Vec<String>,
}

impl Health {
    /// Health of the workers on `board`; not ready once `shutdown` is cancelled.
    pub fn new(
        board: Arc<WorkerBoard>,
        stall_after: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            board,
            stall_after,
            shutdown,
            watches: Mutex::new(Vec::new()),
            services_down: Mutex::new(Vec::new()),
        }
    }

    /// Samples the workers until `stop` is cancelled.
    pub async fn watch(&self, stop: CancellationToken) {
        let period =
            (self.stall_after / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            self.sample().await;
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Takes one sample of every worker's progress and connectors.
    pub async fn sample(&self) {
        let now = Instant::now();
        let workers = self.board.workers();
        // Connector checks first, without the lock held across awaits.
        let mut checks = Vec::with_capacity(workers.len());
        for worker in &workers {
            let mut results = Vec::new();
            for (name, connector) in worker.connectors() {
                let checked =
                    tokio::time::timeout(Duration::from_secs(5), connector.health()).await;
                results.push(match checked {
                    Ok(Ok(())) => None,
                    Ok(Err(err)) => Some(format!("connector `{name}`: {}", err.chain())),
                    Err(_) => Some(format!("connector `{name}`: health check timed out")),
                });
            }
            checks.push(results);
        }
        let mut services_down = Vec::new();
        for (name, service) in self.board.services() {
            let checked = tokio::time::timeout(Duration::from_secs(5), service.health()).await;
            match checked {
                Ok(Ok(())) => {}
                Ok(Err(err)) => services_down.push(format!("service `{name}`: {}", err.chain())),
                Err(_) => services_down.push(format!("service `{name}`: health check timed out")),
            }
        }
        *lock(&self.services_down) = services_down;
        let mut watches = lock(&self.watches);
        for (worker, results) in workers.into_iter().zip(checks) {
            let stats = worker.stats.snapshot();
            let fetches = (stats.fetches_started, stats.fetches);
            let watch = match watches
                .iter_mut()
                .position(|w| Arc::ptr_eq(&w.worker, &worker))
            {
                Some(i) => &mut watches[i],
                None => {
                    watches.push(Watch {
                        worker: worker.clone(),
                        fetches,
                        fetch_since: now,
                        processed: stats.processed,
                        progress_since: now,
                        down: Vec::new(),
                    });
                    watches.last_mut().expect("just pushed")
                }
            };
            if watch.fetches != fetches || fetches.0 == fetches.1 {
                watch.fetches = fetches;
                watch.fetch_since = now;
            }
            if watch.processed != stats.processed || stats.in_flight == 0 {
                watch.processed = stats.processed;
                watch.progress_since = now;
            }
            watch.down.resize(results.len(), None);
            for (down, result) in watch.down.iter_mut().zip(results) {
                *down = match (down.take(), result) {
                    (_, None) => None,
                    (Some((since, _)), Some(why)) => Some((since, why)),
                    (None, Some(why)) => Some((now, why)),
                };
            }
        }
    }

    /// Live: nothing stalled for `stall_after`.
    pub fn liveness(&self) -> Verdict {
        let now = Instant::now();
        let watches = lock(&self.watches);
        let mut problems = Vec::new();
        for watch in watches.iter() {
            let who = format!("task {} worker {}", watch.worker.task, watch.worker.worker);
            let (started, finished) = watch.fetches;
            let fetch_for = now - watch.fetch_since;
            if started > finished && fetch_for >= self.stall_after {
                problems.push(format!(
                    "{who}: a fetch has been running for {}",
                    seconds(fetch_for)
                ));
            }
            let idle_for = now - watch.progress_since;
            if idle_for >= self.stall_after {
                problems.push(format!(
                    "{who}: transactions in flight and none finished for {}",
                    seconds(idle_for)
                ));
            }
            for (since, why) in watch.down.iter().flatten() {
                if now - *since >= self.stall_after {
                    problems.push(format!("{who}: {why} (for {})", seconds(now - *since)));
                }
            }
        }
        Verdict {
            ok: problems.is_empty(),
            problems,
        }
    }

    /// Ready: live, every worker connected, every service healthy, not shutting down.
    pub fn readiness(&self) -> Verdict {
        let mut verdict = self.liveness();
        verdict
            .problems
            .extend(lock(&self.services_down).iter().cloned());
        if self.shutdown.is_cancelled() {
            verdict.problems.push("shutting down".into());
        }
        let waiting = self
            .board
            .workers()
            .iter()
            .filter(|w| !w.is_connected())
            .count();
        if waiting > 0 {
            verdict
                .problems
                .push(format!("{waiting} worker(s) not connected yet"));
        }
        verdict.ok = verdict.problems.is_empty();
        verdict
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

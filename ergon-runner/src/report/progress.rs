//! Live progress: a rewritten line on a terminal, a periodic log line otherwise.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use ergon_core::runner::{StatsSnapshot, WorkerStats};

/// How often the terminal line is redrawn.
const TERMINAL_EVERY: Duration = Duration::from_millis(250);
/// How often a progress log line is written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A running progress reporter.
pub(crate) struct Progress {
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl Progress {
    /// Starts reporting on the workers' counters (`(task index, stats)` pairs).
    pub(crate) fn start(names: Vec<String>, workers: Vec<(usize, Arc<WorkerStats>)>) -> Self {
        let stop = CancellationToken::new();
        let terminal = std::io::stderr().is_terminal();
        let handle = tokio::spawn(report(names, workers, terminal, stop.clone()));
        Self { stop, handle }
    }

    /// Stops reporting and clears the terminal line.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = self.handle.await;
    }
}

async fn report(
    names: Vec<String>,
    workers: Vec<(usize, Arc<WorkerStats>)>,
    terminal: bool,
    stop: CancellationToken,
) {
    let started = Instant::now();
    let every = if terminal { TERMINAL_EVERY } else { LOG_EVERY };
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        let line: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let mut stats = StatsSnapshot::default();
                for (_, worker) in workers.iter().filter(|(task, _)| *task == index) {
                    stats += worker.snapshot();
                }
                format!(
                    "{name}: {} done ({} ok, {} failed), {} in flight, {:.0} tx/s",
                    stats.processed,
                    stats.succeeded,
                    stats.failed(),
                    stats.in_flight,
                    stats.processed as f64 / elapsed
                )
            })
            .collect();
        if terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", line.join(" | "));
            let _ = err.flush();
        } else {
            tracing::info!(progress = %line.join(" | "), "Progress");
        }
    }
    if terminal {
        eprint!("\r\x1b[2K");
    }
}

//! The TaskManager: opens connectors per worker, injects services, runs every worker of
//! every selected task, drains on a signal or on the first failure, and reports.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;

use futures_util::FutureExt as _;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use ergon_core::journal::Journal;
use ergon_core::runner::{LimitBudget, LoopEnd, RunQuiet, StatsSnapshot, WorkerStats};
use ergon_core::{Connector, TaskError};

use crate::launch::WorkerRun;
use crate::plan::TaskPlan;
use crate::report::progress::Progress;
use crate::services::RunningServices;
use crate::signal::{Signal, Signals};
use crate::telemetry::board::{PinnedWorker, WorkerBoard};
use ergon_core::observe::InScope;
use ergon_core::telemetry::names;
use ergon_telemetry::{ActiveSpan, Fields, Parent, SpanIds, Spans, count};

/// How one task's run went.
#[derive(Debug, Clone)]
pub struct TaskReport {
    /// The task's name.
    pub name: String,
    /// Its workers' counters, summed.
    pub stats: StatsSnapshot,
    /// How each worker ended: its loop end, or the error that stopped it.
    pub workers: Vec<Result<LoopEnd, String>>,
}

impl TaskReport {
    /// Whether every worker ended without error and every settlement went through.
    pub fn ok(&self) -> bool {
        self.workers.iter().all(Result::is_ok) && self.stats.settle_failed == 0
    }
}

/// How a whole run went.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// One report per task, in the order they were selected.
    pub tasks: Vec<TaskReport>,
    /// Wall time of the run.
    pub wall: Duration,
    /// The signal that stopped the run, if any.
    pub signal: Option<Signal>,
    /// What stopped the run before any worker started (a service that could not be
    /// built), if anything did.
    pub error: Option<String>,
}

impl RunReport {
    /// The process exit code: 130/143 after a signal, 1 if a task failed, else 0.
    pub fn exit_code(&self) -> u8 {
        match self.signal {
            Some(signal) => signal.exit_code(),
            None if self.error.is_none() && self.tasks.iter().all(TaskReport::ok) => 0,
            None => 1,
        }
    }
}

/// Runs the workers of a set of tasks.
pub struct TaskManager {
    tasks: Vec<Arc<TaskPlan>>,
    shutdown: CancellationToken,
    progress: bool,
    board: Arc<WorkerBoard>,
    journal: Option<Arc<dyn Journal>>,
}

/// A running worker: which task it belongs to and its counters.
struct WorkerHandle {
    id: tokio::task::Id,
    task: usize,
    stats: Arc<WorkerStats>,
}

impl TaskManager {
    /// A manager for `tasks`.
    pub fn new(tasks: Vec<Arc<TaskPlan>>) -> Self {
        Self {
            tasks,
            shutdown: CancellationToken::new(),
            progress: true,
            board: Arc::default(),
            journal: None,
        }
    }

    /// Pins the workers on `board`, where health checks and metrics read them.
    pub fn board(mut self, board: Arc<WorkerBoard>) -> Self {
        self.board = board;
        self
    }

    /// Records every task's completions in `journal` before they are settled.
    pub fn journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Turns the live progress reporting off (tests, `process`).
    pub fn quiet(mut self) -> Self {
        self.progress = false;
        self
    }

    /// A token that, once cancelled, drains and stops every worker.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Builds the services the tasks list, runs every worker until all have ended
    /// (handling SIGINT and SIGTERM), then closes the services in reverse order.
    pub async fn run(self) -> RunReport {
        let started = Instant::now();
        let wanted = self.tasks.iter().flat_map(|task| task.services());
        let mut wanted: Vec<_> = wanted.collect();
        wanted.sort_by(|a, b| a.name.cmp(&b.name));
        let services = match RunningServices::build(
            wanted,
            &self.shutdown,
            self.board.service_telemetry(),
        )
        .await
        {
            Ok(services) => Arc::new(services),
            Err(err) => {
                tracing::error!(error = %err.chain(), "A service could not be built; nothing runs");
                return RunReport {
                    tasks: Vec::new(),
                    wall: started.elapsed(),
                    signal: None,
                    error: Some(err.chain().to_string()),
                };
            }
        };
        self.board.services_built(services.all());
        let report = self.run_workers(started, &services).await;
        services.close().await;
        report
    }

    async fn run_workers(&self, started: Instant, services: &Arc<RunningServices>) -> RunReport {
        let mut workers = JoinSet::new();
        let mut handles = Vec::new();
        // With a journal, work reaches a task's queue from the run's other tasks (spawns,
        // continuations): the finite loops end together, once the whole run is quiet —
        // every one of them counted from now, however late its worker starts.
        let finite_loops = self
            .tasks
            .iter()
            .filter(|task| !task.policy.loop_policy.streaming)
            .map(|task| task.workers)
            .sum();
        let quiet = self
            .journal
            .as_ref()
            .map(|_| RunQuiet::expecting(finite_loops));
        let spans = Spans::current();
        for (index, task) in self.tasks.iter().enumerate() {
            // The root of the task's trace; it ends when its last worker has.
            let task_span = spans
                .as_ref()
                .map(|spans| Arc::new(task_run_span(spans, task)));
            let limit = task
                .policy
                .loop_policy
                .limit
                .map(|n| Arc::new(LimitBudget::new(n)));
            for worker in 0..task.workers {
                let stats = Arc::new(WorkerStats::default());
                let run = WorkerRun {
                    policy: task.policy.clone(),
                    limit: limit.clone(),
                    stats: stats.clone(),
                    shutdown: self.shutdown.clone(),
                    quiet: quiet.clone(),
                };
                let input = task.input.as_ref().map(|c| (c.kind, c.name.as_str()));
                let pinned = self.board.pin(&task.name, worker, input, stats.clone());
                let journal = self.journal.clone();
                let running =
                    run_worker(task.clone(), worker, run, pinned, services.clone(), journal);
                let span = task_span.clone();
                let scope = span.as_ref().map(|span| span.scope());
                let running = InScope::new(running, scope).inspect(move |_| drop(span));
                let id = workers.spawn(running).id();
                handles.push(WorkerHandle {
                    id,
                    task: index,
                    stats,
                });
            }
        }
        let progress = self.progress.then(|| {
            let names: Vec<String> = self.tasks.iter().map(|t| t.name.clone()).collect();
            let stats: Vec<(usize, Arc<WorkerStats>)> =
                handles.iter().map(|h| (h.task, h.stats.clone())).collect();
            Progress::start(names, stats)
        });

        let mut ends: Vec<Vec<Result<LoopEnd, String>>> = vec![Vec::new(); self.tasks.len()];
        let mut signals = Signals::install().ok();
        let mut signal = None;
        loop {
            let next_signal = async {
                match (&mut signals, signal) {
                    (Some(signals), None) => signals.next().await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                joined = workers.join_next_with_id() => {
                    let Some(joined) = joined else { break };
                    let (id, result) = match joined {
                        Ok((id, result)) => (id, result.map_err(|err| err.chain().to_string())),
                        Err(err) => (err.id(), Err(format!("worker panicked: {err}"))),
                    };
                    let task = handles.iter().find(|h| h.id == id).map(|h| h.task).expect("every worker has a handle");
                    if let Err(err) = &result {
                        tracing::error!(task = %self.tasks[task].name, error = %err, "Worker failed; stopping the other workers");
                        self.shutdown.cancel();
                    }
                    ends[task].push(result);
                }
                received = next_signal => {
                    tracing::warn!(signal = %received, "Shutdown requested; draining in-flight transactions (send it again to exit at once)");
                    signal = Some(received);
                    self.shutdown.cancel();
                    if let Some(mut signals) = signals.take() {
                        tokio::spawn(async move {
                            let again = signals.next().await;
                            eprintln!("ergon-runner: {again} received twice, exiting without draining");
                            std::process::exit(i32::from(again.exit_code()));
                        });
                    }
                }
            }
        }
        if let Some(progress) = progress {
            progress.stop().await;
        }

        let tasks = self
            .tasks
            .iter()
            .enumerate()
            .map(|(index, task)| {
                let mut stats = StatsSnapshot::default();
                for handle in handles.iter().filter(|h| h.task == index) {
                    stats += handle.stats.snapshot();
                }
                TaskReport {
                    name: task.name.clone(),
                    stats,
                    workers: std::mem::take(&mut ends[index]),
                }
            })
            .collect();
        RunReport {
            tasks,
            wall: started.elapsed(),
            signal,
            error: None,
        }
    }
}

/// One worker: open its connectors, run its loop, close its connectors.
async fn run_worker(
    task: Arc<TaskPlan>,
    worker: usize,
    run: WorkerRun,
    pinned: Arc<PinnedWorker>,
    services: Arc<RunningServices>,
    journal: Option<Arc<dyn Journal>>,
) -> Result<LoopEnd, TaskError> {
    let input = connect(&task, task.input.as_ref(), worker).await?;
    let output = connect(&task, task.output.as_ref(), worker).await?;
    let named = [(&task.input, &input), (&task.output, &output)];
    pinned.connected(
        named
            .into_iter()
            .filter_map(|(plan, open)| Some((plan.as_ref()?.name.clone(), open.clone()?)))
            .collect(),
    );
    let cx = task.context(worker, input.clone(), output.clone(), &services, journal);
    drop(services);
    let result = task.launch.worker(cx, run).await;
    for connector in [input, output].into_iter().flatten() {
        if let Err(err) = connector.close().await {
            tracing::error!(task = %task.name, worker, error = %err.chain(), "Closing a connector failed");
        }
    }
    result
}

/// Opens one of a task's connectors for `worker`, naming the task and connector on error.
pub(crate) async fn connect(
    task: &TaskPlan,
    connector: Option<&crate::plan::ConnectorRef>,
    worker: usize,
) -> Result<Option<Arc<dyn Connector>>, TaskError> {
    let Some(connector) = connector else {
        return Ok(None);
    };
    connector
        .make
        .connect(worker)
        .await
        .map(Some)
        .map_err(|err| {
            TaskError::system(format!(
                "task {} worker {worker}: cannot open connector `{}` ({})",
                task.name, connector.name, connector.kind
            ))
            .with_source(err)
            .non_retryable()
        })
}

/// The span of one task's run, with its role, execution model and worker count.
fn task_run_span(spans: &Spans, task: &TaskPlan) -> ActiveSpan {
    let fields = Fields::Attributes(vec![
        KeyValue::new(names::TASK, task.name.clone()),
        KeyValue::new("ergon.role", task.role().to_string()),
        KeyValue::new("ergon.model", task.launch.model().to_string()),
        KeyValue::new("ergon.workers", count(task.workers)),
    ]);
    ActiveSpan::start(
        spans,
        "task_run",
        SpanIds::new_trace(),
        Parent::Root,
        fields,
    )
}

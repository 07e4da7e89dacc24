//! The board the [`TaskManager`](crate::TaskManager) pins its workers on: their stats and,
//! once connected, their connectors. Health checks and metrics exporters read it; nothing
//! on a worker's hot path touches it.

use std::sync::{Arc, Mutex, OnceLock};

use ergon_core::Connector;
use ergon_core::Service;
use ergon_core::runner::{HistogramsSnapshot, StatsSnapshot, WorkerStats};
use ergon_core::service::ServiceTelemetry;
use ergon_core::sync::lock;

/// Every worker of a run, and its services, as the observers see them.
#[derive(Default)]
pub struct WorkerBoard {
    workers: Mutex<Vec<Arc<PinnedWorker>>>,
    /// The run's services, `(name, service)`, once built.
    services: OnceLock<Vec<(String, Arc<dyn Service>)>>,
    /// Where the services register their metrics.
    service_telemetry: ServiceTelemetry,
    /// The journal's counters, once it is open.
    #[cfg(feature = "journal")]
    journal: OnceLock<Arc<ergon_journal::JournalMetrics>>,
}

/// One worker on the board.
pub struct PinnedWorker {
    /// Its task's name.
    pub task: String,
    /// Its index within the task.
    pub worker: usize,
    /// The input connector's kind (`messaging.system`), if any.
    pub system: Option<&'static str>,
    /// The input connector's name (`messaging.destination.name`), if any.
    pub destination: Option<String>,
    /// Its counters and histograms.
    pub stats: Arc<WorkerStats>,
    /// Its connectors, `(name, connector)`, once it has connected them.
    connectors: OnceLock<Vec<(String, Arc<dyn Connector>)>>,
}

/// One task's workers summed.
#[derive(Debug, Clone)]
pub struct TaskTotals {
    /// The task's name.
    pub task: String,
    /// Its input's kind, if any.
    pub system: Option<&'static str>,
    /// Its input's name, if any.
    pub destination: Option<String>,
    /// Counters summed over its workers.
    pub stats: StatsSnapshot,
    /// Histograms merged over its workers.
    pub histograms: HistogramsSnapshot,
}

impl WorkerBoard {
    /// Pins a worker and returns its entry.
    pub fn pin(
        &self,
        task: &str,
        worker: usize,
        input: Option<(&'static str, &str)>,
        stats: Arc<WorkerStats>,
    ) -> Arc<PinnedWorker> {
        let pinned = Arc::new(PinnedWorker {
            task: task.to_owned(),
            worker,
            system: input.map(|(kind, _)| kind),
            destination: input.map(|(_, name)| name.to_owned()),
            stats,
            connectors: OnceLock::new(),
        });
        self.lock().push(pinned.clone());
        pinned
    }

    /// Records the run's services once they are built (health checks read them).
    pub fn services_built(&self, services: Vec<(String, Arc<dyn Service>)>) {
        let _ = self.services.set(services);
    }

    /// Records where the run's journal counts (children spawned, waits decided).
    #[cfg(feature = "journal")]
    pub fn journal_opened(&self, metrics: Arc<ergon_journal::JournalMetrics>) {
        let _ = self.journal.set(metrics);
    }

    /// The journal's counters, once it is open.
    #[cfg(feature = "journal")]
    pub fn journal(&self) -> Option<&Arc<ergon_journal::JournalMetrics>> {
        self.journal.get()
    }

    /// The run's services, `(name, service)`, empty until they are built.
    pub fn services(&self) -> &[(String, Arc<dyn Service>)] {
        self.services.get().map_or(&[], Vec::as_slice)
    }

    /// Where the run's services register their metrics (the exporters read it).
    pub fn service_telemetry(&self) -> &ServiceTelemetry {
        &self.service_telemetry
    }

    /// The workers pinned so far.
    pub fn workers(&self) -> Vec<Arc<PinnedWorker>> {
        self.lock().clone()
    }

    /// Each task's workers summed, in the order the tasks were first pinned.
    pub fn totals(&self) -> Vec<TaskTotals> {
        let mut totals: Vec<TaskTotals> = Vec::new();
        for worker in self.workers() {
            let (stats, histograms) = (worker.stats.snapshot(), worker.stats.histograms());
            match totals.iter_mut().find(|t| t.task == worker.task) {
                Some(total) => {
                    total.stats += stats;
                    total.histograms.merge(&histograms);
                }
                None => totals.push(TaskTotals {
                    task: worker.task.clone(),
                    system: worker.system,
                    destination: worker.destination.clone(),
                    stats,
                    histograms,
                }),
            }
        }
        totals
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<PinnedWorker>>> {
        lock(&self.workers)
    }
}

impl PinnedWorker {
    /// Records the worker's connectors once they are open.
    pub fn connected(&self, connectors: Vec<(String, Arc<dyn Connector>)>) {
        let _ = self.connectors.set(connectors);
    }

    /// The worker's connectors, empty until it has connected.
    pub fn connectors(&self) -> &[(String, Arc<dyn Connector>)] {
        self.connectors.get().map_or(&[], Vec::as_slice)
    }

    /// Whether the worker has connected (it is ready to work).
    pub fn is_connected(&self) -> bool {
        self.connectors.get().is_some()
    }
}

//! One journal over either store: what the engine and tasks call ([`Journal`]) is the
//! same for SQLite and PostgreSQL — the record mode, the route checks, the writer
//! requests, the in-step waits, the metrics — and each store ([`Store`]) brings only its
//! writer and its reads.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ergon_connectors::local::Lease;
use ergon_core::journal::dag::{PlannedNode, RunPlan, RunStart};
use ergon_core::journal::{Completion, Counts, Journal, Member, MemberState, Park, Quorum, Waited};
use ergon_core::lifecycle::TransactionOutcome;
use ergon_core::transaction::meta;
use ergon_core::{Delivery, Settlement, TaskError, Transaction};
use tokio::sync::Notify;

use crate::config::Settings;
use crate::events::RunSettings;
use crate::in_step;
use crate::metrics::JournalMetrics;
use crate::read::JournalReader;
use crate::recording::Recording;
use crate::request::Request;
use crate::routes::Routes;
use crate::run::{self, RunStatus};

/// What a store does for its journal.
#[async_trait]
pub(crate) trait Store: Send + Sync + 'static {
    /// Sends `request` to the store's writer; answers once it is committed.
    async fn write(&self, request: Request) -> Result<usize, TaskError>;

    /// The settlement recorded for `id` in `task`, if it is terminal there.
    async fn recorded(&self, task: &str, id: &str) -> Result<Option<Settlement>, TaskError>;

    /// The states of `members`, in order (`pending` while not terminal).
    async fn states(&self, members: &[Member]) -> Result<Vec<MemberState>, TaskError>;

    /// Whether a node of one of `tasks` is queued, or a wait continuing into one of them
    /// is undecided.
    async fn owes(&self, tasks: &[String]) -> Result<bool, TaskError>;

    /// [`Journal::looks_up`].
    fn looks_up(&self, tx: &Transaction) -> bool;

    /// The lease of `delivery` that `completion`'s commit acks, when its queue lives in the
    /// store. Default: none.
    fn lease(&self, completion: &Completion, delivery: &Delivery) -> Option<Lease> {
        let _ = (completion, delivery);
        None
    }

    /// A reader of the store.
    fn reader(&self) -> Arc<dyn JournalReader>;
}

/// A durable journal: in an SQLite file ([`DurableJournal::sqlite`]) or in PostgreSQL
/// ([`DurableJournal::postgres`]). Built by the runner from `[journal]`; open one
/// yourself to embed ergon's engine:
///
/// ```
/// use ergon_journal::{DurableJournal, Record, Settings};
///
/// let dir = tempfile::tempdir()?;
/// let settings = Settings { record: Record::All, ..Settings::default() };
/// let journal = DurableJournal::sqlite(&dir.path().join("journal.db"), settings)?;
/// // `Context::builder("task").journal(std::sync::Arc::new(journal))` records the task's completions.
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DurableJournal {
    store: Box<dyn Store>,
    recording: Recording,
    running: Vec<String>,
    routes: Arc<Routes>,
    committed: Arc<Notify>,
    metrics: Arc<JournalMetrics>,
    runs: RunSettings,
}

/// What a store's writer shares with its journal: the routes, the commit signal in-step
/// waits wake on, and the metrics.
#[derive(Clone)]
pub(crate) struct Shared {
    pub routes: Arc<Routes>,
    pub committed: Arc<Notify>,
    pub metrics: Arc<JournalMetrics>,
}

impl Shared {
    /// What a journal with `settings` shares.
    pub(crate) fn new(settings: &Settings) -> Self {
        Self {
            routes: Arc::new(settings.routes.clone()),
            committed: Arc::new(Notify::new()),
            metrics: Arc::new(JournalMetrics::default()),
        }
    }
}

impl DurableJournal {
    /// The journal with `settings` over `store`, whose writer holds `shared`.
    pub(crate) fn assemble(settings: Settings, shared: Shared, store: impl Store) -> Self {
        Self {
            store: Box::new(store),
            recording: Recording::new(settings.record),
            running: settings.running,
            routes: shared.routes,
            committed: shared.committed,
            metrics: shared.metrics,
            runs: settings.runs,
        }
    }

    /// `plan` checked for a run (`call` names it in the error).
    fn check_plan(&self, call: &str, plan: &RunPlan) -> Result<(), TaskError> {
        run::check(plan, &self.routes, &self.runs.expanders, self.runs.limits)
            .map(drop)
            .map_err(|err| TaskError::business(format!("{call}: {err}")).non_retryable())
    }

    /// What the journal counted: read by the runner's metrics.
    pub fn metrics(&self) -> &Arc<JournalMetrics> {
        &self.metrics
    }

    /// A reader of the same store.
    pub fn reader(&self) -> Arc<dyn JournalReader> {
        self.store.reader()
    }
}

#[async_trait]
impl Journal for DurableJournal {
    fn records(&self, task: &str, tx: &Transaction, outcome: &TransactionOutcome) -> bool {
        self.recording.records(&self.routes, task, tx, outcome)
    }

    fn looks_up(&self, tx: &Transaction) -> bool {
        self.store.looks_up(tx)
    }

    async fn recorded(&self, task: &str, id: &str) -> Result<Option<Settlement>, TaskError> {
        self.store.recorded(task, id).await
    }

    async fn complete(&self, completion: Completion) -> Result<(), TaskError> {
        self.store
            .write(Request::Complete(completion, None))
            .await
            .map(drop)
    }

    /// Acks in the journal's commit a delivery of a local queue in the journal's SQLite
    /// file (the task reads such a queue: [`Routes`]), ending in `Ack` or `Drop`: the
    /// record and the ack are one commit, so a completed transaction is never delivered
    /// again.
    async fn complete_and_settle(
        &self,
        completion: Completion,
        delivery: &Delivery,
    ) -> Result<bool, TaskError> {
        let lease = self.store.lease(&completion, delivery);
        let acked = self
            .store
            .write(Request::Complete(completion, lease))
            .await?;
        Ok(acked == 1)
    }

    async fn spawn(
        &self,
        from_task: &str,
        target: &str,
        children: Vec<Transaction>,
    ) -> Result<usize, TaskError> {
        let request = Request::spawn(&self.routes, &self.recording, from_task, target, children)?;
        let new = self.store.write(request).await?;
        self.metrics.count_spawned(from_task, target, new);
        Ok(new)
    }

    async fn park(&self, park: Park) -> Result<(), TaskError> {
        let request = Request::park(&self.routes, &self.recording, park)?;
        self.store.write(request).await.map(drop)
    }

    async fn wait(
        &self,
        members: &[Member],
        quorum: Quorum,
        counts: Counts,
        timeout: Duration,
    ) -> Result<Waited, TaskError> {
        let states = || self.store.states(members);
        let rule = (quorum, counts);
        in_step::wait(
            &self.committed,
            &self.metrics,
            members.len(),
            rule,
            timeout,
            states,
        )
        .await
    }

    async fn start_run(&self, start: RunStart) -> Result<bool, TaskError> {
        let call = format!("run {} of {}", start.run_id, start.workflow);
        self.check_plan(&call, &start.plan)?;
        if let Some(task) = &start.on_complete {
            self.routes.check(&format!("{call}: on_complete"), task)?;
        }
        self.recording.parent(start.owner.id());
        let new = self.store.write(Request::StartRun(Box::new(start))).await?;
        Ok(new == 1)
    }

    async fn extend_run(
        &self,
        node: &Transaction,
        nodes: Vec<PlannedNode>,
    ) -> Result<(), TaskError> {
        let not_a_node = || {
            TaskError::business(format!(
                "extend_run: transaction {} is not a node of a running run",
                node.id()
            ))
            .non_retryable()
        };
        let run_id = node.meta(meta::RUN_ID).ok_or_else(not_a_node)?;
        let stored = self.reader().run(run_id).await?.ok_or_else(not_a_node)?;
        if stored.summary.status != RunStatus::Running.as_str() {
            return Err(not_a_node());
        }
        let mut plan = stored.plan;
        plan.nodes.extend(nodes.iter().cloned());
        self.check_plan(&format!("extend_run of run {run_id}"), &plan)?;
        let request = Request::ExtendRun {
            run_id: run_id.to_owned(),
            nodes,
        };
        match self.store.write(request).await? {
            1 => Ok(()),
            _ => Err(TaskError::system(format!(
                "extend_run of run {run_id}: the run ended or changed meanwhile"
            ))),
        }
    }

    async fn owes(&self) -> Result<bool, TaskError> {
        self.store.owes(&self.running).await
    }

    async fn cancel_children(&self, parent: &str) -> Result<usize, TaskError> {
        let request = Request::Cancel {
            parent: parent.to_owned(),
        };
        self.store.write(request).await
    }
}

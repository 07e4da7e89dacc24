//! The journal in an embedded SQLite file: by default the `local` queue's own file, so
//! that what the journal hands over (spawned children, continuations) enters the
//! target's queue in the journal's own commit — exactly once, on one machine.
//!
//! One writer thread per process commits requests in groups ([`writer`]) through the
//! state transitions of [`workflow`]; reads ([`reader`]) use their own connection,
//! beside the writer thanks to WAL. Several processes may share the file, as they share
//! the queue: each write is one short `BEGIN IMMEDIATE` transaction.

mod reader;
mod schema;
mod workflow;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use ergon_connectors::local::Lease;
use ergon_core::journal::{Completion, Counts, Journal, Member, MemberState, Park, Quorum, Waited};
use ergon_core::lifecycle::TransactionOutcome;
use ergon_core::sync::lock;
use ergon_core::{Delivery, Settlement, TaskError, Transaction};
use rusqlite::Connection;
use tokio::sync::Notify;

use crate::config::Settings;
use crate::in_step;
use crate::metrics::JournalMetrics;
use crate::node::{Filter, Node};
use crate::recording::Recording;
use crate::request::{Pending, Request, gone};
use crate::routes::Routes;
use writer::Writer;

/// The journal of one SQLite file.
///
/// Built by the runner from `[journal]`; open it yourself to embed ergon's engine:
///
/// ```
/// use ergon_journal::{Record, Settings, SqliteJournal};
///
/// let dir = tempfile::tempdir()?;
/// let settings = Settings { record: Record::All, ..Settings::default() };
/// let journal = SqliteJournal::open(&dir.path().join("journal.db"), settings)?;
/// // `Context::builder("task").journal(std::sync::Arc::new(journal))` records the task's completions.
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteJournal {
    recording: Recording,
    /// [`Settings::running`] as a JSON array.
    running: String,
    routes: Arc<Routes>,
    writer: mpsc::Sender<Pending>,
    reader: Arc<SqliteReader>,
    committed: Arc<Notify>,
    metrics: Arc<JournalMetrics>,
}

impl SqliteJournal {
    /// Opens (creating when missing) the journal at `path` and starts its writer thread.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or created, or is not an SQLite database (a
    /// non-retryable system error naming the file).
    pub fn open(path: &Path, settings: Settings) -> Result<Self, TaskError> {
        let db =
            schema::open(path).map_err(|err| fail(path, "cannot open", err).non_retryable())?;
        let reader = Arc::new(SqliteReader::open(path)?);
        let routes = Arc::new(settings.routes);
        let committed = Arc::new(Notify::new());
        let metrics = Arc::new(JournalMetrics::default());
        let writer = Writer {
            db,
            path: path.to_path_buf(),
            routes: routes.clone(),
            max_output: settings.max_output,
            retention: settings.retention,
            committed: committed.clone(),
            metrics: metrics.clone(),
        };
        let (sender, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("ergon-journal".into())
            .spawn(move || writer.run(queue))
            .map_err(|err| {
                TaskError::system(format!(
                    "journal {}: cannot start its writer",
                    path.display()
                ))
                .with_source(err)
                .non_retryable()
            })?;
        let running = serde_json::to_string(&settings.running).unwrap_or_default();
        Ok(Self {
            recording: Recording::new(settings.record),
            running,
            routes,
            writer: sender,
            reader,
            committed,
            metrics,
        })
    }

    /// What the journal counted: read by the runner's metrics.
    pub fn metrics(&self) -> &Arc<JournalMetrics> {
        &self.metrics
    }

    /// A reader of the same file.
    pub fn reader(&self) -> &Arc<SqliteReader> {
        &self.reader
    }

    /// Sends `request` to the writer and waits for its commit.
    async fn write(&self, request: Request) -> Result<usize, TaskError> {
        let (pending, committed) = request.pending();
        self.writer.send(pending).map_err(|_| gone())?;
        committed.wait().await
    }

    /// The members' states, read off the runtime.
    async fn states(&self, members: &[Member]) -> Result<Vec<MemberState>, TaskError> {
        let reader = self.reader.clone();
        let members = members.to_vec();
        tokio::task::spawn_blocking(move || reader.states(&members))
            .await
            .map_err(|err| TaskError::system(format!("journal read panicked: {err}")))?
    }
}

#[async_trait]
impl Journal for SqliteJournal {
    fn records(&self, task: &str, tx: &Transaction, outcome: &TransactionOutcome) -> bool {
        self.recording.records(&self.routes, task, tx, outcome)
    }

    async fn recorded(&self, task: &str, id: &str) -> Result<Option<Settlement>, TaskError> {
        let reader = self.reader.clone();
        let (task, id) = (task.to_owned(), id.to_owned());
        tokio::task::spawn_blocking(move || reader.recorded(&task, &id))
            .await
            .map_err(|err| TaskError::system(format!("journal lookup panicked: {err}")))?
    }

    async fn complete(&self, completion: Completion) -> Result<(), TaskError> {
        self.write(Request::Complete(completion, None))
            .await
            .map(drop)
    }

    /// Acks in the journal's commit a delivery of a local queue in the journal's file
    /// (the task reads such a queue: [`Routes`]), ending in `Ack` or `Drop`: the record and
    /// the ack are one commit, so a completed transaction is never delivered again.
    async fn complete_and_settle(
        &self,
        completion: Completion,
        delivery: &Delivery,
    ) -> Result<bool, TaskError> {
        let deletes = matches!(completion.settlement, Settlement::Ack | Settlement::Drop(_));
        let lease = delivery
            .receipt::<Lease>()
            .copied()
            .filter(|_| deletes && self.routes.queue_of(&completion.task).is_some());
        let acked = self.write(Request::Complete(completion, lease)).await?;
        Ok(acked == 1)
    }

    async fn spawn(
        &self,
        from_task: &str,
        target: &str,
        children: Vec<Transaction>,
    ) -> Result<usize, TaskError> {
        let request = Request::spawn(&self.routes, &self.recording, from_task, target, children)?;
        let new = self.write(request).await?;
        self.metrics.count_spawned(from_task, target, new);
        Ok(new)
    }

    async fn park(&self, park: Park) -> Result<(), TaskError> {
        let request = Request::park(&self.routes, &self.recording, park)?;
        self.write(request).await.map(drop)
    }

    async fn wait(
        &self,
        members: &[Member],
        quorum: Quorum,
        counts: Counts,
        timeout: Duration,
    ) -> Result<Waited, TaskError> {
        let states = || self.states(members);
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

    async fn owes(&self) -> Result<bool, TaskError> {
        let reader = self.reader.clone();
        let running = self.running.clone();
        tokio::task::spawn_blocking(move || reader.owes(&running))
            .await
            .map_err(|err| TaskError::system(format!("journal read panicked: {err}")))?
    }

    async fn cancel_children(&self, parent: &str) -> Result<usize, TaskError> {
        let request = Request::Cancel {
            parent: parent.to_owned(),
        };
        self.write(request).await
    }
}

/// Reads an SQLite journal: `get`, `list`, `trace` and `journal purge` use one.
pub struct SqliteReader {
    path: PathBuf,
    db: Mutex<Connection>,
}

impl SqliteReader {
    /// Opens the journal at `path` for reading (creating its tables when missing, so a
    /// fresh file reads as empty).
    ///
    /// # Errors
    ///
    /// The file cannot be opened or is not an SQLite database.
    pub fn open(path: &Path) -> Result<Self, TaskError> {
        let db =
            schema::open(path).map_err(|err| fail(path, "cannot open", err).non_retryable())?;
        Ok(Self {
            path: path.to_path_buf(),
            db: Mutex::new(db),
        })
    }

    /// The nodes of transaction `id`, one per task it completed in (usually one).
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub fn get(&self, id: &str) -> Result<Vec<Node>, TaskError> {
        reader::get(&lock(&self.db), id).map_err(|err| fail(&self.path, "cannot read", err))
    }

    /// The nodes `filter` selects, oldest first.
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub fn list(&self, filter: &Filter) -> Result<Vec<Node>, TaskError> {
        reader::list(&lock(&self.db), filter).map_err(|err| fail(&self.path, "cannot read", err))
    }

    /// The settlement recorded for `id` in `task`, if it is terminal there.
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub fn recorded(&self, task: &str, id: &str) -> Result<Option<Settlement>, TaskError> {
        reader::recorded(&lock(&self.db), task, id)
            .map_err(|err| fail(&self.path, "cannot read", err))
    }

    /// The states of `members`, in order (`pending` while not terminal).
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub fn states(&self, members: &[Member]) -> Result<Vec<MemberState>, TaskError> {
        reader::states(&lock(&self.db), members).map_err(|err| fail(&self.path, "cannot read", err))
    }

    /// Whether a node of one of `tasks` (a JSON array of names) is queued, or a wait
    /// continuing into one of them is undecided.
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub fn owes(&self, tasks: &str) -> Result<bool, TaskError> {
        reader::owes(&lock(&self.db), tasks).map_err(|err| fail(&self.path, "cannot read", err))
    }

    /// Deletes the terminal records that ended before `before_ms` (Unix milliseconds) and
    /// the waits decided before then; returns how many records.
    ///
    /// # Errors
    ///
    /// The database cannot be written.
    pub fn purge_before(&self, before_ms: i64) -> Result<usize, TaskError> {
        reader::purge_before(&lock(&self.db), before_ms)
            .map_err(|err| fail(&self.path, "cannot purge", err))
    }
}

fn fail(path: &Path, what: &str, err: rusqlite::Error) -> TaskError {
    TaskError::system(format!("journal {}: {what}", path.display())).with_source(err)
}

/// For the commands: they read one file at a time, so the calls block briefly.
#[async_trait]
impl crate::JournalReader for SqliteReader {
    async fn get(&self, id: &str) -> Result<Vec<Node>, TaskError> {
        SqliteReader::get(self, id)
    }

    async fn list(&self, filter: &Filter) -> Result<Vec<Node>, TaskError> {
        SqliteReader::list(self, filter)
    }

    async fn purge_before(&self, before_ms: i64) -> Result<usize, TaskError> {
        SqliteReader::purge_before(self, before_ms)
    }
}

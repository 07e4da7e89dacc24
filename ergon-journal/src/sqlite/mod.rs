//! The journal in an embedded SQLite file: by default the `local` queue's own file, so
//! that what the journal hands over (spawned children, continuations) enters the
//! target's queue in the journal's own commit — exactly once, on one machine.
//!
//! One writer thread per process commits requests in groups ([`writer`]) through the
//! state transitions of [`workflow`]; reads ([`reader`]) use their own connection,
//! beside the writer thanks to WAL. Several processes may share the file, as they share
//! the queue: each write is one short `BEGIN IMMEDIATE` transaction.

mod fan_in;
mod reader;
mod run;
mod schema;
mod workflow;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use ergon_connectors::local::{Database, Lease};
use ergon_core::journal::{Completion, Member, MemberState};
use ergon_core::{Delivery, Settlement, TaskError, Transaction};

use crate::config::Settings;
use crate::durable::{DurableJournal, Shared, Store};
use crate::node::{Filter, Node};
use crate::read::{JournalReader, detail};
use crate::request::{Pending, Request};
use crate::routes::Routes;
use crate::run::view::{RunDetail, RunSummary};
use writer::Writer;

/// The SQLite store of a [`DurableJournal`]: its writer thread and a reader.
struct SqliteStore {
    writer: mpsc::Sender<Pending>,
    reader: Arc<SqliteReader>,
    routes: Arc<Routes>,
}

impl DurableJournal {
    /// Opens (creating when missing) the journal in the SQLite file at `path` and starts
    /// its writer thread.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or created, or is not an SQLite database (a
    /// non-retryable system error naming the file).
    pub fn sqlite(path: &Path, settings: Settings) -> Result<Self, TaskError> {
        let db =
            schema::open(path).map_err(|err| fail(path, "cannot open", err).non_retryable())?;
        let reader = Arc::new(SqliteReader::open(path)?);
        let shared = Shared::new(&settings);
        let writer = Writer {
            db,
            path: path.to_path_buf(),
            routes: shared.routes.clone(),
            max_output: settings.max_output,
            retention: settings.retention,
            committed: shared.committed.clone(),
            metrics: shared.metrics.clone(),
            runs: settings.runs.clone(),
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
        let store = SqliteStore {
            writer: sender,
            reader,
            routes: shared.routes.clone(),
        };
        Ok(DurableJournal::assemble(settings, shared, store))
    }
}

impl SqliteStore {
    /// Runs `read` on the reader off the runtime.
    async fn read<T, F>(&self, read: F) -> Result<T, TaskError>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteReader) -> Result<T, TaskError> + Send + 'static,
    {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || read(&reader))
            .await
            .map_err(|err| TaskError::system(format!("journal read panicked: {err}")))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self, request: Request) -> Result<usize, TaskError> {
        request
            .write(|pending| self.writer.send(pending).is_ok())
            .await
    }

    async fn recorded(&self, task: &str, id: &str) -> Result<Option<Settlement>, TaskError> {
        let (task, id) = (task.to_owned(), id.to_owned());
        self.read(move |reader| reader.recorded(&task, &id)).await
    }

    async fn states(&self, members: &[Member]) -> Result<Vec<MemberState>, TaskError> {
        let members = members.to_vec();
        self.read(move |reader| reader.states(&members)).await
    }

    async fn owes(&self, tasks: &[String]) -> Result<bool, TaskError> {
        let tasks = serde_json::to_string(tasks).unwrap_or_default();
        self.read(move |reader| reader.owes(&tasks)).await
    }

    /// Only redeliveries: what the journal hands over enters its queue in its commit,
    /// exactly once.
    fn looks_up(&self, tx: &Transaction) -> bool {
        tx.deliveries() > 1
    }

    /// A delivery of a local queue in the journal's file, ending in `Ack` or `Drop`.
    fn lease(&self, completion: &Completion, delivery: &Delivery) -> Option<Lease> {
        let deletes = matches!(completion.settlement, Settlement::Ack | Settlement::Drop(_));
        delivery
            .receipt::<Lease>()
            .copied()
            .filter(|_| deletes && self.routes.queue_of(&completion.task).is_some())
    }

    fn reader(&self) -> Arc<dyn JournalReader> {
        self.reader.clone()
    }
}

/// Reads an SQLite journal: `get`, `list`, `trace` and `journal purge` use one.
pub struct SqliteReader {
    path: PathBuf,
    db: Database,
}

impl SqliteReader {
    /// Opens the journal at `path` for reading (creating its tables when missing, so a
    /// fresh file reads as empty).
    ///
    /// # Errors
    ///
    /// The file cannot be opened or is not an SQLite database.
    pub fn open(path: &Path) -> Result<Self, TaskError> {
        let db = schema::open_reader(path)
            .map_err(|err| fail(path, "cannot open", err).non_retryable())?;
        Ok(Self {
            path: path.to_path_buf(),
            db,
        })
    }

    /// The nodes of transaction `id`, one per task it completed in (usually one).
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub fn get(&self, id: &str) -> Result<Vec<Node>, TaskError> {
        reader::get(&self.db.read(), id).map_err(|err| fail(&self.path, "cannot read", err))
    }

    /// The nodes `filter` selects, oldest first.
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub fn list(&self, filter: &Filter) -> Result<Vec<Node>, TaskError> {
        reader::list(&self.db.read(), filter).map_err(|err| fail(&self.path, "cannot read", err))
    }

    /// The settlement recorded for `id` in `task`, if it is terminal there.
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub fn recorded(&self, task: &str, id: &str) -> Result<Option<Settlement>, TaskError> {
        reader::recorded(&self.db.read(), task, id)
            .map_err(|err| fail(&self.path, "cannot read", err))
    }

    /// The states of `members`, in order (`pending` while not terminal).
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub fn states(&self, members: &[Member]) -> Result<Vec<MemberState>, TaskError> {
        reader::states(&self.db.read(), members).map_err(|err| fail(&self.path, "cannot read", err))
    }

    /// Whether a node of one of `tasks` (a JSON array of names) is queued, a wait
    /// continuing into one of them is undecided, or a fan-in group of one of them holds
    /// items its timeout will cut.
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub fn owes(&self, tasks: &str) -> Result<bool, TaskError> {
        reader::owes(&self.db.read(), tasks).map_err(|err| fail(&self.path, "cannot read", err))
    }

    /// The items fan-in batch `batch_id` holds, in the order they arrived.
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub fn batch_items(&self, batch_id: &str) -> Result<Vec<Member>, TaskError> {
        reader::batch_items(&self.db.read(), batch_id)
            .map_err(|err| fail(&self.path, "cannot read", err))
    }

    /// The DAG runs in `status` (every status when `None`), newest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// The file cannot be read.
    pub fn runs(&self, status: Option<&str>, limit: usize) -> Result<Vec<RunSummary>, TaskError> {
        reader::runs(&self.db.read(), status, limit)
            .map_err(|err| fail(&self.path, "cannot read", err))
    }

    /// Run `run_id` with its nodes, if the journal has it.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or the run's row does not decode.
    pub fn run(&self, run_id: &str) -> Result<Option<RunDetail>, TaskError> {
        let stored = reader::run(&self.db.read(), run_id)
            .map_err(|err| fail(&self.path, "cannot read", err))?;
        detail(stored)
    }

    /// Deletes the terminal records that ended before `before_ms` (Unix milliseconds), the
    /// waits decided and the fan-in groups closed and the runs ended before then (with their items); returns
    /// how many records.
    ///
    /// # Errors
    ///
    /// The database cannot be written.
    pub fn purge_before(&self, before_ms: i64) -> Result<usize, TaskError> {
        reader::purge_before(&self.db, before_ms)
            .map_err(|err| fail(&self.path, "cannot purge", err))
    }
}

fn fail(path: &Path, what: &str, err: rusqlite::Error) -> TaskError {
    TaskError::system(format!("journal {}: {what}", path.display())).with_source(err)
}

/// For the commands: they read one file at a time, so the calls block briefly.
#[async_trait]
impl JournalReader for SqliteReader {
    async fn get(&self, id: &str) -> Result<Vec<Node>, TaskError> {
        SqliteReader::get(self, id)
    }

    async fn list(&self, filter: &Filter) -> Result<Vec<Node>, TaskError> {
        SqliteReader::list(self, filter)
    }

    async fn batch_items(&self, batch_id: &str) -> Result<Vec<Member>, TaskError> {
        SqliteReader::batch_items(self, batch_id)
    }

    async fn runs(&self, status: Option<&str>, limit: usize) -> Result<Vec<RunSummary>, TaskError> {
        SqliteReader::runs(self, status, limit)
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunDetail>, TaskError> {
        SqliteReader::run(self, run_id)
    }

    async fn purge_before(&self, before_ms: i64) -> Result<usize, TaskError> {
        SqliteReader::purge_before(self, before_ms)
    }
}

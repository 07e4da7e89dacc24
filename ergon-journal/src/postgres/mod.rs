//! The journal in PostgreSQL, shared by runners on many machines.
//!
//! The same journal as [`crate::sqlite`] — one row per (transaction, task), group commit,
//! journal first then settle, members that flip once, waits decided once in the commit
//! that decides them — with what many machines need instead of one file:
//!
//! * one writer task per process ([`writer`]); commits of all processes take turns on an
//!   advisory lock, so a wait registered while its members complete elsewhere cannot miss
//!   one of them;
//! * what the journal hands over (spawned children, continuations) is written to an
//!   outbox in the commit that decides it, and the relay ([`relay`]) dispatches it to the
//!   target task's input connector (RabbitMQ, ...): at least once, with deterministic ids,
//!   and a copy delivered after its first one completed is settled as recorded without
//!   running (every child is looked up before it runs);
//! * each commit notifies a channel that every process listens to ([`listen`]), so an
//!   in-step wait and a relay wake when another machine commits.

mod fan_in;
mod listen;
mod lookup;
mod reader;
mod relay;
mod run;
mod schema;
mod workflow;
mod writer;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use ergon_core::config::{MakeConnector, plain_sql_name};
use ergon_core::journal::{Member, MemberState};
use ergon_core::{Settlement, TaskError, Transaction};
use ergon_services::postgres::connect;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::durable::{DurableJournal, Shared, Store};
use crate::node::{Filter, Node};
use crate::read::{JournalReader, detail};
use crate::request::{Pending, Request};
use crate::run::view::{RunDetail, RunSummary};

/// Connections a process keeps to the journal: the writer's, the relay's, and lookups
/// (redeliveries, children, in-step waits) and reads.
const POOL_SIZE: usize = 8;

/// The PostgreSQL store of a [`DurableJournal`]: its writer, lookup, listener and relay
/// tasks, and a reader.
struct PostgresStore {
    writer: mpsc::UnboundedSender<Pending>,
    lookups: lookup::Lookups,
    reader: Arc<PostgresReader>,
    /// The listener, stopped with the journal.
    listener: JoinHandle<()>,
    /// Stops the relay with the journal (once its batch is relayed).
    stop: Arc<Notify>,
}

impl DurableJournal {
    /// Connects to the PostgreSQL database at `url`, creates the journal's tables in
    /// `schema` when missing, and starts the writer, the listener, and the relay to
    /// `relays` (how to open each relayed task's input connector, opened for dispatching
    /// when the relay first has something for it; a task the journal relays to and this
    /// process has no connector for is left to the processes that do). Inside a tokio
    /// runtime: they are tasks.
    ///
    /// ```no_run
    /// use std::collections::BTreeMap;
    /// use ergon_journal::{DurableJournal, Settings};
    ///
    /// # async fn open() -> Result<(), ergon_core::TaskError> {
    /// let url = "postgres://postgres@127.0.0.1:5432/test";
    /// let journal = DurableJournal::postgres(url, "ergon", Settings::default(), BTreeMap::new()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// A malformed URL or schema name, or a database that cannot be reached or written
    /// (a non-retryable system error naming the database, never its password).
    pub async fn postgres(
        url: &str,
        schema: &str,
        settings: Settings,
        relays: BTreeMap<String, Arc<dyn MakeConnector>>,
    ) -> Result<Self, TaskError> {
        let reader = PostgresReader::open(url, schema).await?;
        let place = reader.place.clone();
        let shared = Shared::new(&settings);
        let relay_wake = Arc::new(Notify::new());
        let writer = writer::Writer {
            pool: reader.pool.clone(),
            place: place.clone(),
            routes: shared.routes.clone(),
            max_output: settings.max_output,
            retention: settings.retention,
            committed: shared.committed.clone(),
            relay: relay_wake.clone(),
            begin: format!("BEGIN; {}", schema::writer_lock(schema)),
            notify_commit: schema::notify_and_commit(&place.channel, ""),
            notify_outbox: schema::notify_and_commit(&place.channel, schema::OUTBOX_PAYLOAD),
            metrics: shared.metrics.clone(),
            runs: settings.runs.clone(),
        };
        let (sender, queue) = mpsc::unbounded_channel();
        tokio::spawn(writer.run(queue));
        let lookups = lookup::Lookups::start(reader.pool.clone(), place.clone());
        let listener = tokio::spawn(listen::listen(
            reader.config.clone(),
            place.clone(),
            shared.committed.clone(),
            relay_wake.clone(),
        ));
        let stop = Arc::new(Notify::new());
        if !relays.is_empty() {
            let relay = relay::Relay {
                pool: reader.pool.clone(),
                place,
                targets: relays,
                opened: BTreeMap::new(),
                wake: relay_wake,
                stop: stop.clone(),
            };
            tokio::spawn(relay.run());
        }
        let store = PostgresStore {
            writer: sender,
            lookups,
            reader: Arc::new(reader),
            listener,
            stop,
        };
        Ok(DurableJournal::assemble(settings, shared, store))
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
        self.stop.notify_one();
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn write(&self, request: Request) -> Result<usize, TaskError> {
        request
            .write(|pending| self.writer.send(pending).is_ok())
            .await
    }

    async fn recorded(&self, task: &str, id: &str) -> Result<Option<Settlement>, TaskError> {
        self.lookups.recorded(task, id).await
    }

    async fn states(&self, members: &[Member]) -> Result<Vec<MemberState>, TaskError> {
        self.reader.states(members).await
    }

    async fn owes(&self, tasks: &[String]) -> Result<bool, TaskError> {
        self.reader.owes(tasks).await
    }

    /// Redeliveries, and every child: the relay hands children over at least once, and a
    /// child cancelled after it was relayed is still delivered.
    fn looks_up(&self, tx: &Transaction) -> bool {
        tx.deliveries() > 1 || tx.parent_id().is_some()
    }

    fn reader(&self) -> Arc<dyn JournalReader> {
        self.reader.clone()
    }
}

/// Where a journal lives, as its errors and logs name it: host, port, database and schema,
/// never the password.
pub(crate) struct Place {
    description: String,
    /// The channel its commits notify.
    pub channel: String,
}

impl Place {
    /// A system error: `what` went wrong here, because of `source`.
    fn error(
        &self,
        what: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> TaskError {
        TaskError::system(format!("journal {self}: {what}")).with_source(source)
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// Reads a PostgreSQL journal: `get`, `list`, `trace` and `journal purge` use one.
pub struct PostgresReader {
    pool: Pool,
    config: tokio_postgres::Config,
    place: Arc<Place>,
}

impl PostgresReader {
    /// Connects to the database at `url` and creates the journal's tables in `schema`
    /// when missing (so a fresh database reads as empty).
    ///
    /// # Errors
    ///
    /// A malformed URL or schema name, or a database that cannot be reached.
    pub async fn open(url: &str, schema: &str) -> Result<Self, TaskError> {
        if !plain_sql_name(schema) {
            return Err(TaskError::system(format!(
                "journal: schema `{schema}` is not a plain SQL name (lower-case letters, digits \
                 and `_`, at most 48 characters, not starting with a digit)"
            ))
            .non_retryable());
        }
        let mut config =
            connect::settings(url, &format!("ergon-journal {schema}")).map_err(|message| {
                TaskError::system(format!("journal: the PostgreSQL url {message}")).non_retryable()
            })?;
        config.options(format!("-c search_path={schema}"));
        let place = Arc::new(Place {
            description: format!("{} schema {schema}", connect::describe(&config)),
            channel: format!("ergon_journal_{schema}"),
        });
        let pool = connect::pool(&config, POOL_SIZE).map_err(|err| {
            place
                .error("cannot build a connection pool", err)
                .non_retryable()
        })?;
        let reader = Self {
            pool,
            config,
            place,
        };
        let mut client = reader.client().await.map_err(TaskError::non_retryable)?;
        schema::create(&mut client, schema).await.map_err(|err| {
            reader
                .place
                .error("cannot create the journal's tables", err)
                .non_retryable()
        })?;
        Ok(reader)
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Client, TaskError> {
        self.pool
            .get()
            .await
            .map_err(|err| self.place.error("cannot connect", err))
    }

    /// The nodes of transaction `id`, one per task it completed in (usually one).
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub async fn get(&self, id: &str) -> Result<Vec<Node>, TaskError> {
        let db = self.client().await?;
        reader::get(&db, id)
            .await
            .map_err(|err| self.place.error("cannot read", err))
    }

    /// The nodes `filter` selects, oldest first.
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Node>, TaskError> {
        let db = self.client().await?;
        reader::list(&db, filter)
            .await
            .map_err(|err| self.place.error("cannot read", err))
    }

    /// The states of `members`, in order (`pending` while not terminal).
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub async fn states(&self, members: &[Member]) -> Result<Vec<MemberState>, TaskError> {
        let db = self.client().await?;
        reader::states(&db, members)
            .await
            .map_err(|err| self.place.error("cannot read", err))
    }

    /// Whether a node of one of `tasks` is queued, a wait continuing into one of them is
    /// undecided, or a fan-in group of one of them holds items its timeout will cut.
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub async fn owes(&self, tasks: &[String]) -> Result<bool, TaskError> {
        let db = self.client().await?;
        reader::owes(&db, tasks)
            .await
            .map_err(|err| self.place.error("cannot read", err))
    }

    /// The items fan-in batch `batch_id` holds, in the order they arrived.
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub async fn batch_items(&self, batch_id: &str) -> Result<Vec<Member>, TaskError> {
        let db = self.client().await?;
        reader::batch_items(&db, batch_id)
            .await
            .map_err(|err| self.place.error("cannot read", err))
    }

    /// The DAG runs in `status` (every status when `None`), newest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub async fn runs(
        &self,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, TaskError> {
        let db = self.client().await?;
        reader::runs(&db, status, limit)
            .await
            .map_err(|err| self.place.error("cannot read", err))
    }

    /// Run `run_id` with its nodes, if the journal has it.
    ///
    /// # Errors
    ///
    /// The database cannot be read, or the run's row does not decode.
    pub async fn run(&self, run_id: &str) -> Result<Option<RunDetail>, TaskError> {
        let db = self.client().await?;
        let stored = reader::run(&db, run_id)
            .await
            .map_err(|err| self.place.error("cannot read", err))?;
        detail(stored)
    }

    /// Deletes the terminal records that ended before `before_ms` (Unix milliseconds), the
    /// waits decided and the fan-in groups closed before then (with their items); returns
    /// how many records.
    ///
    /// # Errors
    ///
    /// The database cannot be written.
    pub async fn purge_before(&self, before_ms: i64) -> Result<usize, TaskError> {
        let mut db = self.client().await?;
        reader::purge_before(&mut db, before_ms)
            .await
            .map_err(|err| self.place.error("cannot purge", err))
    }
}

#[async_trait]
impl JournalReader for PostgresReader {
    async fn get(&self, id: &str) -> Result<Vec<Node>, TaskError> {
        PostgresReader::get(self, id).await
    }

    async fn list(&self, filter: &Filter) -> Result<Vec<Node>, TaskError> {
        PostgresReader::list(self, filter).await
    }

    async fn batch_items(&self, batch_id: &str) -> Result<Vec<Member>, TaskError> {
        PostgresReader::batch_items(self, batch_id).await
    }

    async fn runs(&self, status: Option<&str>, limit: usize) -> Result<Vec<RunSummary>, TaskError> {
        PostgresReader::runs(self, status, limit).await
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunDetail>, TaskError> {
        PostgresReader::run(self, run_id).await
    }

    async fn purge_before(&self, before_ms: i64) -> Result<usize, TaskError> {
        PostgresReader::purge_before(self, before_ms).await
    }
}

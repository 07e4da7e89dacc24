//! `type = "file"`: JSON lines in, JSON lines out, dead letters beside them.
//!
//! * **Fetch**: the file at `path` is read lazily, line by line, by
//!   whichever worker asks; blank lines are skipped and every other line is a
//!   [`Transaction`] with id `FILE:LINE` (or the `id_field` of the line), the line's bytes
//!   as payload, and metadata [`meta::PATH`] and [`meta::LINE`]. A line that is not JSON
//!   is still delivered: the task's `tx.json()` fails it as a business error and it is
//!   dead-lettered with its original bytes, so nothing is lost. The reader is shared by
//!   every worker of the `[connectors.NAME]`: `workers = 4` reads each line once.
//! * **Receipts** are `()`: a settlement needs nothing but the transaction. Deliveries are
//!   counted within the run: a requeued transaction comes back with one more.
//! * **Settle**: `Ack` has nothing to do and `Drop` is only counted: a file input is a
//!   finite, replayable source, read from the start on every run (there is no checkpoint
//!   yet). `Requeue` delivers the transaction again later in the same run, before lines
//!   not read yet; a finite run ends only once the file is read to its end and nothing
//!   requeued waits. `DeadLetter` appends one JSON object line to the dead-letter file (see
//!   [`FileConfig::dead_letter`]).
//! * **Dispatch**: each transaction's payload is appended to `path` as one line; the file
//!   and its directories are created when missing. A call returns once its lines reached
//!   the OS (one write per call); [`close`](Connector::close) asks the OS to put them on
//!   disk.
//!
//! File I/O runs on tokio's blocking pool, so a file connector needs a tokio runtime. The
//! [`FileConnector`] is also its own [`MakeConnector`]: each `connect` returns a handle
//! on the same shared state.
//!
//! # Delivery
//!
//! At least once, like every ergon connector. A fetch cut off by its attempt timeout
//! loses nothing: the lines it was reading are handed out by the next fetch. A dispatch or
//! dead letter cut off by its timeout may still complete, so the engine's retry can write
//! a line twice. Lines appended to the input while it is read (another task dispatching
//! into it, in streaming mode) are read by later fetches; a last line without its newline
//! is handed out only by a fetch that finds nothing else, as it may still be being
//! written.
//!
//! # Errors
//!
//! A missing or unreadable input file is a non-retryable system error at the first fetch
//! (not at `connect`: a connector does not know whether a task reads or writes it),
//! naming the path; the worker stops. Other I/O errors are retryable system errors.
//!
//! # Examples
//!
//! ```
//! use ergon_connectors::file::{FileConnector, meta};
//! use ergon_core::{Connector, Settlement};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("orders.jsonl");
//! std::fs::write(&path, "{\"id\":1}\n\n{\"id\":2}\n")?;
//!
//! let orders = FileConnector::new(&path);
//! let batch = orders.fetch(10).await?;
//! let second = batch[1].transaction();
//! assert_eq!(second.id(), "orders.jsonl:3");
//! assert_eq!(second.meta(meta::LINE), Some("3"));
//! assert_eq!(&second.payload()[..], b"{\"id\":2}");
//! for delivery in &batch {
//!     orders.settle(delivery, &Settlement::Ack).await?;
//! }
//! assert!(orders.fetch(10).await?.is_empty());
//! # Ok(()) }
//! ```

mod config;
pub(crate) mod dead_letter;
mod health;
pub(crate) mod reader;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;

use async_trait::async_trait;
use ergon_core::config::{ConfigEnv, ConfigIssue, ConnectorKind, MakeConnector, decode};
use ergon_core::{Connector, Delivery, SettleOutcome, Settlement, TaskError, Transaction};

pub use config::FileConfig;

use reader::Input;
use writer::Appender;

/// Metadata keys the file connector sets on the transactions it reads.
pub mod meta {
    /// The input file's path, as resolved from the config.
    pub const PATH: &str = "file.path";
    /// The 1-based line number in the input file.
    pub const LINE: &str = "file.line";
}

/// The `file` connector kind (`type = "file"`); see [`FileConfig`] for its keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileKind;

impl ConnectorKind for FileKind {
    fn name(&self) -> &'static str {
        "file"
    }

    fn configure(
        &self,
        table: serde_json::Value,
        env: &ConfigEnv,
    ) -> Result<Arc<dyn MakeConnector>, ConfigIssue> {
        let config: FileConfig = decode(table)?;
        Ok(Arc::new(FileConnector::from_config(&config, env)?))
    }
}

/// A JSON lines file as an input, an output or both; see the [module docs](self).
///
/// Cheap to clone: clones (and the connectors [`connect`](MakeConnector::connect)
/// returns) share the reader, the writers and the counters.
#[derive(Clone)]
pub struct FileConnector {
    shared: Arc<Shared>,
}

struct Shared {
    input: Input,
    output: Appender,
    /// `trace_field`: where dispatched lines carry their `traceparent`.
    trace_field: Option<String>,
    dead_letters: Appender,
    acked: AtomicU64,
    dropped: AtomicU64,
    dead_lettered: AtomicU64,
    requeued: AtomicU64,
}

impl FileConnector {
    /// A connector on `path`, with the dead-letter file at its default place
    /// (`<stem>.dead.jsonl` beside it) and `FILE:LINE` ids. Nothing is opened yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let dead_letter = config::default_dead_letter(&path);
        Self::build(path, dead_letter, None, None)
    }

    /// A connector for a `[connectors.NAME]` table: validates `config` and resolves its
    /// paths against `env.base_dir`. Nothing is opened yet.
    ///
    /// # Errors
    ///
    /// What [`FileConfig::validate`] finds, or `dead_letter` resolving to `path`.
    pub fn from_config(config: &FileConfig, env: &ConfigEnv) -> Result<Self, ConfigIssue> {
        config.validate()?;
        let path = config.resolved_path(env);
        let dead_letter = config.resolved_dead_letter(env);
        if dead_letter == path {
            return Err(ConfigIssue::new(
                "dead_letter",
                format!("must not be the same file as `path` ({})", path.display()),
            ));
        }
        Ok(Self::build(
            path,
            dead_letter,
            config.id_field.clone(),
            config.trace_field.clone(),
        ))
    }

    fn build(
        path: PathBuf,
        dead_letter: PathBuf,
        id_field: Option<String>,
        trace_field: Option<String>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                input: Input::new(path.clone(), id_field, trace_field.clone()),
                output: Appender::new(path),
                trace_field,
                dead_letters: Appender::new(dead_letter),
                acked: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                dead_lettered: AtomicU64::new(0),
                requeued: AtomicU64::new(0),
            }),
        }
    }

    /// The file read from and appended to.
    pub fn path(&self) -> &Path {
        self.shared.input.path()
    }

    /// The dead-letter file.
    pub fn dead_letter_path(&self) -> &Path {
        self.shared.dead_letters.path()
    }

    /// Transactions acked so far (through any handle).
    pub fn acked(&self) -> u64 {
        self.shared.acked.load(Relaxed)
    }

    /// Failed transactions dropped so far (`on_failure = "drop"`).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Relaxed)
    }

    /// Transactions written to the dead-letter file so far.
    pub fn dead_lettered(&self) -> u64 {
        self.shared.dead_lettered.load(Relaxed)
    }

    /// Transactions requeued so far.
    pub fn requeued(&self) -> u64 {
        self.shared.requeued.load(Relaxed)
    }
}

impl std::fmt::Debug for FileConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileConnector")
            .field("path", &self.path())
            .field("dead_letter", &self.dead_letter_path())
            .finish_non_exhaustive()
    }
}

/// Runs blocking file I/O on tokio's blocking pool.
///
/// If the caller stops waiting (an attempt timeout), `work` still runs to its end: what it
/// reads is queued in the shared state rather than returned, so nothing is lost.
async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    work: impl FnOnce(&Shared) -> Result<T, TaskError> + Send + 'static,
) -> Result<T, TaskError> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || work(&shared))
        .await
        .map_err(|err| {
            TaskError::system("file I/O on the blocking pool failed")
                .with_source(err)
                .non_retryable()
        })?
}

#[async_trait]
impl Connector for FileConnector {
    async fn fetch(&self, max: usize) -> Result<Vec<Delivery>, TaskError> {
        let input = &self.shared.input;
        loop {
            let at_end = input.ready() < max
                && blocking(&self.shared, move |shared| shared.input.read_ahead(max)).await?;
            let batch = input.take(max);
            // Empty before the end: another worker took what was read; read on, or this
            // worker would see the end of an input that has not ended.
            if !batch.is_empty() || at_end {
                return Ok(batch.into_iter().map(|tx| Delivery::new(tx, ())).collect());
            }
        }
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: &Settlement,
    ) -> Result<SettleOutcome, TaskError> {
        let shared = &self.shared;
        let transaction = delivery.transaction();
        match settlement {
            Settlement::Ack => {
                shared.acked.fetch_add(1, Relaxed);
            }
            Settlement::Drop(_) => {
                shared.dropped.fetch_add(1, Relaxed);
            }
            Settlement::Requeue => {
                let again = transaction.clone().delivered(transaction.deliveries() + 1);
                shared.input.requeue(again);
                shared.requeued.fetch_add(1, Relaxed);
            }
            Settlement::DeadLetter(failure) => {
                let transaction = transaction.clone();
                let failure = failure.clone();
                let failed_at = SystemTime::now();
                blocking(shared, move |shared| {
                    shared.dead_letters.append(|buf| {
                        dead_letter::encode_record(buf, &transaction, &failure, failed_at)
                    })
                })
                .await?;
                shared.dead_lettered.fetch_add(1, Relaxed);
            }
        }
        Ok(SettleOutcome::Performed)
    }

    /// Drained when nothing requeued waits: the loop asks only after a fetch found the end
    /// of the file, and a requeue from another worker since then is handed out next.
    async fn drained(&self) -> Result<bool, TaskError> {
        Ok(self.shared.input.ready() == 0)
    }

    async fn dispatch(&self, transactions: &[Transaction]) -> Result<(), TaskError> {
        if transactions.is_empty() {
            return Ok(());
        }
        let transactions = transactions.to_vec();
        blocking(&self.shared, move |shared| {
            shared.output.append(|buf| {
                transactions
                    .iter()
                    .try_for_each(|tx| writer::encode_line(buf, tx, shared.trace_field.as_deref()))
            })
        })
        .await
    }

    /// An existing `path` must be a readable file; a missing one must be creatable (its
    /// directory, or the nearest existing ancestor, is a writable directory). The same
    /// for the dead-letter file.
    async fn health(&self) -> Result<(), TaskError> {
        blocking(&self.shared, |shared| {
            health::check(shared.input.path())?;
            health::check(shared.dead_letters.path())
        })
        .await
    }

    /// Asks the OS to put what was dispatched and dead-lettered on disk. The files stay
    /// open for the connector's other workers.
    async fn close(&self) -> Result<(), TaskError> {
        blocking(&self.shared, |shared| {
            shared.output.sync()?;
            shared.dead_letters.sync()
        })
        .await
    }
}

#[async_trait]
impl MakeConnector for FileConnector {
    async fn connect(&self, _worker: usize) -> Result<Arc<dyn Connector>, TaskError> {
        Ok(Arc::new(self.clone()))
    }
}

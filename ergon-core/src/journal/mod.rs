//! The journal: the durable record of what became of each transaction, written *before*
//! the transaction is settled.
//!
//! ```text
//! fetch ─▶ redelivered and already terminal in the journal? ──yes──▶ settle as recorded
//!            │ no                                                    (no step runs again)
//!            ▼
//!          lifecycle (process / prepare / dispatch / success | exception)
//!            ▼
//!          terminal (ack, dead letter, drop)? ──▶ Journal::complete (committed) ──▶ settle
//! ```
//!
//! Journal first, then settle: a crash between the two leaves the transaction unsettled,
//! so its transport delivers it again, and that delivery finds its completion in the
//! journal and is settled as recorded without running user code a second time. Only
//! deliveries the transport counts as redeliveries ([`Transaction::deliveries`] `> 1`)
//! are looked up, so the first delivery pays nothing for it (unless the journal asks for
//! more: [`Journal::looks_up`]).
//!
//! A journal that shares its database with the input may settle the delivery in the same
//! commit ([`Journal::complete_and_settle`]): then there is no window between the two at
//! all. A completion that cannot be journaled (after the settle step's retries) is not
//! settled as decided but requeued: nothing is lost, and the next delivery runs it again.
//!
//! The engine only calls the [`Journal`] trait; `ergon-journal` implements it on an
//! embedded SQLite file (shared with the `local` queue). The same trait carries the
//! workflow calls tasks make through their context ([`crate::workflow`]): spawn, parked
//! and in-step waits, cancellation.

mod batch;
pub mod dag;
mod engine;
mod wait;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::connector::{Failure, Settlement};
use crate::delivery::Delivery;
use crate::error::{Category, TaskError};
use crate::lifecycle::TransactionOutcome;
use crate::step::Step;
use crate::transaction::Transaction;

pub use batch::{Batch, ConsumedResult, CutReason, meta as batch_meta};
pub(crate) use engine::{record, replayed};
pub use wait::{Counts, Member, MemberState, Park, Quorum, WaitOutcome, Waited};

/// What the journal keeps of one terminal transaction in one task.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The task it ran in (`[tasks.NAME]`).
    pub task: Arc<str>,
    /// The transaction, with its lineage (parent, root, tags, trace context) and its
    /// delivery count.
    pub transaction: Transaction,
    /// How it ended: [`Settlement::Ack`] (succeeded), [`Settlement::DeadLetter`] or
    /// [`Settlement::Drop`] (failed, with the [`Failure`]). Never `Requeue`, which is not
    /// terminal.
    pub settlement: Settlement,
    /// Attempts its steps made: 1 when nothing was retried, plus one per retry of any
    /// step.
    pub attempts: u32,
    /// Outbound transactions its output confirmed: the children it produced (producer
    /// and hybrid).
    pub children: u32,
    /// What the task made of it, as JSON (a consumer's
    /// [`journal_output`](crate::Consumer::journal_output)), for continuations and waits.
    pub output: Option<String>,
    /// When its lifecycle started, in Unix milliseconds.
    pub started_at_ms: i64,
    /// When its lifecycle ended, in Unix milliseconds.
    pub finished_at_ms: i64,
}

/// A durable record of terminal transactions, keyed by (task, transaction id).
///
/// Implementations group concurrent completions into one commit and must make
/// [`complete`](Journal::complete) return only once the record is durable: the engine
/// settles the transaction right after. They must not retry on their own (the engine runs
/// `complete` under the settle step's retry policy).
#[async_trait]
pub trait Journal: Send + Sync + 'static {
    /// Whether the completion of `tx` in `task` with `outcome` is recorded at all (the
    /// journal's `record` mode). Asked before building the [`Completion`]; the default
    /// records everything.
    fn records(&self, task: &str, tx: &Transaction, outcome: &TransactionOutcome) -> bool {
        let _ = (task, tx, outcome);
        true
    }

    /// Whether the engine looks `tx` up ([`recorded`](Journal::recorded)) before running
    /// it. Default: only redeliveries ([`Transaction::deliveries`] `> 1`), so a first
    /// delivery pays nothing. A journal whose hand-over is at least once, or that cancels
    /// transactions it cannot withdraw from their queue, looks up more (the PostgreSQL
    /// journal: every transaction with a parent).
    fn looks_up(&self, tx: &Transaction) -> bool {
        tx.deliveries() > 1
    }

    /// The settlement recorded for transaction `id` in `task`, if it is terminal there.
    async fn recorded(&self, task: &str, id: &str) -> Result<Option<Settlement>, TaskError>;

    /// Records `completion`, returning once it is durable; in the same commit, fires
    /// what it completes (the task's `on_complete` continuation, the waits it is a member
    /// of).
    async fn complete(&self, completion: Completion) -> Result<(), TaskError>;

    /// [`complete`](Journal::complete), and, when the journal can, the settlement of
    /// `delivery` in the same commit (an ack of a queue that lives in the journal's own
    /// database): returns whether it did, so that the engine does not settle it again.
    /// Default: records only.
    async fn complete_and_settle(
        &self,
        completion: Completion,
        delivery: &Delivery,
    ) -> Result<bool, TaskError> {
        let _ = delivery;
        self.complete(completion).await.map(|()| false)
    }

    /// Hands `children` (built with [`Transaction::child`], so they name their parent) to
    /// the input of task `target`, each recorded as a queued child in the same commit.
    /// A child whose id is recorded already is skipped: with deterministic ids, a parent
    /// that runs again spawns nothing twice. Returns how many were new.
    async fn spawn(
        &self,
        from_task: &str,
        target: &str,
        children: Vec<Transaction>,
    ) -> Result<usize, TaskError> {
        let _ = (from_task, target, children);
        Err(unsupported("spawn"))
    }

    /// Registers a parked wait: once its members meet its quorum (or it times out, or can
    /// no longer be met) its continuation is sent to `park.then`, exactly once, in the
    /// commit that decides it. Registering the same wait again changes nothing.
    async fn park(&self, park: Park) -> Result<(), TaskError> {
        let _ = park;
        Err(unsupported("park"))
    }

    /// Waits in the calling step until `members` meet `quorum` counting `counts`, or for
    /// `timeout`: the members' states either way.
    async fn wait(
        &self,
        members: &[Member],
        quorum: Quorum,
        counts: Counts,
        timeout: Duration,
    ) -> Result<Waited, TaskError> {
        let _ = (members, quorum, counts, timeout);
        Err(unsupported("wait"))
    }

    /// Whether work this run's tasks are to receive is still pending in the journal:
    /// queued children and continuations, waits not yet decided. A finite
    /// (`streaming = false`) loop does not end while it is. Default: `false`.
    async fn owes(&self) -> Result<bool, TaskError> {
        Ok(false)
    }

    /// Starts the DAG run `start` (after validating its plan against the tasks the
    /// journal can hand work to): records it and queues its root nodes in one commit.
    /// Returns whether it is new (a run id the journal knows starts nothing).
    async fn start_run(&self, start: dag::RunStart) -> Result<bool, TaskError> {
        let _ = start;
        Err(unsupported("start_run"))
    }

    /// Adds `nodes` to the run that `node` (a running node's transaction) belongs to,
    /// validated against the run's graph: they may depend on its nodes, and are started
    /// as their triggers allow.
    async fn extend_run(
        &self,
        node: &Transaction,
        nodes: Vec<dag::PlannedNode>,
    ) -> Result<(), TaskError> {
        let _ = (node, nodes);
        Err(unsupported("extend_run"))
    }

    /// Marks the queued children of transaction `parent` cancelled and withdraws them from
    /// their queues, so they never run (children already running finish). Returns how
    /// many were cancelled.
    async fn cancel_children(&self, parent: &str) -> Result<usize, TaskError> {
        let _ = parent;
        Err(unsupported("cancel_children"))
    }
}

fn unsupported(what: &str) -> TaskError {
    TaskError::system(format!("this journal does not support `{what}`")).non_retryable()
}

/// Now, in Unix milliseconds (0 before 1970, which a clock does not report).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// `timeout` from now, in Unix milliseconds: a stored deadline.
pub fn deadline_in(timeout: Duration) -> i64 {
    let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    now_ms().saturating_add(timeout)
}

/// A failure as a journal reads it back: the `step` name stored becomes the engine's
/// static name again (`process` when the name is unknown).
pub fn failure(
    task: &str,
    step: &str,
    category: Category,
    message: String,
    attempts: u32,
) -> Failure {
    let step = Step::named(step).unwrap_or(Step::Process);
    Failure {
        task: task.into(),
        step: step.as_str(),
        category,
        message,
        attempts,
    }
}

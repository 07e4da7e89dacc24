//! Observation: how the engine tells whoever watches it (the runner's tracing, a test)
//! what it does. ergon-core reports and records nothing itself: it names no tracing or
//! metrics backend, and with no observer installed it makes no call at all.
//!
//! An [`Observer`] hears, for each worker:
//!
//! ```text
//! loop ─┬─▶ fetch step ─▶ attempt                          (one per fetch of a watched batch)
//!       └─▶ batch ─▶ transaction ─▶ step ─▶ attempt        (start and end of each)
//!                        └─ ends with its settlement (TransactionEnd)
//! ```
//!
//! and, for code of its own, a step run through [`run_fn`](crate::envelope::run_fn) under
//! the scope current then. Every method has a default that watches nothing, so an observer
//! implements only what it needs.
//!
//! **Scopes.** What an observer keeps about something it watches (a span's ids and start,
//! say) it keeps in a [`Scope`]: a few opaque words the engine stores inline, with no
//! allocation per step, and hands back with every later event about it. The engine never
//! reads them.
//!
//! **The current scope.** While the engine polls the work of a scope (an attempt, while
//! the task's code runs), [`current`] returns it, on the runtime and on a blocking pool's
//! thread alike: an observer parents log lines and a user's own spans with it, and the
//! dispatch step asks the observer to stamp outbound transactions with it
//! ([`Observer::outbound`]).
//!
//! **Finding the observer.** It rides in the current `tracing` subscriber as a layer
//! ([`ObserverLayer`]), so a run's or a test's subscriber decides, like for log lines;
//! [`observer`] finds it.

mod current;
mod layer;
pub(crate) mod watch;

use std::time::Duration;

pub use current::{InScope, current, on_thread};
pub use layer::{ObserverLayer, observer};
pub use watch::Watched;

use crate::error::Category;
use crate::transaction::Transaction;

/// An observer's handle on one thing it watches: words it packs as it likes (ids, a start
/// time). The engine stores it inline, copies it, and hands it back; it never reads it.
///
/// # Examples
///
/// ```
/// use ergon_core::observe::Scope;
/// let scope = Scope::new([1, 2, 3, 4, 5, 6]);
/// assert_eq!(scope.words()[2], 3);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scope([u64; 6]);

impl Scope {
    /// A scope holding `words`.
    pub const fn new(words: [u64; 6]) -> Scope {
        Scope(words)
    }

    /// Its words.
    pub const fn words(&self) -> [u64; 6] {
        self.0
    }

    /// Its words, to change (an observer updating a step's scope as its attempts end).
    pub fn words_mut(&mut self) -> &mut [u64; 6] {
        &mut self.0
    }
}

/// A worker's consume loop, as it starts.
#[derive(Clone, Copy, Debug)]
pub struct LoopInfo<'a> {
    /// The task's name in the TOML.
    pub task: &'a str,
    /// The worker's index within its task.
    pub worker: usize,
    /// The kind of the task's input connector (`rabbitmq`, `file`, ...), if it has one.
    pub system: Option<&'a str>,
    /// The input connector's name in the TOML, if it has one.
    pub destination: Option<&'a str>,
    /// Transactions in flight at most.
    pub concurrency: usize,
    /// Transactions asked for per fetch.
    pub batch_size: usize,
    /// Whether the loop runs until shutdown rather than until its input is drained.
    pub streaming: bool,
}

/// One step run under its retry policy, as it starts and ends.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    /// The step: `fetch`, `process`, `prepare`, `dispatch`, `success`, `exception`, or the
    /// name given to [`run_fn`](crate::envelope::run_fn).
    pub name: &'static str,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Each attempt's timeout.
    pub timeout: Duration,
    /// For the fetch step: the transactions asked for.
    pub fetch_size: Option<usize>,
}

/// How an attempt of a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptEnd {
    /// Its number, 1-based.
    pub number: u32,
    /// The category of its error, when it failed (or `None` when it was cut off).
    pub error: Option<Category>,
    /// Whether another attempt follows.
    pub retrying: bool,
}

/// How a watched transaction ended.
#[derive(Clone, Copy, Debug)]
pub struct TransactionEnd<'a> {
    /// The transaction.
    pub tx: &'a Transaction,
    /// Its worker's loop.
    pub parent: &'a Scope,
    /// `process` (a consumer or hybrid) or `create` (a producer).
    pub operation: &'static str,
    /// Its settlement ([`Settlement::as_str`](crate::Settlement::as_str)), once decided;
    /// `None` when a drain cut it off before (it is requeued).
    pub settlement: Option<&'static str>,
    /// The category of the error it failed with, if it did.
    pub error: Option<Category>,
}

/// What watches the engine. Every method defaults to watching nothing.
///
/// Called on the engine's threads, on the hot path of watched transactions: a method must
/// not block, and should hand heavy work (building attributes, exporting) to a thread of
/// its own.
pub trait Observer: Send + Sync + 'static {
    /// A worker's consume loop starts, under `parent` (the scope current then: the
    /// runner's task run). `None` watches nothing of this loop.
    fn loop_started(&self, parent: Option<&Scope>, info: &LoopInfo<'_>) -> Option<Scope> {
        let _ = (parent, info);
        None
    }

    /// The loop `scope` ended.
    fn loop_ended(&self, scope: Scope) {
        let _ = scope;
    }

    /// Whether the batch about to be fetched is watched (sampling, decided once per
    /// fetch): its fetch step and its transactions are, and an unwatched batch costs no
    /// call below it (but for transactions that continue a trace of their own, see
    /// [`Observer::transaction_started`]).
    fn watch_batch(&self) -> bool {
        false
    }

    /// A watched batch of `size` transactions was fetched under the loop `parent`.
    fn batch_started(&self, parent: &Scope, size: usize) -> Option<Scope> {
        let _ = (parent, size);
        None
    }

    /// The batch `scope` ended: its last transaction started, or the loop stopped first.
    fn batch_ended(&self, scope: Scope, parent: &Scope, size: usize) {
        let _ = (scope, parent, size);
    }

    /// `tx` starts, from `batch` when that is watched, in the loop `parent`. Asked for
    /// every transaction of a watched loop, so a transaction that carries its own trace
    /// context can be watched even in an unwatched batch; `None` watches nothing of it.
    fn transaction_started(
        &self,
        tx: &Transaction,
        batch: Option<&Scope>,
        parent: &Scope,
    ) -> Option<Scope> {
        let _ = (tx, batch, parent);
        None
    }

    /// The transaction `scope` ended, after its settlement.
    fn transaction_ended(&self, scope: Scope, end: &TransactionEnd<'_>) {
        let _ = (scope, end);
    }

    /// A step starts under `parent` (a transaction, a loop for the fetch step, or the
    /// current scope for [`run_fn`](crate::envelope::run_fn)). `None` watches nothing of it.
    fn step_started(&self, parent: &Scope, step: &StepInfo) -> Option<Scope> {
        let _ = (parent, step);
        None
    }

    /// Attempt `number` of the step `step` starts: the scope current while it runs.
    /// What the observer needs when it ends, it keeps in the step's scope (attempts of a
    /// step run one at a time).
    fn attempt_started(&self, step: &mut Scope, number: u32) -> Scope {
        let _ = number;
        *step
    }

    /// The attempt under way of the step `step` ended.
    fn attempt_ended(&self, step: &mut Scope, end: &AttemptEnd) {
        let _ = (step, end);
    }

    /// The step `scope` under `parent` ended, failed with `error` if it failed for good
    /// (or cut off by a budget or a drain: then with no error, and perhaps no attempt
    /// ended).
    fn step_ended(&self, scope: Scope, parent: &Scope, step: &StepInfo, error: Option<Category>) {
        let _ = (scope, parent, step, error);
    }

    /// `outbound`, about to be dispatched from within `current`, stamped with what the
    /// task receiving them needs to continue the trace (a W3C `traceparent`). `None`
    /// sends them as they are.
    fn outbound(&self, current: &Scope, outbound: &[Transaction]) -> Option<Vec<Transaction>> {
        let _ = (current, outbound);
        None
    }

    /// The engine starts polling a watched loop on this thread: events until
    /// [`Observer::poll_ended`] come from this poll (an observer may stage them, and hand
    /// them on together).
    fn poll_started(&self) {}

    /// The poll [`Observer::poll_started`] announced returned (or unwound).
    fn poll_ended(&self) {}
}

//! One transaction's life, per role, ending in a settlement decision.
//!
//! ```text
//! consumer:  process ──▶ success ─────────────────────────────▶ Ack
//! producer:  prepare ──▶ dispatch (confirmed) ──▶ success ────▶ Ack
//! hybrid:    process ──▶ prepare × n ──▶ dispatch (confirmed) ──▶ success ──▶ Ack
//!               any step failing for good ──▶ exception ──▶ on_failure:
//!                                                DeadLetter | Requeue | Drop
//! ```
//!
//! Every step runs in the step envelope with its own policy. The steps before the
//! exception step share the transaction budget (`policy.transaction.timeout`); the
//! exception step keeps its own policy so that a failure is always handled. This module
//! decides the settlement; [`crate::settle`] performs it.
//!
//! A [`Lifecycle`] value pairs a task with its role: [`ConsumerLifecycle`],
//! [`ProducerLifecycle`], [`HybridLifecycle`]. The
//! [`ConsumeLoop`](crate::runner::ConsumeLoop) drives any of them.

mod consume;
mod hybrid;
mod produce;
mod tally;

use std::future::Future;
use std::sync::Arc;

pub use consume::ConsumerLifecycle;
pub use hybrid::HybridLifecycle;
pub use produce::ProducerLifecycle;

use crate::connector::{Connector, Failure, Settlement};
use crate::context::Context;
use crate::envelope::AttemptHook;
use crate::error::TaskError;
use crate::observe::watch::Watched;
use crate::policy::RolePolicy;
use crate::transaction::Transaction;

/// How one transaction's lifecycle ended.
#[derive(Debug)]
pub struct TransactionOutcome {
    /// Why it failed, when it did.
    pub failure: Option<Failure>,
    /// What the input connector is to do with it.
    pub settlement: Settlement,
    /// Attempts beyond the first, over all steps.
    pub retries: u32,
    /// Outbound transactions the output connector confirmed (producer and hybrid).
    pub dispatched: u32,
    /// The exception step's own final error, when it failed too.
    pub exception_error: Option<TaskError>,
    /// What the task made of it, as JSON, for the journal: a consumer's
    /// [`journal_output`](crate::Consumer::journal_output), asked only when the task has a
    /// journal.
    pub output: Option<String>,
}

/// A task in its role: what happens to each transaction the loop hands it.
pub trait Lifecycle: Send + Sync + 'static {
    /// The role's policy.
    type Policy: RolePolicy;
    /// What its transactions are to an observer ([`TransactionEnd::operation`](crate::observe::TransactionEnd)):
    /// `process` or `create`.
    const OPERATION: &'static str;

    /// Where the loop fetches from and settles to. Default: the input connector.
    ///
    /// # Errors
    ///
    /// The task has no input connector (and no other source).
    fn source(&self, cx: &Context) -> Result<Arc<dyn Connector>, TaskError> {
        cx.input().cloned()
    }

    /// Runs the lifecycle of `tx` and decides its settlement (without performing it),
    /// reporting every attempt to `hook`. When `watched`, each step and attempt is observed
    /// under it (the caller's transaction); otherwise nothing is.
    fn run<H: AttemptHook + Send + ?Sized>(
        &self,
        cx: &Context,
        policy: &Self::Policy,
        tx: &Transaction,
        watched: Option<Watched<'_>>,
        hook: &mut H,
    ) -> impl Future<Output = TransactionOutcome> + Send;
}

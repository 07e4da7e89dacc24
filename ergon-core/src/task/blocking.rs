//! The blocking variants of the three roles: plain methods, run on the task's own thread
//! pool (see [`ThreadPool`](crate::runner::ThreadPool)), never on the async runtime.
//!
//! Use them for CPU-bound work (hashing, compression, parsing big documents) and for
//! libraries that block (synchronous database drivers, file formats without async APIs).
//! Everything else is the same as the async roles: the same policies, envelopes,
//! settlement and lineage. Per-attempt timeouts still hold: the attempt is reported as a
//! timeout at its deadline, but the thread cannot be killed, so the code keeps running
//! until it returns; it is counted as an abandoned attempt, and the pool, whose size is
//! fixed, is one thread short meanwhile.

use crate::context::Context;
use crate::error::TaskError;
use crate::transaction::Transaction;

/// The blocking [`Consumer`](crate::Consumer).
///
/// # Examples
///
/// ```
/// use ergon_core::{BlockingConsumer, Context, TaskError, Transaction};
///
/// struct Checksum;
///
/// impl BlockingConsumer for Checksum {
///     type Output = u64;
///
///     fn process_transaction(&self, _cx: &Context, tx: &Transaction) -> Result<u64, TaskError> {
///         Ok(tx.payload().iter().map(|&b| u64::from(b)).sum())
///     }
/// }
/// ```
pub trait BlockingConsumer: Send + Sync + 'static {
    /// What `process_transaction` hands to the success handler.
    type Output: Send + Sync + 'static;

    /// The business logic for one transaction.
    fn process_transaction(
        &self,
        cx: &Context,
        tx: &Transaction,
    ) -> Result<Self::Output, TaskError>;

    /// Called after `process_transaction` succeeded. Default: nothing.
    fn handle_process_success(
        &self,
        cx: &Context,
        tx: &Transaction,
        output: &Self::Output,
    ) -> Result<(), TaskError> {
        let _ = (cx, tx, output);
        Ok(())
    }

    /// Called with the final error of the process or success step. Default: nothing.
    fn handle_process_exception(
        &self,
        cx: &Context,
        tx: &Transaction,
        error: &TaskError,
    ) -> Result<(), TaskError> {
        let _ = (cx, tx, error);
        Ok(())
    }

    /// The output to journal: see [`Consumer::journal_output`](crate::Consumer::journal_output).
    /// Called on the runtime, not the pool: keep it cheap. Default: none.
    fn journal_output(&self, output: &Self::Output) -> Option<serde_json::Value> {
        let _ = output;
        None
    }
}

/// The blocking [`Producer`](crate::Producer).
pub trait BlockingProducer: Send + Sync + 'static {
    /// Up to `max` new transactions when the task has no input connector; empty means none.
    /// Default: an error saying the task needs an input connector.
    fn generate_transactions(
        &self,
        cx: &Context,
        max: usize,
    ) -> Result<Vec<Transaction>, TaskError> {
        let _ = max;
        Err(super::producer::no_source(cx))
    }

    /// Turns a transaction into the one to dispatch.
    fn prepare_transaction(&self, cx: &Context, tx: &Transaction)
    -> Result<Transaction, TaskError>;

    /// Called once the output connector confirmed `prepared`. Default: nothing.
    fn handle_prepare_success(
        &self,
        cx: &Context,
        tx: &Transaction,
        prepared: &Transaction,
    ) -> Result<(), TaskError> {
        let _ = (cx, tx, prepared);
        Ok(())
    }

    /// Called with the final error of the prepare, dispatch or success step. Default:
    /// nothing.
    fn handle_prepare_exception(
        &self,
        cx: &Context,
        tx: &Transaction,
        error: &TaskError,
    ) -> Result<(), TaskError> {
        let _ = (cx, tx, error);
        Ok(())
    }
}

/// The blocking [`Hybrid`](crate::Hybrid), with the same at-least-once guarantee.
pub trait BlockingHybrid: Send + Sync + 'static {
    /// The outbound transactions of one inbound transaction.
    fn process_transaction(
        &self,
        cx: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError>;

    /// Turns one outbound transaction into the one to dispatch. Default: unchanged.
    fn prepare_transaction(
        &self,
        cx: &Context,
        inbound: &Transaction,
        outbound: &Transaction,
    ) -> Result<Transaction, TaskError> {
        let _ = (cx, inbound);
        Ok(outbound.clone())
    }

    /// Called once every outbound transaction was confirmed. Default: nothing.
    fn handle_process_success(
        &self,
        cx: &Context,
        tx: &Transaction,
        dispatched: &[Transaction],
    ) -> Result<(), TaskError> {
        let _ = (cx, tx, dispatched);
        Ok(())
    }

    /// Called with the final error of any step before settlement. Default: nothing.
    fn handle_process_exception(
        &self,
        cx: &Context,
        tx: &Transaction,
        error: &TaskError,
    ) -> Result<(), TaskError> {
        let _ = (cx, tx, error);
        Ok(())
    }
}

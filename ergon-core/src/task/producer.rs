//! The async Producer role: `prepare_transaction`, the engine's dispatch, then success or
//! exception handling.

use std::future::Future;

use crate::context::Context;
use crate::error::TaskError;
use crate::transaction::Transaction;

/// A task that produces transactions to its output connector (the seed's `ProducerMixin`).
///
/// Transactions come from the task's input connector when it has one, else from
/// [`generate_transactions`](Producer::generate_transactions). For each one the engine
/// calls [`prepare_transaction`](Producer::prepare_transaction), dispatches what it
/// returns through the output connector (in its own retry envelope, done only when the
/// connector confirmed), then calls
/// [`handle_prepare_success`](Producer::handle_prepare_success); a step that fails for
/// good leads to [`handle_prepare_exception`](Producer::handle_prepare_exception) and the
/// policy's `on_failure`. You never call `dispatch` yourself.
///
/// # Examples
///
/// A producer that emits `count` numbered transactions and then stops:
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use ergon_core::{Context, Producer, TaskError, Transaction};
///
/// struct Numbers { next: AtomicU64, count: u64 }
///
/// impl Producer for Numbers {
///     async fn generate_transactions(&self, _cx: &Context, max: usize) -> Result<Vec<Transaction>, TaskError> {
///         let start = self.next.fetch_add(max as u64, Ordering::Relaxed).min(self.count);
///         let end = (start + max as u64).min(self.count);
///         Ok((start..end).map(|n| Transaction::new(format!("n-{n}"), n.to_string())).collect())
///     }
///
///     async fn prepare_transaction(&self, _cx: &Context, tx: &Transaction) -> Result<Transaction, TaskError> {
///         Ok(tx.with_meta("kind", "number"))
///     }
/// }
/// ```
pub trait Producer: Send + Sync + 'static {
    /// Up to `max` new transactions, when the task has no input connector; an empty batch
    /// means there are none (the run ends unless the loop is streaming). Default: an error
    /// saying the task needs an input connector.
    fn generate_transactions(
        &self,
        cx: &Context,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Transaction>, TaskError>> + Send {
        let _ = max;
        let error = no_source(cx);
        async move { Err(error) }
    }

    /// Turns a transaction into the one to dispatch (enrich, reshape, address it).
    fn prepare_transaction(
        &self,
        cx: &Context,
        tx: &Transaction,
    ) -> impl Future<Output = Result<Transaction, TaskError>> + Send;

    /// Called once the output connector confirmed `prepared`. If it fails for good, the
    /// transaction goes to the exception step (it was dispatched all the same). Default:
    /// nothing.
    fn handle_prepare_success(
        &self,
        cx: &Context,
        tx: &Transaction,
        prepared: &Transaction,
    ) -> impl Future<Output = Result<(), TaskError>> + Send {
        let _ = (cx, tx, prepared);
        async { Ok(()) }
    }

    /// Called with the final error of the prepare, dispatch or success step. Settlement
    /// follows the policy's `on_failure` whatever this returns. Default: nothing.
    fn handle_prepare_exception(
        &self,
        cx: &Context,
        tx: &Transaction,
        error: &TaskError,
    ) -> impl Future<Output = Result<(), TaskError>> + Send {
        let _ = (cx, tx, error);
        async { Ok(()) }
    }
}

/// The error of a producer with neither an input connector nor its own generator.
pub(crate) fn no_source(cx: &Context) -> TaskError {
    TaskError::system(format!(
        "task {}: a producer needs an input connector or its own generate_transactions",
        cx.task_name()
    ))
    .non_retryable()
}

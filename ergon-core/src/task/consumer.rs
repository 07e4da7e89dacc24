//! The async Consumer role: `process_transaction`, then success or exception handling.

use std::future::Future;

use crate::context::Context;
use crate::error::TaskError;
use crate::transaction::Transaction;

/// A task that consumes transactions from its input connector.
///
/// The engine calls [`process_transaction`](Consumer::process_transaction) for each
/// transaction, then [`handle_process_success`](Consumer::handle_process_success) with its
/// output, or [`handle_process_exception`](Consumer::handle_process_exception) with the
/// final error (also when the success handler gave up). Each call runs in its own retry
/// envelope, and the engine settles the transaction afterwards: you never ack.
///
/// Write the methods as `async fn`. Return [`TaskError::business`] for bad data (never
/// retried) and [`TaskError::system`] for infrastructure trouble (retried per policy).
///
/// # Examples
///
/// ```
/// use ergon_core::{Consumer, Context, TaskError, Transaction};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Order { id: u64, total: f64 }
///
/// struct ValidateOrders;
///
/// impl Consumer for ValidateOrders {
///     type Output = Order;
///
///     async fn process_transaction(&self, _cx: &Context, tx: &Transaction) -> Result<Order, TaskError> {
///         let order: Order = tx.json()?;
///         if order.total <= 0.0 {
///             return Err(TaskError::business(format!("order {} has total {}", order.id, order.total)));
///         }
///         Ok(order)
///     }
/// }
/// ```
pub trait Consumer: Send + Sync + 'static {
    /// What `process_transaction` hands to the success handler.
    type Output: Send + Sync + 'static;

    /// The business logic for one transaction.
    fn process_transaction(
        &self,
        cx: &Context,
        tx: &Transaction,
    ) -> impl Future<Output = Result<Self::Output, TaskError>> + Send;

    /// Called after `process_transaction` succeeded (store, forward, notify). If it fails
    /// for good, the transaction goes to the exception step. Default: nothing.
    fn handle_process_success(
        &self,
        cx: &Context,
        tx: &Transaction,
        output: &Self::Output,
    ) -> impl Future<Output = Result<(), TaskError>> + Send {
        let _ = (cx, tx, output);
        async { Ok(()) }
    }

    /// The output to journal for a continuation or a wait to read (`previous_output`,
    /// a member's `output`), asked after `process_transaction` succeeded when the task
    /// has a journal. Default: none.
    ///
    /// ```
    /// # use ergon_core::{Consumer, Context, TaskError, Transaction};
    /// struct Total;
    /// impl Consumer for Total {
    ///     type Output = u64;
    ///     async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<u64, TaskError> {
    ///         Ok(42)
    ///     }
    ///     fn journal_output(&self, total: &u64) -> Option<serde_json::Value> {
    ///         Some(serde_json::json!({ "total": total }))
    ///     }
    /// }
    /// ```
    fn journal_output(&self, output: &Self::Output) -> Option<serde_json::Value> {
        let _ = output;
        None
    }

    /// Called with the final error of the process or success step (alert, compensate).
    /// Settlement follows the policy's `on_failure` whatever this returns. Default: nothing.
    fn handle_process_exception(
        &self,
        cx: &Context,
        tx: &Transaction,
        error: &TaskError,
    ) -> impl Future<Output = Result<(), TaskError>> + Send {
        let _ = (cx, tx, error);
        async { Ok(()) }
    }
}

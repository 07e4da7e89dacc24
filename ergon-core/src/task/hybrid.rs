//! The async Hybrid role: consume one transaction, produce zero or more.

use std::future::Future;

use crate::context::Context;
use crate::error::TaskError;
use crate::transaction::Transaction;

/// A task that consumes one inbound transaction and produces outbound ones.
///
/// The engine calls [`process_transaction`](Hybrid::process_transaction), which returns
/// the outbound transactions (build them with [`Transaction::child`]; the engine makes
/// every one a child of the inbound transaction anyway, so lineage and trace context
/// always carry over). Each goes through
/// [`prepare_transaction`](Hybrid::prepare_transaction); then all of them are dispatched
/// through the output connector, and only when the connector confirmed them does
/// [`handle_process_success`](Hybrid::handle_process_success) run and the inbound
/// transaction get acked. If any step fails for good, the inbound transaction takes the
/// exception path ([`handle_process_exception`](Hybrid::handle_process_exception), then
/// the policy's `on_failure`).
///
/// # Guarantee
///
/// At-least-once end to end: an inbound transaction is acked only after all its outbound
/// ones were confirmed, so a crash, a failed dispatch or a lost connection can cause an
/// inbound transaction to be processed again and some outbound ones to be sent twice,
/// never an inbound transaction acked whose outbound ones were lost. Consumers downstream
/// deduplicate on the outbound ids when they must (make them deterministic, as below).
///
/// # Examples
///
/// Splitting an order into its line items:
///
/// ```
/// use ergon_core::{Context, Hybrid, TaskError, Transaction};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Order { id: String, items: Vec<serde_json::Value> }
///
/// struct SplitOrder;
///
/// impl Hybrid for SplitOrder {
///     async fn process_transaction(&self, _cx: &Context, tx: &Transaction) -> Result<Vec<Transaction>, TaskError> {
///         let order: Order = tx.json()?;
///         order.items.iter().enumerate()
///             .map(|(n, item)| Ok(tx.child(format!("{}/{n}", order.id), "").json(item)?.build()))
///             .collect()
///     }
/// }
/// ```
pub trait Hybrid: Send + Sync + 'static {
    /// The business logic: the outbound transactions of one inbound transaction (possibly
    /// none, which acks it with nothing sent).
    fn process_transaction(
        &self,
        cx: &Context,
        tx: &Transaction,
    ) -> impl Future<Output = Result<Vec<Transaction>, TaskError>> + Send;

    /// Turns one outbound transaction into the one to dispatch. Default: unchanged.
    fn prepare_transaction(
        &self,
        cx: &Context,
        inbound: &Transaction,
        outbound: &Transaction,
    ) -> impl Future<Output = Result<Transaction, TaskError>> + Send {
        let _ = (cx, inbound);
        let outbound = outbound.clone();
        async move { Ok(outbound) }
    }

    /// Called once every outbound transaction was confirmed by the output connector. If it
    /// fails for good, the inbound transaction goes to the exception step. Default: nothing.
    fn handle_process_success(
        &self,
        cx: &Context,
        tx: &Transaction,
        dispatched: &[Transaction],
    ) -> impl Future<Output = Result<(), TaskError>> + Send {
        let _ = (cx, tx, dispatched);
        async { Ok(()) }
    }

    /// Called with the final error of the process, prepare, dispatch or success step.
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

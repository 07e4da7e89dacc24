//! The dispatch step's call: outbound transactions through the task's output connector.

use crate::context::Context;
use crate::error::TaskError;
use crate::telemetry::{propagation, trace};
use crate::transaction::Transaction;

/// Dispatches `transactions` through the output connector. When `traced`, each carries
/// the current span's context (this dispatch attempt, [`trace::current`]) as its
/// `traceparent`, so the task that receives it continues the trace.
pub(crate) async fn dispatch(
    cx: &Context,
    transactions: &[Transaction],
    traced: bool,
) -> Result<(), TaskError> {
    let output = cx.output()?;
    match traced
        .then(trace::current)
        .flatten()
        .map(|span| propagation::inject(&span, transactions))
    {
        Some(stamped) => output.dispatch(&stamped).await,
        None => output.dispatch(transactions).await,
    }
}

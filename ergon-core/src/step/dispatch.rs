//! The dispatch step's call: outbound transactions through the task's output connector.

use crate::context::Context;
use crate::error::TaskError;
use crate::observe::{self, Observer};
use crate::transaction::Transaction;

/// Dispatches `transactions` through the output connector. When `observer` watches, it
/// stamps them first with the current scope (this dispatch attempt, [`observe::current`]),
/// so the task that receives them continues the trace ([`Observer::outbound`]).
pub(crate) async fn dispatch(
    cx: &Context,
    transactions: &[Transaction],
    observer: Option<&dyn Observer>,
) -> Result<(), TaskError> {
    let output = cx.output()?;
    let stamped = observer
        .zip(observe::current())
        .and_then(|(observer, current)| observer.outbound(&current, transactions));
    match stamped {
        Some(stamped) => output.dispatch(&stamped).await,
        None => output.dispatch(transactions).await,
    }
}

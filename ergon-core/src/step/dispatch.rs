//! The dispatch step's call: outbound transactions through the task's output connector.

use crate::context::Context;
use crate::error::TaskError;
use crate::transaction::Transaction;

/// Sends `transactions` through `cx`'s output connector; done only when the connector
/// confirmed all of them. A task without an output connector fails here, for good.
pub(crate) async fn dispatch(cx: &Context, transactions: &[Transaction]) -> Result<(), TaskError> {
    cx.output()?.dispatch(transactions).await
}

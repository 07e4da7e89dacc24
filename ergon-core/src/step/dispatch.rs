//! The dispatch step's call: outbound transactions through the task's output connector.

use crate::context::Context;
use crate::error::TaskError;
use crate::observe::{self, Observer};
use crate::transaction::Transaction;

/// Dispatches `transactions` through the output connector, carrying the task's
/// `produces` tags ([`Context::produces`]). When `observer` watches, it
/// stamps them first with the current scope (this dispatch attempt, [`observe::current`]),
/// so the task that receives them continues the trace ([`Observer::outbound`]).
pub(crate) async fn dispatch(
    cx: &Context,
    transactions: &[Transaction],
    observer: Option<&dyn Observer>,
) -> Result<(), TaskError> {
    let output = cx.output()?;
    let tagged = cx.tagged(transactions);
    let transactions = tagged.as_deref().unwrap_or(transactions);
    let stamped = observer
        .zip(observe::current())
        .and_then(|(observer, current)| observer.outbound(&current, transactions));
    match stamped {
        Some(stamped) => output.dispatch(&stamped).await,
        None => output.dispatch(transactions).await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::MemoryConnector;

    #[tokio::test]
    async fn what_a_task_dispatches_carries_its_produces_tags() {
        let output = Arc::new(MemoryConnector::new());
        let cx = Context::builder("split")
            .output(output.clone())
            .produces(["items", "audit"])
            .build();
        let parent = Transaction::builder("order-1").tag("audit").build();
        let child = parent.child("order-1/item/1", "{}").build();
        dispatch(&cx, &[child], None).await.unwrap();
        let sent = output.queued();
        assert_eq!(sent[0].tags().collect::<Vec<_>>(), ["audit", "items"]);
        assert_eq!(sent[0].parent_id(), Some("order-1"), "lineage kept");
        let grandchild = sent[0].child("order-1/item/1/x", "{}").build();
        assert_eq!(
            grandchild.tags().collect::<Vec<_>>(),
            ["audit", "items"],
            "children of children inherit the tags"
        );
    }

    #[tokio::test]
    async fn a_task_without_produces_dispatches_what_it_built() {
        let output = Arc::new(MemoryConnector::new());
        let cx = Context::builder("forward").output(output.clone()).build();
        dispatch(&cx, &[Transaction::new("t-1", "{}")], None)
            .await
            .unwrap();
        assert_eq!(output.queued()[0].tags().count(), 0);
    }
}

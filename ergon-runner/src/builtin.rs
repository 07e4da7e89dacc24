//! Task implementations every `ergon-runner` binary has.

use ergon_core::{Consumer, Context, TaskError, Transaction};

/// `type = "forward"`: sends every input transaction, unchanged, to the output connector
/// (a bridge between two transports, e.g. a file into a queue). The input is acked only
/// after the output accepted the transaction.
#[derive(Debug, Default)]
pub struct Forward;

impl Consumer for Forward {
    type Output = ();

    async fn process_transaction(&self, _cx: &Context, _tx: &Transaction) -> Result<(), TaskError> {
        Ok(())
    }

    async fn handle_process_success(
        &self,
        cx: &Context,
        tx: &Transaction,
        _output: &(),
    ) -> Result<(), TaskError> {
        cx.output()?.dispatch(std::slice::from_ref(tx)).await
    }
}

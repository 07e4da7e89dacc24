//! The hybrid's lifecycle: process → prepare each outbound → dispatch all (confirmed) →
//! success → ack the inbound; any failure → exception.

use std::future::Future;
use std::sync::Arc;

use tracing::Instrument as _;

use super::tally::{Tally, transaction_span, within_budget};
use super::{Lifecycle, TransactionOutcome};
use crate::context::Context;
use crate::envelope::AttemptHook;
use crate::policy::HybridPolicy;
use crate::step::{Step, dispatch::dispatch};
use crate::task::Hybrid;
use crate::transaction::Transaction;

/// A [`Hybrid`] in its lifecycle: the inbound transaction is acked only after the output
/// connector confirmed every outbound one (see the guarantee on [`Hybrid`]).
pub struct HybridLifecycle<T> {
    task: Arc<T>,
}

impl<T> HybridLifecycle<T> {
    /// `task` in the hybrid role.
    pub fn new(task: Arc<T>) -> Self {
        Self { task }
    }
}

impl<T: Hybrid> Lifecycle for HybridLifecycle<T> {
    type Policy = HybridPolicy;

    fn run<H: AttemptHook + Send + ?Sized>(
        &self,
        cx: &Context,
        policy: &HybridPolicy,
        tx: &Transaction,
        hook: &mut H,
    ) -> impl Future<Output = TransactionOutcome> + Send {
        let task = &*self.task;
        async move {
            let mut tally = Tally::default();
            let steps = async {
                let outbound = tally
                    .step(Step::Process, &policy.process.retry, hook, |_| {
                        task.process_transaction(cx, tx)
                    })
                    .await?;
                let mut prepared = Vec::with_capacity(outbound.len());
                for child in outbound.iter().map(|out| out.as_child_of(tx)) {
                    let ready = tally
                        .step(Step::Prepare, &policy.prepare.retry, hook, |_| {
                            task.prepare_transaction(cx, tx, &child)
                        })
                        .await?;
                    prepared.push(ready.as_child_of(tx));
                }
                if !prepared.is_empty() {
                    tally
                        .step(Step::Dispatch, &policy.dispatch.retry, hook, |_| {
                            dispatch(cx, &prepared)
                        })
                        .await?;
                    tally.dispatched = u32::try_from(prepared.len()).unwrap_or(u32::MAX);
                }
                tally
                    .step(Step::Success, &policy.success.retry, hook, |_| {
                        task.handle_process_success(cx, tx, &prepared)
                    })
                    .await
            };
            let finished = within_budget(policy.transaction.timeout, steps).await;
            let (failure, error) = match tally.settle_budget(finished) {
                Ok(()) => return tally.acked(),
                Err(failed) => failed.split(cx.task_name_arc()),
            };
            tally
                .failed(
                    cx,
                    tx,
                    failure,
                    &policy.exception.retry,
                    policy.on_failure,
                    hook,
                    |_| task.handle_process_exception(cx, tx, &error),
                )
                .await
        }
        .instrument(transaction_span(cx, tx, "process"))
    }
}

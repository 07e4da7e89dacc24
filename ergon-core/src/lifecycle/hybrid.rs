//! The hybrid's lifecycle: process → prepare each outbound → dispatch all (confirmed) →
//! success → ack the inbound; any failure → exception.

use std::future::Future;
use std::sync::Arc;

use super::tally::{self, StepFailure, Steps, Tally, step};
use super::{Lifecycle, TransactionOutcome};
use crate::context::Context;
use crate::envelope::AttemptHook;
use crate::error::TaskError;
use crate::observe::watch::Watched;
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
    const OPERATION: &'static str = "process";

    fn run<H: AttemptHook + Send + ?Sized>(
        &self,
        cx: &Context,
        policy: &HybridPolicy,
        tx: &Transaction,
        watched: Option<Watched<'_>>,
        hook: &mut H,
    ) -> impl Future<Output = TransactionOutcome> + Send {
        tally::run(self, cx, policy, tx, watched, hook)
    }
}

impl<T: Hybrid> Steps for HybridLifecycle<T> {
    type Policy = HybridPolicy;

    fn steps<'a, 't, H: AttemptHook + Send + ?Sized>(
        &'a self,
        cx: &'a Context,
        policy: &'a HybridPolicy,
        tx: &'a Transaction,
        tally: &'a mut Tally<'t>,
        hook: &'a mut H,
    ) -> impl Future<Output = Result<(), StepFailure>> + Send + 'a {
        let task = &*self.task;
        let observer = tally.observer();
        async move {
            let outbound = step!(tally, hook, Step::Process, &policy.process.retry, |_| task
                .process_transaction(cx, tx))?;
            let mut prepared = Vec::with_capacity(outbound.len());
            for child in outbound.iter().map(|out| out.as_child_of(tx)) {
                let ready = step!(tally, hook, Step::Prepare, &policy.prepare.retry, |_| task
                    .prepare_transaction(cx, tx, &child))?;
                prepared.push(ready.as_child_of(tx));
            }
            if !prepared.is_empty() {
                step!(tally, hook, Step::Dispatch, &policy.dispatch.retry, |_| {
                    dispatch(cx, &prepared, observer)
                })?;
                tally.dispatched = u32::try_from(prepared.len()).unwrap_or(u32::MAX);
            }
            step!(tally, hook, Step::Success, &policy.success.retry, |_| task
                .handle_process_success(cx, tx, &prepared))
        }
    }

    fn exception<'a>(
        &'a self,
        cx: &'a Context,
        tx: &'a Transaction,
        error: &'a TaskError,
    ) -> impl Future<Output = Result<(), TaskError>> + Send + 'a {
        self.task.handle_process_exception(cx, tx, error)
    }
}

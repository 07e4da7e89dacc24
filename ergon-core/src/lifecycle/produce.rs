//! The producer's lifecycle: prepare → dispatch → success | exception.

use std::future::Future;
use std::sync::Arc;

use super::tally::{self, StepFailure, Steps, Tally};
use super::{Lifecycle, TransactionOutcome};
use crate::connector::Connector;
use crate::context::Context;
use crate::envelope::{self, AttemptHook};
use crate::error::TaskError;
use crate::policy::ProducerPolicy;
use crate::runner::Generated;
use crate::step::{Step, dispatch::dispatch};
use crate::task::Producer;
use crate::transaction::Transaction;

/// A [`Producer`] in its lifecycle. Its transactions come from the input connector, or,
/// when the task has none, from its own
/// [`generate_transactions`](Producer::generate_transactions).
pub struct ProducerLifecycle<T> {
    task: Arc<T>,
}

impl<T> ProducerLifecycle<T> {
    /// `task` in the producer role.
    pub fn new(task: Arc<T>) -> Self {
        Self { task }
    }
}

impl<T: Producer> Lifecycle for ProducerLifecycle<T> {
    type Policy = ProducerPolicy;

    fn source(&self, cx: &Context) -> Result<Arc<dyn Connector>, TaskError> {
        Ok(match cx.input() {
            Ok(input) => input.clone(),
            Err(_) => Arc::new(Generated::new(self.task.clone(), cx.clone())),
        })
    }

    fn run<H: AttemptHook + Send + ?Sized>(
        &self,
        cx: &Context,
        policy: &ProducerPolicy,
        tx: &Transaction,
        hook: &mut H,
    ) -> impl Future<Output = TransactionOutcome> + Send {
        tally::run(self, cx, policy, tx, hook)
    }
}

impl<T: Producer> Steps for ProducerLifecycle<T> {
    type Policy = ProducerPolicy;
    const OPERATION: &'static str = "create";

    fn steps<'a, H: AttemptHook + Send + ?Sized>(
        &'a self,
        cx: &'a Context,
        policy: &'a ProducerPolicy,
        tx: &'a Transaction,
        tally: &'a mut Tally,
        hook: &'a mut H,
    ) -> impl Future<Output = Result<(), StepFailure>> + Send + 'a {
        let task = &*self.task;
        async move {
            let span = tally.begin(Step::Prepare);
            let done = envelope::run(
                Step::Prepare.as_str(),
                span,
                &policy.prepare.retry,
                |_| task.prepare_transaction(cx, tx),
                hook,
            )
            .await;
            let prepared = tally.end(Step::Prepare, done)?;
            let span = tally.begin(Step::Dispatch);
            let done = envelope::run(
                Step::Dispatch.as_str(),
                span,
                &policy.dispatch.retry,
                |_| dispatch(cx, std::slice::from_ref(&prepared)),
                hook,
            )
            .await;
            tally.end(Step::Dispatch, done)?;
            tally.dispatched = 1;
            let span = tally.begin(Step::Success);
            let done = envelope::run(
                Step::Success.as_str(),
                span,
                &policy.success.retry,
                |_| task.handle_prepare_success(cx, tx, &prepared),
                hook,
            )
            .await;
            tally.end(Step::Success, done)
        }
    }

    fn exception<'a>(
        &'a self,
        cx: &'a Context,
        tx: &'a Transaction,
        error: &'a TaskError,
    ) -> impl Future<Output = Result<(), TaskError>> + Send + 'a {
        self.task.handle_prepare_exception(cx, tx, error)
    }
}

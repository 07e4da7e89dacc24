//! The producer's lifecycle: prepare → dispatch → success | exception.

use std::future::Future;
use std::sync::Arc;

use super::tally::{self, StepFailure, Steps, Tally, step};
use super::{Lifecycle, TransactionOutcome};
use crate::connector::Connector;
use crate::context::Context;
use crate::envelope::AttemptHook;
use crate::error::TaskError;
use crate::observe::watch::Watched;
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
    const OPERATION: &'static str = "create";

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
        watched: Option<Watched<'_>>,
        hook: &mut H,
    ) -> impl Future<Output = TransactionOutcome> + Send {
        tally::run(self, cx, policy, tx, watched, hook)
    }
}

impl<T: Producer> Steps for ProducerLifecycle<T> {
    type Policy = ProducerPolicy;

    fn steps<'a, 't, H: AttemptHook + Send + ?Sized>(
        &'a self,
        cx: &'a Context,
        policy: &'a ProducerPolicy,
        tx: &'a Transaction,
        tally: &'a mut Tally<'t>,
        hook: &'a mut H,
    ) -> impl Future<Output = Result<(), StepFailure>> + Send + 'a {
        let task = &*self.task;
        let observer = tally.observer();
        async move {
            let prepared = step!(tally, hook, Step::Prepare, &policy.prepare.retry, |_| task
                .prepare_transaction(cx, tx))?;
            step!(tally, hook, Step::Dispatch, &policy.dispatch.retry, |_| {
                dispatch(cx, std::slice::from_ref(&prepared), observer)
            })?;
            tally.dispatched = 1;
            step!(tally, hook, Step::Success, &policy.success.retry, |_| task
                .handle_prepare_success(cx, tx, &prepared))
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

//! The consumer's lifecycle: process → success | exception.

use std::future::Future;
use std::sync::Arc;

use super::tally::{self, StepFailure, Steps, Tally, step};
use super::{Lifecycle, TransactionOutcome};
use crate::context::Context;
use crate::envelope::AttemptHook;
use crate::error::TaskError;
use crate::observe::watch::Watched;
use crate::policy::ConsumerPolicy;
use crate::step::Step;
use crate::task::Consumer;
use crate::transaction::Transaction;

/// A [`Consumer`] in its lifecycle.
///
/// # Examples
///
/// Running one transaction through a consumer and looking at the settlement decided:
///
/// ```
/// use std::sync::Arc;
/// use ergon_core::lifecycle::{ConsumerLifecycle, Lifecycle};
/// use ergon_core::{Consumer, ConsumerPolicy, Context, Settlement, TaskError, Transaction};
///
/// struct Reject;
/// impl Consumer for Reject {
///     type Output = ();
///     async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
///         Err(TaskError::business("no"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cx = Context::builder("reject").build();
/// let tx = Transaction::new("t-1", "{}");
/// let lifecycle = ConsumerLifecycle::new(Arc::new(Reject));
/// let outcome = lifecycle.run(&cx, &ConsumerPolicy::default(), &tx, None, &mut ()).await;
/// assert!(matches!(outcome.settlement, Settlement::DeadLetter(_)));
/// # }
/// ```
pub struct ConsumerLifecycle<T> {
    task: Arc<T>,
}

impl<T> ConsumerLifecycle<T> {
    /// `task` in the consumer role.
    pub fn new(task: Arc<T>) -> Self {
        Self { task }
    }
}

impl<T: Consumer> Lifecycle for ConsumerLifecycle<T> {
    type Policy = ConsumerPolicy;
    const OPERATION: &'static str = "process";

    fn run<H: AttemptHook + Send + ?Sized>(
        &self,
        cx: &Context,
        policy: &ConsumerPolicy,
        tx: &Transaction,
        watched: Option<Watched<'_>>,
        hook: &mut H,
    ) -> impl Future<Output = TransactionOutcome> + Send {
        tally::run(self, cx, policy, tx, watched, hook)
    }
}

impl<T: Consumer> Steps for ConsumerLifecycle<T> {
    type Policy = ConsumerPolicy;

    fn steps<'a, 't, H: AttemptHook + Send + ?Sized>(
        &'a self,
        cx: &'a Context,
        policy: &'a ConsumerPolicy,
        tx: &'a Transaction,
        tally: &'a mut Tally<'t>,
        hook: &'a mut H,
    ) -> impl Future<Output = Result<(), StepFailure>> + Send + 'a {
        let task = &*self.task;
        async move {
            let output = step!(tally, hook, Step::Process, &policy.process.retry, |_| task
                .process_transaction(cx, tx))?;
            if cx.journal().is_some() {
                tally.output = task.journal_output(&output).map(|value| value.to_string());
            }
            step!(tally, hook, Step::Success, &policy.success.retry, |_| task
                .handle_process_success(cx, tx, &output))
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

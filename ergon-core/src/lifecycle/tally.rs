//! What every lifecycle shares: running a step and counting its retries, the transaction
//! budget, the exception step and the settlement decision. A role only says what its
//! steps are ([`Steps`]); [`run`] does the rest, the same way for every role.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::TransactionOutcome;
use crate::connector::{Failure, Settlement};
use crate::context::Context;
use crate::envelope::{self, AttemptHook, step_watch};
use crate::error::TaskError;
use crate::observe::Observer;
use crate::observe::watch::{StepWatch, Watched};
use crate::policy::{FailureAction, RetryPolicy, RolePolicy};

use crate::step::Step;
use crate::telemetry::names;
use crate::transaction::Transaction;

/// The steps of a role before the exception step, and its exception handler.
pub(super) trait Steps: Send + Sync {
    /// The role's policy.
    type Policy: RolePolicy;

    /// Runs the steps in order, stopping at the first that fails for good.
    fn steps<'a, 't, H: AttemptHook + Send + ?Sized>(
        &'a self,
        cx: &'a Context,
        policy: &'a Self::Policy,
        tx: &'a Transaction,
        tally: &'a mut Tally<'t>,
        hook: &'a mut H,
    ) -> impl Future<Output = Result<(), StepFailure>> + Send + 'a;

    /// Calls the task's exception handler once.
    fn exception<'a>(
        &'a self,
        cx: &'a Context,
        tx: &'a Transaction,
        error: &'a TaskError,
    ) -> impl Future<Output = Result<(), TaskError>> + Send + 'a;
}

/// One transaction through `role`: its steps within the budget, then the ack, or the
/// exception step and the `on_failure` settlement.
///
/// An `async fn`: its future starts as its arguments alone, and the whole state is built
/// in place on the first poll. (A plain `fn` returning the instrumented block measured
/// about 10 % more instructions per transaction, in copies of the bigger future.)
pub(super) async fn run<S: Steps, H: AttemptHook + Send + ?Sized>(
    role: &S,
    cx: &Context,
    policy: &S::Policy,
    tx: &Transaction,
    watched: Option<Watched<'_>>,
    hook: &mut H,
) -> TransactionOutcome {
    let mut tally = Tally::new(watched);
    let steps = role.steps(cx, policy, tx, &mut tally, hook);
    // Inline rather than a helper `async fn`: one state machine level less per
    // transaction, measurable on the hot path.
    let finished = match policy.budget() {
        None => Ok(steps.await),
        Some(budget) => tokio::time::timeout(budget, steps)
            .await
            .map_err(|_| budget),
    };
    let (failure, error) = match tally.settle_budget(finished) {
        Ok(()) => return tally.acked(),
        Err(failed) => failed.split(cx.task_name_arc()),
    };
    // Boxed: the failure path is the rare one, and inline its state would make every
    // transaction's future larger.
    Box::pin(tally.failed(cx, tx, failure, policy, hook, |_| {
        role.exception(cx, tx, &error)
    }))
    .await
}

/// Runs one step in its envelope, inline in the role's own future (see [`Tally::begin`]
/// for why there is no wrapper future), and evaluates to `Result<T, StepFailure>`:
/// `step!(tally, hook, Step::Process, &policy.process.retry, |_| task.process(cx, tx))`.
macro_rules! step {
    ($tally:expr, $hook:expr, $step:expr, $policy:expr, $call:expr) => {{
        let watch = $tally.begin($step, $policy);
        let done = $crate::envelope::run($step.as_str(), watch, $policy, $call, $hook).await;
        $tally.end($step, done)
    }};
}
pub(super) use step;

/// The running account of one transaction's lifecycle.
#[derive(Debug)]
pub(super) struct Tally<'t> {
    retries: u32,
    /// The step running now, which a budget expiry interrupts.
    current: Option<Step>,
    /// What its steps start under, when the transaction is watched.
    watched: Option<Watched<'t>>,
    pub(super) dispatched: u32,
    /// The output for the journal (see [`TransactionOutcome::output`]).
    pub(super) output: Option<String>,
}

/// The final error of a step before the exception step.
pub(super) struct StepFailure {
    step: Step,
    error: TaskError,
    attempts: u32,
}

impl<'t> Tally<'t> {
    fn new(watched: Option<Watched<'t>>) -> Self {
        Self {
            retries: 0,
            current: None,
            watched,
            dispatched: 0,
            output: None,
        }
    }

    /// Who watches this transaction, if anyone (the dispatch step stamps outbound
    /// transactions through it).
    pub(super) fn observer(&self) -> Option<&'t dyn Observer> {
        self.watched.map(|watched| watched.observer)
    }

    /// Adds a finished step's retries (the hook counted its attempts).
    fn count<T>(&mut self, done: &envelope::Attempted<T>) {
        self.retries += done.retries();
    }

    /// Starts `step`: it is now the one a budget expiry interrupts. Returns its watch, for
    /// [`envelope::run`]. The step's future is awaited by the role itself (not wrapped
    /// here): a wrapper future per step measured 10-15 % slower on the no-op hot path, in
    /// copies of the larger future.
    pub(super) fn begin(&mut self, step: Step, policy: &RetryPolicy) -> Option<StepWatch<'t>> {
        self.current = Some(step);
        step_watch(self.watched, step.as_str(), policy, None)
    }

    /// Ends `step` with what its envelope returned, counting its retries.
    pub(super) fn end<T>(
        &mut self,
        step: Step,
        done: envelope::Attempted<T>,
    ) -> Result<T, StepFailure> {
        self.count(&done);
        done.result.map_err(|error| StepFailure {
            step,
            error,
            attempts: done.attempts,
        })
    }

    /// Turns an expired budget into the failure of the step it interrupted.
    fn settle_budget(
        &self,
        finished: Result<Result<(), StepFailure>, Duration>,
    ) -> Result<(), StepFailure> {
        finished.unwrap_or_else(|budget| {
            Err(StepFailure {
                step: self.current.unwrap_or(Step::Process),
                error: TaskError::BudgetExhausted { budget },
                attempts: 1,
            })
        })
    }

    /// Every step succeeded.
    fn acked(self) -> TransactionOutcome {
        TransactionOutcome {
            failure: None,
            settlement: Settlement::Ack,
            retries: self.retries,
            dispatched: self.dispatched,
            exception_error: None,
            output: self.output,
        }
    }

    /// Runs the exception step, then decides the settlement of a failed transaction.
    async fn failed<F, Fut, H>(
        mut self,
        cx: &Context,
        tx: &Transaction,
        failure: Failure,
        policy: &impl RolePolicy,
        hook: &mut H,
        handler: F,
    ) -> TransactionOutcome
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<(), TaskError>>,
        H: AttemptHook + ?Sized,
    {
        let step = Step::Exception;
        let retry = policy.exception_policy();
        let watch = self.begin(step, retry);
        let handled = envelope::run(step.as_str(), watch, retry, handler, hook).await;
        self.count(&handled);
        let exception_error = handled.result.err();
        if let Some(err) = &exception_error {
            tracing::error!(
                { names::TASK } = cx.task_name(),
                { names::MESSAGE_ID } = tx.id(),
                attempts = handled.attempts,
                error = %err.chain(),
                "Exception handler failed; settling the transaction per on_failure anyway"
            );
        }
        let settlement = match policy.on_failure() {
            FailureAction::DeadLetter => Settlement::DeadLetter(failure.clone()),
            FailureAction::Requeue => Settlement::Requeue,
            FailureAction::Drop => Settlement::Drop(failure.clone()),
        };
        TransactionOutcome {
            failure: Some(failure),
            settlement,
            retries: self.retries,
            dispatched: self.dispatched,
            exception_error,
            output: None,
        }
    }
}

impl StepFailure {
    /// The record of the failure (for the settlement) and the error (for the handler).
    fn split(self, task: &Arc<str>) -> (Failure, TaskError) {
        let failure = Failure {
            task: task.clone(),
            step: self.step.as_str(),
            category: self.error.category(),
            message: self.error.chain().to_string(),
            attempts: self.attempts,
        };
        (failure, self.error)
    }
}

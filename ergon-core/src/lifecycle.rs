//! One transaction's life: process → success | exception → the settlement decision.
//!
//! ```text
//! process ──ok──▶ success ──ok──▶ Ack
//!    │ err          │ err
//!    ▼              ▼
//! exception ──────────────────▶ on_failure: DeadLetter | Requeue | Drop
//! ```
//!
//! The process and success steps share the transaction budget
//! (`policy.transaction.timeout`); the exception step keeps its own policy so that a
//! failure is always handled. This module decides the settlement; [`crate::settle`]
//! performs it.

use std::sync::Arc;

use tracing::Instrument as _;

use crate::connector::{Failure, Settlement};
use crate::context::Context;
use crate::envelope::{self, AttemptHook};
use crate::error::TaskError;
use crate::policy::{ConsumerPolicy, FailureAction};
use crate::step::Step;
use crate::task::Consumer;
use crate::telemetry::names;
use crate::transaction::Transaction;

/// How one transaction's lifecycle ended.
#[derive(Debug)]
pub struct TransactionOutcome {
    /// Why it failed, when it did.
    pub failure: Option<Failure>,
    /// What the input connector is to do with it.
    pub settlement: Settlement,
    /// Attempts beyond the first, over all steps.
    pub retries: u32,
    /// The exception step's own final error, when it failed too.
    pub exception_error: Option<TaskError>,
}

/// Runs the lifecycle of `tx` and decides its settlement (without performing it).
pub async fn run<T, H>(
    task: &T,
    cx: &Context,
    policy: &ConsumerPolicy,
    tx: &Transaction,
    hook: &mut H,
) -> TransactionOutcome
where
    T: Consumer,
    H: AttemptHook + ?Sized,
{
    let span = tracing::debug_span!(
        "transaction",
        { names::TASK } = cx.task_name(),
        { names::MESSAGE_ID } = tx.id(),
        { names::OPERATION_TYPE } = "process",
    );
    async {
        let mut retries = 0;
        let mut current = Step::Process;
        let steps = process_then_success(task, cx, policy, tx, hook, &mut retries, &mut current);
        let failed = match policy.transaction.timeout {
            None => steps.await,
            Some(budget) => tokio::time::timeout(budget, steps)
                .await
                .unwrap_or_else(|_| {
                    Err(StepFailure {
                        step: current,
                        error: TaskError::BudgetExhausted { budget },
                        attempts: 1,
                    })
                }),
        };
        let Err(failed) = failed else {
            return TransactionOutcome {
                failure: None,
                settlement: Settlement::Ack,
                retries,
                exception_error: None,
            };
        };

        let handled = envelope::run(
            Step::Exception.as_str(),
            step_span(Step::Exception),
            &policy.exception.retry,
            |_| task.handle_process_exception(cx, tx, &failed.error),
            hook,
        )
        .await;
        retries += handled.retries();
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
        let failure = failed.into_failure(cx.task_name_arc());
        let settlement = match policy.on_failure {
            FailureAction::DeadLetter => Settlement::DeadLetter(failure.clone()),
            FailureAction::Requeue => Settlement::Requeue,
            FailureAction::Drop => Settlement::Drop(failure.clone()),
        };
        TransactionOutcome {
            failure: Some(failure),
            settlement,
            retries,
            exception_error,
        }
    }
    .instrument(span)
    .await
}

/// The final error of the process or success step.
struct StepFailure {
    step: Step,
    error: TaskError,
    attempts: u32,
}

impl StepFailure {
    fn into_failure(self, task: &Arc<str>) -> Failure {
        Failure {
            task: task.clone(),
            step: self.step.as_str(),
            category: self.error.category(),
            message: self.error.chain().to_string(),
            attempts: self.attempts,
        }
    }
}

/// Process, then success; `current` tells a budget expiry which step it interrupted.
async fn process_then_success<T, H>(
    task: &T,
    cx: &Context,
    policy: &ConsumerPolicy,
    tx: &Transaction,
    hook: &mut H,
    retries: &mut u32,
    current: &mut Step,
) -> Result<(), StepFailure>
where
    T: Consumer,
    H: AttemptHook + ?Sized,
{
    *current = Step::Process;
    let processed = envelope::run(
        Step::Process.as_str(),
        step_span(Step::Process),
        &policy.process.retry,
        |_| task.process_transaction(cx, tx),
        hook,
    )
    .await;
    *retries += processed.retries();
    let output = processed.result.map_err(|error| StepFailure {
        step: Step::Process,
        error,
        attempts: processed.attempts,
    })?;

    *current = Step::Success;
    let succeeded = envelope::run(
        Step::Success.as_str(),
        step_span(Step::Success),
        &policy.success.retry,
        |_| task.handle_process_success(cx, tx, &output),
        hook,
    )
    .await;
    *retries += succeeded.retries();
    succeeded.result.map_err(|error| StepFailure {
        step: Step::Success,
        error,
        attempts: succeeded.attempts,
    })
}

fn step_span(step: Step) -> tracing::Span {
    tracing::debug_span!("step", { names::STEP } = step.as_str())
}

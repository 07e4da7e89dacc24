//! The retry loop: attempt, decide by category, back off, attempt again.

use std::future::Future;
use std::time::Duration;

use super::{AttemptHook, Attempted, attempt::attempt};
use crate::error::TaskError;
use crate::observe::InScope;
use crate::observe::watch::StepWatch;
use crate::policy::RetryPolicy;
use crate::telemetry::names;

/// Runs `call` under `policy` as the step `watch` watches, reporting each attempt to `hook`.
///
/// Each attempt is observed, unless the step is not (its transaction is not watched): then
/// nothing below it is either. A failed attempt, and a step that fails for good, report
/// their error category.
pub(crate) async fn run<T, F, Fut, H>(
    step: &'static str,
    mut watch: Option<StepWatch<'_>>,
    policy: &RetryPolicy,
    mut call: F,
    hook: &mut H,
) -> Attempted<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, TaskError>>,
    H: AttemptHook + ?Sized,
{
    let mut number = 1;
    loop {
        let started = tokio::time::Instant::now();
        let attempt_scope = watch.as_mut().map(|step| step.attempt_started(number));
        let result = InScope::new(
            attempt(call(number), number, started, policy.timeout),
            attempt_scope,
        )
        .await;
        let retry =
            matches!(&result, Err(err) if err.is_retryable() && number < policy.max_attempts);
        if let Some(step) = &mut watch {
            step.attempt_ended(result.as_ref().err().map(TaskError::category), retry);
        }
        // One clock read per attempt on the hot path: the hook `()` ignores `elapsed`.
        let elapsed = if hook.wants_elapsed() {
            started.elapsed()
        } else {
            Duration::ZERO
        };
        hook.on_attempt(step, number, result.as_ref().map(drop), elapsed);
        match result {
            Err(err) if retry => {
                let wait = policy.wait_after(number, err.retry_after());
                tracing::debug!(
                    { names::STEP } = step,
                    { names::ATTEMPT } = i64::from(number),
                    { names::ERROR_CATEGORY } = %err.category(),
                    error = %err.chain(),
                    wait = ?wait,
                    "Attempt failed, retrying"
                );
                tokio::time::sleep(wait).await;
                number += 1;
            }
            result => {
                if let Some(watch) = watch {
                    watch.end(result.as_ref().err().map(TaskError::category));
                }
                return Attempted {
                    result,
                    attempts: number,
                };
            }
        }
    }
}

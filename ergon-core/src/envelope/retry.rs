//! The retry loop: attempt, decide by category, back off, attempt again.

use std::future::Future;
use std::time::Duration;

use tracing::{Instrument as _, Span};

use super::{AttemptHook, Attempted, attempt::attempt};
use crate::error::TaskError;
use crate::policy::RetryPolicy;
use crate::telemetry::names;

/// Runs `call` under `policy` inside `step_span`, reporting each attempt to `hook`.
///
/// A plain function returning the instrumented future rather than an `async fn` awaiting
/// it: a step's future is then one state machine (and one copy of it) smaller. Nothing
/// runs before the first poll either way.
pub(crate) fn run<T, F, Fut, H>(
    step: &'static str,
    step_span: Span,
    policy: &RetryPolicy,
    mut call: F,
    hook: &mut H,
) -> impl Future<Output = Attempted<T>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, TaskError>>,
    H: AttemptHook + ?Sized,
{
    async move {
        let mut number = 1;
        loop {
            let started = tokio::time::Instant::now();
            let span = tracing::debug_span!("attempt", { names::ATTEMPT } = number);
            let result = attempt(call(number), started, policy.timeout)
                .instrument(span)
                .await;
            // One clock read per attempt on the hot path: the hook `()` ignores `elapsed`.
            let elapsed = if hook.wants_elapsed() {
                started.elapsed()
            } else {
                Duration::ZERO
            };
            hook.on_attempt(step, number, result.as_ref().map(drop), elapsed);
            match result {
                Err(err) if err.is_retryable() && number < policy.max_attempts => {
                    let wait = policy.jittered_delay_after(number);
                    tracing::debug!(
                        { names::STEP } = step,
                        { names::ATTEMPT } = number,
                        { names::ERROR_CATEGORY } = %err.category(),
                        error = %err.chain(),
                        wait = ?wait,
                        "Attempt failed, retrying"
                    );
                    tokio::time::sleep(wait).await;
                    number += 1;
                }
                result => {
                    return Attempted {
                        result,
                        attempts: number,
                    };
                }
            }
        }
    }
    .instrument(step_span)
}

//! The retry loop: attempt, decide by category, back off, attempt again.

use std::future::Future;
use std::time::Duration;

use tracing::{Instrument as _, Span};

use super::{AttemptHook, Attempted, attempt::attempt};
use crate::error::{Category, TaskError};
use crate::policy::RetryPolicy;
use crate::telemetry::names;

/// Runs `call` under `policy` inside `step_span`, reporting each attempt to `hook`.
///
/// Each attempt gets a child span, unless `step_span` is disabled (no subscriber wants
/// it, or the transaction is not sampled): then no span is made below it either. A failed
/// attempt, and a step that fails for good, record `error.type` and an ERROR status.
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
    let traced = !step_span.is_disabled();
    async move {
        let mut number = 1;
        loop {
            let started = tokio::time::Instant::now();
            let span = if traced {
                tracing::debug_span!(
                    "attempt",
                    { names::ATTEMPT } = i64::from(number),
                    { names::STATUS } = tracing::field::Empty,
                    { names::ERROR_TYPE } = tracing::field::Empty,
                    { names::ERROR_CATEGORY } = tracing::field::Empty,
                )
            } else {
                Span::none()
            };
            let result = attempt(call(number), started, policy.timeout)
                .instrument(span.clone())
                .await;
            if let Err(err) = &result {
                record_error(&span, err.category());
            }
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
                    if traced && let Err(err) = &result {
                        record_error(&Span::current(), err.category());
                    }
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

/// Marks `span` as failed with `category` (a no-op on a disabled span).
pub(crate) fn record_error(span: &Span, category: Category) {
    if span.is_disabled() {
        return;
    }
    let category = category.as_str();
    span.record(names::STATUS, "ERROR");
    span.record(names::ERROR_TYPE, category);
    span.record(names::ERROR_CATEGORY, category);
}

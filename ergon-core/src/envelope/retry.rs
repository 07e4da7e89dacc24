//! The retry loop: attempt, decide by category, back off, attempt again.

use std::future::Future;
use std::time::Duration;

use super::{AttemptHook, Attempted, attempt::attempt};
use crate::error::TaskError;
use crate::policy::RetryPolicy;
use crate::telemetry::names;
use crate::telemetry::trace::{ActiveSpan, Fields, InSpan, Parent, StepSpan, Tick};

/// Runs `call` under `policy` inside `span` (the step's), reporting each attempt to `hook`.
///
/// Each attempt gets a child span, unless the step has none (its transaction is not
/// traced): then no span is made below it either. A failed attempt, and a step that fails
/// for good, record their error category. The first attempt starts with the step and the
/// step ends with its last attempt: one clock tick for both.
///
/// A plain function returning the future rather than an `async fn` awaiting it: a
/// step's future is then one state machine (and one copy of it) smaller. Nothing runs
/// before the first poll either way.
pub(crate) fn run<'s, T, F, Fut, H>(
    step: &'static str,
    span: Option<StepSpan<'s>>,
    policy: &RetryPolicy,
    mut call: F,
    hook: &mut H,
) -> impl Future<Output = Attempted<T>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, TaskError>>,
    H: AttemptHook + ?Sized,
{
    let ids = span.as_ref().map(StepSpan::ids);
    let steps = async move {
        let mut span = span;
        let mut number = 1;
        loop {
            let started = tokio::time::Instant::now();
            // The first attempt is recorded with its step unless a retry follows; later
            // ones get spans of their own.
            let (attempt_ids, mut attempt_span) = match &mut span {
                None => (None, None),
                Some(step) if number == 1 => {
                    let ids = step.ids().child();
                    step.set_inline_attempt(Some(ids.span_id));
                    (Some(ids), None)
                }
                Some(step) => {
                    let fields = Fields::Attempt { number };
                    let attempt = ActiveSpan::child(step.spans(), "attempt", &step.ids(), fields);
                    (Some(*attempt.ids()), Some(attempt.into_owned()))
                }
            };
            let result = InSpan::new(
                attempt(call(number), number, started, policy.timeout),
                attempt_ids,
            )
            .await;
            let retry =
                matches!(&result, Err(err) if err.is_retryable() && number < policy.max_attempts);
            let ended = span.as_mut().map(|step| {
                if retry && attempt_span.is_none() {
                    // The first attempt, retried: no longer recorded with its step.
                    step.set_inline_attempt(None);
                    let parent = Parent::Local(step.ids().span_id);
                    let ids = attempt_ids.expect("a traced step's attempts have ids");
                    let fields = Fields::Attempt { number };
                    let first = ActiveSpan::start_at(
                        step.spans(),
                        "attempt",
                        ids,
                        parent,
                        fields,
                        step.started(),
                    );
                    attempt_span = Some(first.into_owned());
                }
                let end = Tick::now();
                if let Some(mut attempt) = attempt_span.take() {
                    if let Err(err) = &result {
                        attempt.fail(err.category());
                    }
                    attempt.end_at(end);
                }
                end
            });
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
                    if let (Some(mut span), Some(end)) = (span, ended) {
                        if let Err(err) = &result {
                            span.fail(err.category());
                        }
                        span.end_at(end);
                    }
                    return Attempted {
                        result,
                        attempts: number,
                    };
                }
            }
        }
    };
    InSpan::new(steps, ids)
}

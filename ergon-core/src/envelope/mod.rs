//! The step envelope: the one way every step runs (the seed's `run_fn`).
//!
//! The layers have a fixed order, documented once here; policies tune them but cannot
//! reorder them:
//!
//! ```text
//! step (observed) ─▶ retry decision (category rules, backoff with jitter)
//!                 ─▶ attempt (observed) ─▶ per-attempt timeout ─▶ panic guard ─▶ your call
//! ```
//!
//! * An attempt that returns a retryable error (system, timeout) is retried after
//!   [`RetryPolicy::jittered_delay_after`] until `max_attempts` attempts were made.
//! * A business error, a non-retryable system error or a panic ends the step at once.
//! * Each attempt is bounded by the policy's `timeout`; running out is
//!   [`TaskError::Timeout`].
//!
//! * A system error carrying a retry-after hint ([`TaskError::retry_after`]) waits at
//!   least that long before the next attempt, up to the policy's `backoff_cap`.
//! * Code inside an attempt reads its number with [`attempt_number`] and its deadline with
//!   [`attempt_deadline`] (blocking tasks too, on their pool thread).
//!
//! **One retry owner.** The envelope retries the *step*. A connector or service called
//! inside it makes one try per call and returns a categorized error, unless it retries
//! itself (a service stack with `retry.max_attempts > 1`): then its last error is
//! non-retryable, so the step is not retried on top of it, and its tries and waits stay
//! within [`attempt_deadline`]. Either way each failing call is retried in exactly one
//! place, never 3 × 3.

pub(crate) mod attempt;
mod retry;

pub use attempt::{attempt_deadline, attempt_number};
pub(crate) use attempt::{current as current_attempt, on_thread};

use std::future::Future;
use std::time::Duration;

use crate::error::TaskError;
use crate::observe::watch::{StepWatch, Watched};
use crate::observe::{self, StepInfo};
use crate::policy::RetryPolicy;

pub(crate) use retry::run;

/// The watch on one step run under `policy`, when its parent is watched: named after the
/// step, with the policy in force (and, for the fetch step, the batch size asked for).
pub(crate) fn step_watch<'a>(
    parent: Option<Watched<'a>>,
    name: &'static str,
    policy: &RetryPolicy,
    fetch_size: Option<usize>,
) -> Option<StepWatch<'a>> {
    parent.and_then(|parent| {
        let info = StepInfo {
            name,
            max_attempts: policy.max_attempts,
            timeout: policy.timeout,
            fetch_size,
        };
        StepWatch::start(parent, info)
    })
}

/// The outcome of a step run under the envelope, with the number of attempts it took.
#[derive(Debug)]
pub struct Attempted<T> {
    /// The last attempt's result.
    pub result: Result<T, TaskError>,
    /// Attempts made, the first included (>= 1).
    pub attempts: u32,
}

impl<T> Attempted<T> {
    /// Attempts beyond the first.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }
}

/// Told about every finished attempt; the `process` debug command and tests use it.
pub trait AttemptHook {
    /// Attempt number `attempt` of `step` ended with `outcome` after `elapsed`.
    fn on_attempt(
        &mut self,
        step: &'static str,
        attempt: u32,
        outcome: Result<(), &TaskError>,
        elapsed: Duration,
    );

    /// Whether [`on_attempt`](AttemptHook::on_attempt) reads `elapsed`. When it does not,
    /// the envelope skips a clock read per attempt and passes [`Duration::ZERO`].
    /// Default: true.
    fn wants_elapsed(&self) -> bool {
        true
    }
}

/// The hook that does nothing (the hot path).
impl AttemptHook for () {
    #[inline]
    fn on_attempt(&mut self, _: &'static str, _: u32, _: Result<(), &TaskError>, _: Duration) {}

    #[inline]
    fn wants_elapsed(&self) -> bool {
        false
    }
}

/// Runs `call` under the step envelope: retries, per-attempt timeout, backoff, observed.
///
/// `call` receives the attempt number (1-based) and is called once per attempt. Use it in
/// your own code and services to get the same guarantees as the framework's steps; inside
/// a watched step of ergon's it is observed as a step of its own under the current scope
/// (a span, when the runner traces), with its attempts below.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ergon_core::{TaskError, envelope::run_fn, policy::RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let policy = RetryPolicy { max_attempts: 3, backoff: Duration::from_millis(1), ..Default::default() };
/// let outcome = run_fn("lookup", &policy, |attempt| async move {
///     if attempt < 3 { Err(TaskError::system("flaky")) } else { Ok(attempt * 10) }
/// })
/// .await;
/// assert_eq!(outcome.attempts, 3);
/// assert_eq!(outcome.result.unwrap(), 30);
/// # }
/// ```
pub async fn run_fn<T, F, Fut>(name: &'static str, policy: &RetryPolicy, call: F) -> Attempted<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, TaskError>>,
{
    let observer = observe::observer();
    let current = observe::current();
    let parent = observer
        .as_deref()
        .zip(current.as_ref())
        .map(|(observer, scope)| Watched { observer, scope });
    run(
        name,
        step_watch(parent, name, policy, None),
        policy,
        call,
        &mut (),
    )
    .await
}

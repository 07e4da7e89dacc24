//! One attempt: the per-attempt timeout and the panic guard around the call.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::time::Instant;

use crate::error::TaskError;

/// The attempt the calling code runs in: its number and its deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope {
    deadline: Option<Instant>,
    number: u32,
}

tokio::task_local! {
    /// The attempt being run in this async task, read by [`attempt_deadline`] and
    /// [`attempt_number`].
    static SCOPE: Scope;
}

thread_local! {
    /// The attempt a blocking task's call runs in, on its pool thread.
    static ON_THREAD: Cell<Option<Scope>> = const { Cell::new(None) };
}

/// The attempt the calling code runs in, if any: in the async task, or on the pool thread
/// running a blocking task's call.
pub(crate) fn current() -> Option<Scope> {
    SCOPE
        .try_with(|scope| *scope)
        .ok()
        .or_else(|| ON_THREAD.get())
}

/// Runs `call` on this (pool) thread inside `scope`, so a blocking task sees the attempt
/// that sent it there.
pub(crate) fn on_thread<R>(scope: Option<Scope>, call: impl FnOnce() -> R) -> R {
    let outer = ON_THREAD.replace(scope);
    let result = call();
    ON_THREAD.set(outer);
    result
}

/// The number of the step attempt the calling code runs in: 1 for the first, 2 for the
/// first retry, and so on — so a task can, say, log or change strategy on a retry. `None`
/// outside any attempt. Blocking tasks see it too, on their pool thread.
///
/// ```
/// use std::time::Duration;
/// use ergon_core::envelope::{attempt_number, run_fn};
/// use ergon_core::policy::RetryPolicy;
/// use ergon_core::TaskError;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut policy = RetryPolicy::once(Duration::from_secs(1));
/// policy.max_attempts = 3;
/// policy.backoff = Duration::from_millis(1);
/// let outcome = run_fn("flaky", &policy, |_| async {
///     match attempt_number() {
///         Some(3) => Ok("third time lucky"),
///         _ => Err(TaskError::system("not yet")),
///     }
/// })
/// .await;
/// assert_eq!(outcome.result.unwrap(), "third time lucky");
/// assert_eq!(attempt_number(), None);
/// # }
/// ```
pub fn attempt_number() -> Option<u32> {
    current().map(|scope| scope.number)
}

/// The deadline of the step attempt the calling code runs in: its start plus the step's
/// `timeout`, or an enclosing attempt's when that is earlier (an envelope inside a step).
///
/// `None` outside any attempt. Blocking tasks see it too, on their pool thread. The
/// envelope cancels the attempt at this instant; code that retries or waits inside an
/// attempt (a service stack) reads it so it never starts a wait it cannot finish, and
/// never outlives the attempt that made the call.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ergon_core::envelope::{attempt_deadline, run_fn};
/// use ergon_core::policy::RetryPolicy;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert!(attempt_deadline().is_none());
/// let policy = RetryPolicy::once(Duration::from_secs(2));
/// let outcome = run_fn("lookup", &policy, |_| async {
///     let left = attempt_deadline().expect("inside an attempt") - tokio::time::Instant::now();
///     Ok::<_, ergon_core::TaskError>(left)
/// })
/// .await;
/// let left = outcome.result.unwrap();
/// assert!(left <= Duration::from_secs(2) && left > Duration::from_secs(1));
/// # }
/// ```
pub fn attempt_deadline() -> Option<Instant> {
    current().and_then(|scope| scope.deadline)
}

/// Runs one attempt, turning an overrun into [`TaskError::Timeout`] and a panic into
/// [`TaskError::Panicked`], so nothing an attempt does can take the worker down.
///
/// The deadline is `started + timeout` (what `tokio::time::timeout` computes, without a
/// second clock read); one too far to represent means no deadline, as there. The call sees
/// it, or an enclosing attempt's when earlier, through [`attempt_deadline`], and `number`
/// through [`attempt_number`].
pub(super) async fn attempt<T>(
    call: impl Future<Output = Result<T, TaskError>>,
    number: u32,
    started: Instant,
    timeout: Duration,
) -> Result<T, TaskError> {
    let own = started.checked_add(timeout);
    let deadline = match (own, attempt_deadline()) {
        (Some(own), Some(outer)) => Some(own.min(outer)),
        (own, outer) => own.or(outer),
    };
    let scope = Scope { deadline, number };
    let guarded = SCOPE.scope(scope, AssertUnwindSafe(call).catch_unwind());
    let finished = match own {
        Some(deadline) => tokio::time::timeout_at(deadline, guarded).await,
        None => Ok(guarded.await),
    };
    match finished {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(TaskError::Panicked {
            message: panic_message(panic.as_ref()),
        }),
        Err(_elapsed) => Err(TaskError::timeout(timeout)),
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

//! One attempt: the per-attempt timeout and the panic guard around the call.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::time::Instant;

use crate::error::TaskError;

tokio::task_local! {
    /// The deadline of the attempt being run, read by [`attempt_deadline`].
    static DEADLINE: Option<Instant>;
}

/// The deadline of the step attempt the calling code runs in: its start plus the step's
/// `timeout`, or an enclosing attempt's when that is earlier (an envelope inside a step).
///
/// `None` outside any attempt, and on a blocking task's threads (the deadline lives in the
/// attempt's async task). The envelope cancels the attempt at this instant; code that
/// retries or waits inside an attempt (a service stack) reads it so it never starts a wait
/// it cannot finish, and never outlives the attempt that made the call.
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
    DEADLINE.try_with(|deadline| *deadline).ok().flatten()
}

/// Runs one attempt, turning an overrun into [`TaskError::Timeout`] and a panic into
/// [`TaskError::Panicked`], so nothing an attempt does can take the worker down.
///
/// The deadline is `started + timeout` (what `tokio::time::timeout` computes, without a
/// second clock read); one too far to represent means no deadline, as there. The call sees
/// it, or an enclosing attempt's when earlier, through [`attempt_deadline`].
pub(super) async fn attempt<T>(
    call: impl Future<Output = Result<T, TaskError>>,
    started: Instant,
    timeout: Duration,
) -> Result<T, TaskError> {
    let own = started.checked_add(timeout);
    let visible = match (own, attempt_deadline()) {
        (Some(own), Some(outer)) => Some(own.min(outer)),
        (own, outer) => own.or(outer),
    };
    let guarded = DEADLINE.scope(visible, AssertUnwindSafe(call).catch_unwind());
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

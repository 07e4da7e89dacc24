//! One attempt: the per-attempt timeout and the panic guard around the call.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::time::Instant;

use crate::error::TaskError;

/// Runs one attempt, turning an overrun into [`TaskError::Timeout`] and a panic into
/// [`TaskError::Panicked`], so nothing an attempt does can take the worker down.
///
/// The deadline is `started + timeout` (what `tokio::time::timeout` computes, without a
/// second clock read); one too far to represent means no deadline, as there.
pub(super) async fn attempt<T>(
    call: impl Future<Output = Result<T, TaskError>>,
    started: Instant,
    timeout: Duration,
) -> Result<T, TaskError> {
    let guarded = AssertUnwindSafe(call).catch_unwind();
    let finished = match started.checked_add(timeout) {
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

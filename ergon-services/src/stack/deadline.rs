//! The `deadline` layer: a call never outlives the step attempt that made it.

use std::task::{Context, Poll};

use futures_util::future::{BoxFuture, FutureExt as _};
use tokio::time::Instant;

use ergon_core::TaskError;
use ergon_core::envelope::attempt_deadline;

/// Bounds each call, its tries and waits included, by the deadline of the step attempt it
/// is made in ([`attempt_deadline`]); running out is a timeout error. Outside an attempt
/// it adds nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer;

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline { inner }
    }
}

/// See [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
}

impl<S, Req> tower::Service<Req> for Deadline<S>
where
    S: tower::Service<Req, Error = TaskError>,
    S::Future: Send + 'static,
    S::Response: 'static,
{
    type Response = S::Response;
    type Error = TaskError;
    type Future = BoxFuture<'static, Result<S::Response, TaskError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TaskError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // Read here, in the caller's task, where the attempt's deadline is visible.
        let deadline = attempt_deadline();
        let call = self.inner.call(req);
        match deadline {
            None => call.boxed(),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                async move {
                    tokio::time::timeout_at(deadline, call)
                        .await
                        .unwrap_or_else(|_| Err(TaskError::timeout(left)))
                }
                .boxed()
            }
        }
    }
}

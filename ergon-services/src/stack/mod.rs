//! The stack every call of a service runs behind, assembled from tower layers in one fixed
//! order (outermost first), configured by the service's `stack` table ([`StackConfig`]):
//!
//! ```text
//! deadline ─▶ retry ─▶ circuit_breaker ─▶ rate_limit ─▶ concurrency ─▶ timeout ─▶ the call
//! ```
//!
//! | layer             | built from                                  | does |
//! |-------------------|---------------------------------------------|------|
//! | `deadline`        | [`DeadlineLayer`] (ours)                    | bounds the whole call, tries and waits included, by the step attempt's deadline ([`attempt_deadline`](ergon_core::envelope::attempt_deadline)) |
//! | `retry`           | `tower::retry::Retry` + [`HintedRetry`]     | only with `retry.max_attempts > 1`: retries system errors and timeouts of one call, waiting for a longer retry-after hint, never past the deadline; its last error is non-retryable |
//! | `circuit_breaker` | [`CircuitBreakerLayer`] (ours)              | opens after `failures` consecutive system failures; rejects without a try while open (the error carries the time left as its retry-after hint); one probe when half-open |
//! | `rate_limit`      | `tower::buffer::Buffer` over `tower::limit::RateLimit` | at most `requests` tries started per `per`, for every caller of the service together |
//! | `concurrency`     | `tower::limit::ConcurrencyLimit`            | at most N tries in flight, for every caller together |
//! | `timeout`         | `tower::timeout::Timeout`                   | bounds each try; running out is a timeout error |
//!
//! Why this order: each retry is a new try that the breaker sees and counts, and that the
//! rate and concurrency limits admit, so a retry storm is limited like any traffic; an
//! open breaker rejects before spending a rate-limit token; the per-try timeout does not
//! count time spent waiting for a token or a permit (the deadline does).
//!
//! **Who retries what.** With `retry.max_attempts = 1` (the default) the stack makes one
//! try per call and the step envelope retries the *step* (honouring the error's
//! retry-after hint in its backoff). With more, the stack retries the *call* and its final
//! error is non-retryable, so the envelope does not retry the step for it: a failing call
//! is never tried `steps × tries` times.
//!
//! `RateLimit` keeps its window in the service value and is not `Clone`; the stack is
//! cloned per call, so the limiter sits behind a `Buffer`: one task owns it (and the layers
//! below it) and every clone sends its requests there, keeping one shared window.

pub mod breaker;
mod config;
pub mod deadline;
pub mod retry;

use std::time::Duration;

use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder};

use ergon_core::TaskError;
use ergon_core::service::BuildContext;

pub use breaker::{BreakerState, CircuitBreakerLayer};
pub use config::{CircuitBreaker, RateLimit, StackConfig, StackRetry};
pub use deadline::DeadlineLayer;
pub use retry::HintedRetry;

/// A service call behind its stack: cheap to clone, one clone per call.
pub type Stack<Req, Res> = BoxCloneSyncService<Req, Res, TaskError>;

/// Requests queued in front of the rate limiter (callers beyond it wait to enqueue).
const RATE_LIMIT_QUEUE: usize = 1024;

/// Wraps `inner` (one try of a call) in the layers `config` turns on, in the documented
/// order, for the service `cx` builds. Call it from a service's `build` (it starts the
/// rate limiter's task on the current runtime). Returns the stack and its breaker, if any
/// (a health check can report an open circuit).
///
/// # Examples
///
/// ```
/// use ergon_core::TaskError;
/// use ergon_core::service::BuildContext;
/// use ergon_services::stack::{StackConfig, stack};
/// use tower::ServiceExt as _;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let double = tower::service_fn(|n: u32| async move { Ok::<_, TaskError>(n * 2) });
/// let (calls, _breaker) = stack(double, &StackConfig::default(), &BuildContext::new("double"));
/// assert_eq!(calls.clone().oneshot(21).await.unwrap(), 42);
/// # }
/// ```
pub fn stack<S, Req, Res>(
    inner: S,
    config: &StackConfig,
    cx: &BuildContext,
) -> (Stack<Req, Res>, Option<CircuitBreakerLayer>)
where
    S: tower::Service<Req, Response = Res, Error = TaskError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    Req: Clone + Send + Sync + 'static,
    Res: Send + Sync + 'static,
{
    let per_try = config.timeout;
    let breaker = config
        .circuit_breaker
        .clone()
        .map(|c| CircuitBreakerLayer::new(c, cx));
    let retry = (config.retry.max_attempts > 1)
        .then(|| tower::retry::RetryLayer::new(HintedRetry::new(config.retry.clone(), cx.name())));
    let rate_limit = config.rate_limit.as_ref().map(|rate| {
        ServiceBuilder::new()
            .map_err(move |err| from_box(err, per_try))
            .buffer(RATE_LIMIT_QUEUE)
            .rate_limit(rate.requests, rate.per)
            .into_inner()
    });
    let service = ServiceBuilder::new()
        .layer(DeadlineLayer)
        .option_layer(retry)
        .option_layer(breaker.clone())
        .option_layer(rate_limit)
        .option_layer(
            config
                .concurrency
                .map(tower::limit::ConcurrencyLimitLayer::new),
        )
        .map_err(move |err| from_box(err, per_try))
        .timeout(per_try)
        .service(inner);
    (BoxCloneSyncService::new(service), breaker)
}

/// A tower layer's boxed error as the [`TaskError`] it carries, or as what it means: the
/// per-try timeout elapsed, the rate limiter's queue is gone.
fn from_box(err: BoxError, per_try: Duration) -> TaskError {
    match err.downcast::<TaskError>() {
        Ok(err) => *err,
        Err(err) if err.is::<tower::timeout::error::Elapsed>() => TaskError::timeout(per_try),
        Err(err) => TaskError::system("service stack failed").with_source(err),
    }
}

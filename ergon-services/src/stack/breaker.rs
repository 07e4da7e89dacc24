//! The `circuit_breaker` layer (tower has none): closed → open after N consecutive system
//! failures → half-open after `open_for`, where one call probes → closed on its success,
//! open again on its failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt as _};
use tokio::time::Instant;

use ergon_core::service::BuildContext;
use ergon_core::sync::lock;
use ergon_core::telemetry::names;
use ergon_core::{Category, TaskError};

use super::config::CircuitBreaker;

/// The states as the `ergon.service.circuit_breaker.state` gauge reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum BreakerState {
    /// Calls go through; consecutive system failures are counted.
    Closed = 0,
    /// Calls fail at once, without a try.
    Open = 1,
    /// One call is probing; the others fail at once.
    HalfOpen = 2,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// What the breaker shares between every clone of the stack.
#[derive(Debug)]
struct Shared {
    config: CircuitBreaker,
    service: Arc<str>,
    state: Mutex<State>,
    gauge: Arc<AtomicU64>,
    rejected: Arc<AtomicU64>,
}

/// How a call was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Normal,
    Probe,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section is one state transition.
        lock(&self.state)
    }

    fn set(&self, state: &mut State, new: State) {
        let reported = match new {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        };
        if !matches!(
            (&*state, &new),
            (State::Closed { .. }, State::Closed { .. })
        ) {
            tracing::info!(service = %self.service, state = ?reported, "Circuit breaker changed state");
        }
        *state = new;
        self.gauge.store(reported as u64, Ordering::Relaxed);
    }

    fn admit(&self) -> Result<Admission, TaskError> {
        let now = Instant::now();
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => return Ok(Admission::Normal),
            State::Open { until } if now >= until => {
                self.set(&mut state, State::HalfOpen);
                return Ok(Admission::Probe);
            }
            State::Open { .. } | State::HalfOpen => {}
        }
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let (what, left) = match *state {
            State::Open { until } => ("open", until - now),
            _ => ("half-open, a probe is under way", self.config.open_for),
        };
        Err(TaskError::system(format!(
            "service `{}`: circuit breaker {what}; not tried",
            self.service
        ))
        .with_retry_after(left))
    }

    /// Records how an admitted call ended (`None`: it was cancelled).
    fn record(&self, admission: Admission, failed: Option<bool>) {
        let mut state = self.lock();
        match (admission, &*state, failed) {
            (Admission::Probe, _, Some(false)) => {
                self.set(&mut state, State::Closed { failures: 0 })
            }
            (Admission::Probe, _, _) => {
                let until = Instant::now() + self.config.open_for;
                self.set(&mut state, State::Open { until });
            }
            (Admission::Normal, State::Closed { .. }, Some(false)) => {
                *state = State::Closed { failures: 0 };
            }
            (Admission::Normal, State::Closed { failures }, Some(true)) => {
                let failures = failures + 1;
                if failures >= self.config.failures {
                    let until = Instant::now() + self.config.open_for;
                    self.set(&mut state, State::Open { until });
                } else {
                    *state = State::Closed { failures };
                }
            }
            // Calls admitted before the circuit opened, and cancelled calls, change nothing.
            (Admission::Normal, _, _) => {}
        }
    }
}

/// Adds a circuit breaker shared by every clone of the service it wraps, reporting its
/// state in the `ergon.service.circuit_breaker.state` gauge (0 closed, 1 open, 2 half-open)
/// and its rejections in `ergon.service.circuit_breaker.rejected`.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    shared: Arc<Shared>,
}

impl CircuitBreakerLayer {
    /// The breaker of the service `cx` builds.
    pub fn new(config: CircuitBreaker, cx: &BuildContext) -> Self {
        let gauge = cx.gauge(
            names::CIRCUIT_BREAKER_STATE,
            "Circuit breaker state: 0 closed, 1 open, 2 half-open",
        );
        let rejected = cx.counter(
            names::CIRCUIT_BREAKER_REJECTED,
            "Calls rejected by an open circuit breaker, without a try",
        );
        Self {
            shared: Arc::new(Shared {
                config,
                service: cx.name().into(),
                state: Mutex::new(State::Closed { failures: 0 }),
                gauge,
                rejected,
            }),
        }
    }

    /// The state now (as last set: an open circuit turns half-open when a call probes).
    pub fn state(&self) -> BreakerState {
        match *self.shared.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }

    /// How long the circuit stays open, if it is: what a health check reports.
    pub fn open_for(&self) -> Option<Duration> {
        match *self.shared.lock() {
            State::Open { until } => Some(until.saturating_duration_since(Instant::now())),
            _ => None,
        }
    }
}

/// The first thing a service's health check asks: an error naming `service` while its
/// circuit `breaker` (if it has one) is open, else `Ok`.
///
/// # Errors
///
/// The circuit is open (a system error saying for how long).
pub fn closed(breaker: Option<&CircuitBreakerLayer>, service: &str) -> Result<(), TaskError> {
    match breaker.and_then(CircuitBreakerLayer::open_for) {
        Some(left) => Err(TaskError::system(format!(
            "service `{service}`: circuit breaker open for {left:?} more"
        ))),
        None => Ok(()),
    }
}

impl<S> tower::Layer<S> for CircuitBreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See [`CircuitBreakerLayer`].
#[derive(Debug, Clone)]
pub struct Breaker<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Records a cancelled probe as a failure, so a dropped probe cannot leave the circuit
/// half-open for ever.
struct Outcome {
    shared: Arc<Shared>,
    admission: Admission,
    recorded: bool,
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !self.recorded {
            self.shared.record(self.admission, None);
        }
    }
}

impl<S, Req> tower::Service<Req> for Breaker<S>
where
    S: tower::Service<Req, Error = TaskError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = TaskError;
    type Future = BoxFuture<'static, Result<S::Response, TaskError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TaskError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let admission = match self.shared.admit() {
            Ok(admission) => admission,
            Err(rejected) => return futures_util::future::ready(Err(rejected)).boxed(),
        };
        let call = self.inner.call(req);
        let mut outcome = Outcome {
            shared: self.shared.clone(),
            admission,
            recorded: false,
        };
        async move {
            let result = call.await;
            let failed = matches!(&result, Err(err) if err.category() != Category::Business);
            outcome.recorded = true;
            outcome.shared.record(outcome.admission, Some(failed));
            result
        }
        .boxed()
    }
}

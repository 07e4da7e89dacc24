//! The `retry` layer's policy: tower's `Retry` asks it whether and when to try again.

use std::sync::Arc;

use tokio::time::{Instant, Sleep};

use ergon_core::TaskError;
use ergon_core::envelope::attempt_deadline;

use super::config::StackRetry;

/// Retries retryable errors up to `max_attempts` tries with capped exponential backoff,
/// waiting for a longer retry-after hint, never past the step attempt's deadline; the error
/// it gives up with is non-retryable (see [`StackRetry`]).
#[derive(Debug, Clone)]
pub struct HintedRetry {
    config: Arc<StackRetry>,
    service: Arc<str>,
    /// Tries made so far by this call (a policy is cloned per call).
    tries: u32,
}

impl HintedRetry {
    /// The policy of the service named `service`.
    pub fn new(config: StackRetry, service: &str) -> Self {
        Self {
            config: Arc::new(config),
            service: service.into(),
            tries: 0,
        }
    }

    /// Replaces the error in `result` by the final one: non-retryable, `why`, the last
    /// error as its cause.
    fn give_up<Res>(&self, result: &mut Result<Res, TaskError>, why: String) {
        if let Err(last) = result {
            let last = std::mem::replace(last, TaskError::business(""));
            let retry_after = last.retry_after();
            let mut err = TaskError::system(format!("service `{}`: {why}", self.service))
                .with_source(last)
                .non_retryable();
            if let Some(hint) = retry_after {
                err = err.with_retry_after(hint);
            }
            *result = Err(err);
        }
    }
}

impl<Req: Clone, Res> tower::retry::Policy<Req, Res, TaskError> for HintedRetry {
    type Future = Sleep;

    fn retry(&mut self, _req: &mut Req, result: &mut Result<Res, TaskError>) -> Option<Sleep> {
        let err = result.as_ref().err()?;
        if !err.is_retryable() {
            return None;
        }
        self.tries += 1;
        if self.tries >= self.config.max_attempts {
            let why = format!("gave up after {} tries", self.tries);
            self.give_up(result, why);
            return None;
        }
        let hint = err.retry_after().unwrap_or_default();
        if hint > self.config.backoff_cap {
            let why = format!(
                "asked to wait {hint:?}, longer than retry.backoff_cap ({:?}), after {} tries",
                self.config.backoff_cap, self.tries
            );
            self.give_up(result, why);
            return None;
        }
        let wait = self.config.delay_after(self.tries).max(hint);
        let until = Instant::now() + wait;
        if attempt_deadline().is_some_and(|deadline| until >= deadline) {
            let why = format!(
                "no time left in the step attempt for a retry in {wait:?}, after {} tries",
                self.tries
            );
            self.give_up(result, why);
            return None;
        }
        Some(tokio::time::sleep_until(until))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

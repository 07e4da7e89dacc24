//! `[services.NAME.stack]`: the layers each call of a service runs behind.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use ergon_core::config::ConfigIssue;

/// The stack of one service (the `stack` table of `[services.NAME]`). Every layer but the
/// per-try `timeout` is off unless configured; the order is fixed (see
/// [`stack`](crate::stack)).
///
/// ```toml
/// [services.rates.stack]
/// timeout = "2s"            # each try
/// concurrency = 8           # tries in flight at once
/// retry = { max_attempts = 3, backoff = "100ms", backoff_cap = "2s" }
/// rate_limit = { requests = 10, per = "1s" }
/// circuit_breaker = { failures = 5, open_for = "30s" }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StackConfig {
    /// Limit on each try; running out is a timeout error. Default: `"10s"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub timeout: Duration,
    /// Most tries in flight at once across every task and worker using the service
    /// (others wait). Default: none (unbounded).
    pub concurrency: Option<usize>,
    /// Retries inside the call. Default: one try (the step envelope retries the step).
    pub retry: StackRetry,
    /// Tries started per period. Default: none.
    pub rate_limit: Option<RateLimit>,
    /// Fail fast after consecutive system failures. Default: none.
    pub circuit_breaker: Option<CircuitBreaker>,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            concurrency: None,
            retry: StackRetry::default(),
            rate_limit: None,
            circuit_breaker: None,
        }
    }
}

/// `stack.retry`: the stack's own retries of one call.
///
/// With `max_attempts = 1` (the default) the stack does not retry: a retryable error
/// reaches the task as it is (with its retry-after hint) and the step envelope retries the
/// step. With more, the stack retries retryable errors (system, timeout), waiting
/// `backoff * backoff_multiplier^(n-1)` capped at `backoff_cap`, or the retry-after hint
/// when longer; it gives up at once when the hint is longer than `backoff_cap` or the wait
/// would end past the step attempt's deadline. Its last error is then non-retryable, so the
/// step is not retried on top of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StackRetry {
    /// Tries per call, the first included (>= 1). Default: 1.
    pub max_attempts: u32,
    /// Wait after the first failed try. Default: `"100ms"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub backoff: Duration,
    /// Growth of the wait per further failure (>= 1). Default: 2.0.
    pub backoff_multiplier: f64,
    /// Longest wait, and longest retry-after hint honoured. Default: `"5s"`.
    #[serde(with = "ergon_core::policy::duration")]
    pub backoff_cap: Duration,
}

impl Default for StackRetry {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            backoff: Duration::from_millis(100),
            backoff_multiplier: 2.0,
            backoff_cap: Duration::from_secs(5),
        }
    }
}

impl StackRetry {
    /// The wait after failed try number `tries` (1-based), before any hint.
    pub fn delay_after(&self, tries: u32) -> Duration {
        let exponent = tries.saturating_sub(1).min(64) as i32;
        let grown = self.backoff.as_secs_f64() * self.backoff_multiplier.powi(exponent);
        if grown.is_finite() && grown < self.backoff_cap.as_secs_f64() {
            Duration::from_secs_f64(grown)
        } else {
            self.backoff_cap
        }
    }
}

/// `stack.rate_limit`: at most `requests` tries started per `per` (fixed windows: tower's
/// `RateLimit`, shared by every caller of the service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Tries per window (>= 1).
    pub requests: u64,
    /// The window.
    #[serde(with = "ergon_core::policy::duration")]
    pub per: Duration,
}

/// `stack.circuit_breaker`: after `failures` consecutive system failures (system errors and
/// timeouts; a business answer such as HTTP 404 counts as a success) the circuit opens and
/// calls fail at once, without a try, with a retry-after hint of the time left; after
/// `open_for` one call probes (half-open): its success closes the circuit, its failure
/// opens it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Consecutive system failures that open the circuit (>= 1).
    pub failures: u32,
    /// How long it stays open before a probe. Default: `"30s"`.
    #[serde(default = "default_open_for", with = "ergon_core::policy::duration")]
    pub open_for: Duration,
}

fn default_open_for() -> Duration {
    Duration::from_secs(30)
}

impl StackConfig {
    /// Checks the values that parse but make no sense.
    ///
    /// # Errors
    ///
    /// The first offending key, relative to the stack table.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        let positive = |key: &str, d: Duration| {
            if d.is_zero() {
                Err(ConfigIssue::new(key, "must be greater than zero"))
            } else {
                Ok(())
            }
        };
        positive("timeout", self.timeout)?;
        if self.concurrency == Some(0) {
            return Err(ConfigIssue::new("concurrency", "must be at least 1"));
        }
        let retry = &self.retry;
        if retry.max_attempts == 0 {
            return Err(ConfigIssue::new(
                "retry.max_attempts",
                "must be at least 1 (it counts the first try)",
            ));
        }
        if !(retry.backoff_multiplier >= 1.0 && retry.backoff_multiplier.is_finite()) {
            return Err(ConfigIssue::new(
                "retry.backoff_multiplier",
                format!("must be a number >= 1.0, got {}", retry.backoff_multiplier),
            ));
        }
        if retry.backoff_cap < retry.backoff {
            return Err(ConfigIssue::new(
                "retry.backoff_cap",
                "must not be shorter than backoff",
            ));
        }
        if let Some(rate) = &self.rate_limit {
            if rate.requests == 0 {
                return Err(ConfigIssue::new(
                    "rate_limit.requests",
                    "must be at least 1",
                ));
            }
            positive("rate_limit.per", rate.per)?;
        }
        if let Some(breaker) = &self.circuit_breaker {
            if breaker.failures == 0 {
                return Err(ConfigIssue::new(
                    "circuit_breaker.failures",
                    "must be at least 1",
                ));
            }
            positive("circuit_breaker.open_for", breaker.open_for)?;
        }
        Ok(())
    }
}

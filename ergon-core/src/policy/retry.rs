//! `RetryPolicy`: attempts, per-attempt timeout and capped exponential backoff of one step.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigIssue, check_count};

/// How one step is attempted: up to `max_attempts` attempts, each bounded by `timeout`,
/// with waits of `backoff * backoff_multiplier^(n-1)` (capped at `backoff_cap`) after the
/// n-th failed attempt. Only retryable errors (system, timeout) are retried. An error
/// carrying a retry-after hint ([`TaskError::with_retry_after`](crate::TaskError::with_retry_after))
/// waits at least that long, up to `backoff_cap` ([`RetryPolicy::wait_after`]).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ergon_core::policy::RetryPolicy;
///
/// let policy = RetryPolicy {
///     max_attempts: 5,
///     backoff: Duration::from_millis(100),
///     backoff_multiplier: 3.0,
///     backoff_cap: Duration::from_secs(1),
///     ..RetryPolicy::default()
/// };
/// let waits: Vec<_> = (1..5).map(|n| policy.delay_after(n).as_millis()).collect();
/// assert_eq!(waits, [100, 300, 900, 1000]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total attempts, the first included, `1..=1000000`
    /// ([`MAX_ATTEMPTS`](Self::MAX_ATTEMPTS)). Default: 3.
    pub max_attempts: u32,
    /// Limit on each attempt; an attempt that runs out becomes a timeout error (every
    /// attempt has one, so a hung call can never stall a worker). Default: `"30s"`.
    #[serde(with = "super::duration")]
    pub timeout: Duration,
    /// Wait after the first failed attempt. Default: `"100ms"`.
    #[serde(with = "super::duration")]
    pub backoff: Duration,
    /// Growth of the wait per further failure (>= 1). Default: 2.0.
    pub backoff_multiplier: f64,
    /// Longest wait between two attempts. Default: `"10s"`.
    #[serde(with = "super::duration")]
    pub backoff_cap: Duration,
    /// Fraction of each wait taken off at random (0 = none, 1 = full jitter), so that many
    /// workers failing together do not retry together. Default: 0.0.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            timeout: Duration::from_secs(30),
            backoff: Duration::from_millis(100),
            backoff_multiplier: 2.0,
            backoff_cap: Duration::from_secs(10),
            jitter: 0.0,
        }
    }
}

impl RetryPolicy {
    /// Largest `max_attempts`: a million attempts, with the default cap of 10 s between
    /// them, is already four months of retrying one step.
    pub const MAX_ATTEMPTS: u32 = 1_000_000;

    /// One attempt, no retry, with the given per-attempt timeout.
    pub fn once(timeout: Duration) -> Self {
        Self {
            max_attempts: 1,
            timeout,
            ..Self::default()
        }
    }

    /// The wait after failed attempt number `attempt` (1-based), before jitter.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(i32::MAX as u32) as i32;
        let grown = self.backoff.as_secs_f64() * self.backoff_multiplier.powi(exponent);
        let cap = self.backoff_cap.as_secs_f64();
        if grown.is_finite() && grown < cap {
            Duration::from_secs_f64(grown)
        } else {
            self.backoff_cap
        }
    }

    /// The wait after failed attempt number `attempt`, with jitter applied.
    pub fn jittered_delay_after(&self, attempt: u32) -> Duration {
        let delay = self.delay_after(attempt);
        if self.jitter > 0.0 {
            delay.mul_f64(1.0 - self.jitter * fastrand::f64())
        } else {
            delay
        }
    }

    /// The wait after failed attempt number `attempt` whose error asked for `retry_after`
    /// ([`TaskError::retry_after`](crate::TaskError::retry_after)): the jittered backoff,
    /// or the hint when longer, the hint capped at `backoff_cap` so a step never sleeps
    /// longer than its policy allows.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ergon_core::policy::RetryPolicy;
    ///
    /// let policy = RetryPolicy { backoff: Duration::from_millis(100), backoff_cap: Duration::from_secs(5), ..Default::default() };
    /// assert_eq!(policy.wait_after(1, None), Duration::from_millis(100));
    /// assert_eq!(policy.wait_after(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
    /// assert_eq!(policy.wait_after(1, Some(Duration::from_secs(60))), Duration::from_secs(5));
    /// assert_eq!(policy.wait_after(1, Some(Duration::from_millis(10))), Duration::from_millis(100));
    /// ```
    pub fn wait_after(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let wait = self.jittered_delay_after(attempt);
        match retry_after {
            Some(hint) => wait.max(hint.min(self.backoff_cap)),
            None => wait,
        }
    }

    /// Checks the values that parse but make no sense.
    ///
    /// # Errors
    ///
    /// The first offending field, with what is allowed.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        check_count(
            "max_attempts",
            self.max_attempts.into(),
            1,
            Self::MAX_ATTEMPTS.into(),
        )?;
        if self.timeout.is_zero() {
            return Err(ConfigIssue::new("timeout", "must be greater than zero"));
        }
        self.validate_backoff()
    }

    /// Checks the backoff alone (what an empty-fetch backoff shares with a retry).
    pub(crate) fn validate_backoff(&self) -> Result<(), ConfigIssue> {
        if !(self.backoff_multiplier >= 1.0 && self.backoff_multiplier.is_finite()) {
            return Err(ConfigIssue::new(
                "backoff_multiplier",
                format!("must be a number >= 1.0, got {}", self.backoff_multiplier),
            ));
        }
        if self.backoff_cap < self.backoff {
            return Err(ConfigIssue::new(
                "backoff_cap",
                "must not be shorter than backoff",
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ConfigIssue::new(
                "jitter",
                format!("must be between 0.0 and 1.0, got {}", self.jitter),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff_ms: u64, multiplier: f64, cap_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            backoff: Duration::from_millis(backoff_ms),
            backoff_multiplier: multiplier,
            backoff_cap: Duration::from_millis(cap_ms),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn backoff_grows_geometrically_then_stays_at_the_cap() {
        let p = policy(50, 2.0, 500);
        let waits: Vec<u128> = (1..=7).map(|n| p.delay_after(n).as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 400, 500, 500, 500]);
        // Huge attempt numbers neither overflow nor panic.
        assert_eq!(p.delay_after(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn constant_backoff_with_multiplier_one() {
        let p = policy(30, 1.0, 1000);
        assert!((1..=5).all(|n| p.delay_after(n) == Duration::from_millis(30)));
    }

    #[test]
    fn jitter_only_shortens_within_its_fraction() {
        let p = RetryPolicy {
            jitter: 0.5,
            ..policy(100, 1.0, 100)
        };
        for _ in 0..1000 {
            let d = p.jittered_delay_after(1);
            assert!(
                d <= Duration::from_millis(100) && d >= Duration::from_millis(50),
                "{d:?}"
            );
        }
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (
                RetryPolicy {
                    max_attempts: 0,
                    ..Default::default()
                },
                "max_attempts",
            ),
            (
                RetryPolicy {
                    timeout: Duration::ZERO,
                    ..Default::default()
                },
                "timeout",
            ),
            (
                RetryPolicy {
                    backoff_multiplier: 0.5,
                    ..Default::default()
                },
                "backoff_multiplier",
            ),
            (
                RetryPolicy {
                    backoff_cap: Duration::from_millis(1),
                    ..Default::default()
                },
                "backoff_cap",
            ),
            (
                RetryPolicy {
                    jitter: 1.5,
                    ..Default::default()
                },
                "jitter",
            ),
            (
                RetryPolicy {
                    max_attempts: RetryPolicy::MAX_ATTEMPTS + 1,
                    ..Default::default()
                },
                "max_attempts",
            ),
        ];
        for (p, field) in cases {
            assert_eq!(p.validate().unwrap_err().path, field);
        }
        RetryPolicy::default().validate().unwrap();
    }
}

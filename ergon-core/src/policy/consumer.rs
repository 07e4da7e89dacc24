//! `ConsumerPolicy`: the loop, the fetch, the transaction budget and one retry policy per step.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RetryPolicy;
use crate::config::ConfigIssue;

/// Everything that governs a consumer: the `policy` table of a consumer task.
///
/// Each part is optional in the TOML; a missing part takes its documented defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerPolicy {
    /// The consume loop: concurrency, limit, timeout, streaming, shutdown drain.
    pub r#loop: LoopPolicy,
    /// Fetching batches from the input connector.
    pub fetch: FetchPolicy,
    /// The runtime budget of one transaction.
    pub transaction: TransactionPolicy,
    /// The `process_transaction` step.
    pub process: StepPolicy,
    /// The `handle_process_success` step.
    pub success: StepPolicy,
    /// The `handle_process_exception` step.
    pub exception: StepPolicy,
    /// Settling each transaction through the input connector (ack, requeue, dead-letter).
    pub settle: StepPolicy,
    /// What happens to a transaction that failed, once its exception step is over.
    /// Default: `"dead_letter"`.
    pub on_failure: FailureAction,
}

impl ConsumerPolicy {
    /// Checks every part; the error path is relative to the `policy` table.
    ///
    /// # Errors
    ///
    /// The first offending field, with what is allowed.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        self.r#loop.validate().map_err(|e| e.under("loop"))?;
        self.fetch.validate().map_err(|e| e.under("fetch"))?;
        self.transaction
            .validate()
            .map_err(|e| e.under("transaction"))?;
        for (name, step) in [
            ("process", &self.process),
            ("success", &self.success),
            ("exception", &self.exception),
            ("settle", &self.settle),
        ] {
            step.retry
                .validate()
                .map_err(|e| e.under("retry").under(name))?;
        }
        Ok(())
    }
}

/// The consume loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoopPolicy {
    /// Most transactions in flight at once in one worker (>= 1). Default: 16.
    pub concurrency: usize,
    /// Stop after this many transactions, counted across the task's workers; exact: no
    /// transaction beyond it is fetched. Default: none.
    pub limit: Option<u64>,
    /// Stop fetching after this long, then drain. Default: none.
    #[serde(with = "super::duration::option")]
    pub timeout: Option<Duration>,
    /// Keep polling when the input is empty (with `fetch.empty` backoff) instead of
    /// finishing after the first empty fetch. Default: false.
    pub streaming: bool,
    /// On shutdown, how long in-flight transactions may still run; the rest are requeued.
    /// Default: `"30s"`.
    #[serde(with = "super::duration")]
    pub drain_timeout: Duration,
}

impl Default for LoopPolicy {
    fn default() -> Self {
        Self {
            concurrency: 16,
            limit: None,
            timeout: None,
            streaming: false,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl LoopPolicy {
    fn validate(&self) -> Result<(), ConfigIssue> {
        if self.concurrency == 0 {
            return Err(ConfigIssue::new("concurrency", "must be at least 1"));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigIssue::new("timeout", "must be greater than zero"));
        }
        Ok(())
    }
}

/// Fetching from the input connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchPolicy {
    /// Most transactions asked for in one fetch (>= 1). The next batch is fetched while
    /// the current one drains, so at most about two batches are held. Default: 100.
    pub batch_size: usize,
    /// Retries of a failing fetch. When they are exhausted the worker fails.
    pub retry: RetryPolicy,
    /// Waiting between fetches that found nothing (streaming mode).
    pub empty: EmptyFetchPolicy,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            batch_size: 100,
            retry: RetryPolicy {
                max_attempts: 5,
                backoff: Duration::from_millis(200),
                ..RetryPolicy::default()
            },
            empty: EmptyFetchPolicy::default(),
        }
    }
}

impl FetchPolicy {
    fn validate(&self) -> Result<(), ConfigIssue> {
        if self.batch_size == 0 {
            return Err(ConfigIssue::new("batch_size", "must be at least 1"));
        }
        self.retry.validate().map_err(|e| e.under("retry"))?;
        self.empty.validate().map_err(|e| e.under("empty"))
    }
}

/// Backoff between empty fetches in streaming mode: `backoff * backoff_multiplier^(n-1)`
/// after the n-th empty fetch in a row, capped at `backoff_cap`; reset by a non-empty fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmptyFetchPolicy {
    /// Wait after the first empty fetch. Default: `"100ms"`.
    #[serde(with = "super::duration")]
    pub backoff: Duration,
    /// Growth per further empty fetch (>= 1). Default: 2.0.
    pub backoff_multiplier: f64,
    /// Longest wait. Default: `"5s"`.
    #[serde(with = "super::duration")]
    pub backoff_cap: Duration,
}

impl Default for EmptyFetchPolicy {
    fn default() -> Self {
        Self {
            backoff: Duration::from_millis(100),
            backoff_multiplier: 2.0,
            backoff_cap: Duration::from_secs(5),
        }
    }
}

impl EmptyFetchPolicy {
    /// The same growth rule as a [`RetryPolicy`] without jitter, so one formula serves both.
    pub fn as_backoff(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: u32::MAX,
            timeout: Duration::MAX,
            backoff: self.backoff,
            backoff_multiplier: self.backoff_multiplier,
            backoff_cap: self.backoff_cap,
            jitter: 0.0,
        }
    }

    fn validate(&self) -> Result<(), ConfigIssue> {
        let mut as_retry = self.as_backoff();
        as_retry.timeout = Duration::from_secs(1);
        as_retry.validate()
    }
}

/// The runtime budget of one transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransactionPolicy {
    /// Longest time the process and success steps may take together, retries and backoff
    /// included. When it runs out the running step is cancelled and the transaction goes
    /// to its exception step with a timeout error (the exception step keeps its own
    /// policy, so the failure is still handled). Default: none.
    #[serde(with = "super::duration::option")]
    pub timeout: Option<Duration>,
}

impl TransactionPolicy {
    fn validate(&self) -> Result<(), ConfigIssue> {
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigIssue::new("timeout", "must be greater than zero"));
        }
        Ok(())
    }
}

/// The policy of one step (process, success or exception).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepPolicy {
    /// Attempts, timeout and backoff of the step.
    pub retry: RetryPolicy,
}

/// What the runner does with a failed transaction after its exception step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureAction {
    /// Hand it to the input connector's dead-letter destination with the error. Default.
    #[default]
    DeadLetter,
    /// Put it back on the input to be delivered again.
    Requeue,
    /// Remove it from the input; it is counted and logged, nothing else keeps it.
    Drop,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_parse_from_an_empty_table() {
        let parsed: ConsumerPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, ConsumerPolicy::default());
        parsed.validate().unwrap();
    }

    #[test]
    fn nested_validation_errors_carry_the_full_path() {
        let mut policy = ConsumerPolicy::default();
        policy.exception.retry.max_attempts = 0;
        assert_eq!(
            policy.validate().unwrap_err().path,
            "exception.retry.max_attempts"
        );
        let mut policy = ConsumerPolicy::default();
        policy.fetch.empty.backoff_multiplier = 0.0;
        assert_eq!(
            policy.validate().unwrap_err().path,
            "fetch.empty.backoff_multiplier"
        );
    }

    #[test]
    fn durations_and_actions_parse_from_strings() {
        let policy: ConsumerPolicy = serde_json::from_str(
            r#"{"loop": {"timeout": "1m 30s", "concurrency": 4},
                "process": {"retry": {"timeout": "250ms"}},
                "on_failure": "requeue"}"#,
        )
        .unwrap();
        assert_eq!(policy.r#loop.timeout, Some(Duration::from_secs(90)));
        assert_eq!(policy.process.retry.timeout, Duration::from_millis(250));
        assert_eq!(policy.on_failure, FailureAction::Requeue);
    }
}

//! The parts every role's policy shares: the loop, the fetch, the transaction budget, the
//! policy of one step and the failure action.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RetryPolicy;
use crate::config::{ConfigIssue, check_count};

/// The consume loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoopPolicy {
    /// Most transactions in flight at once in one worker, `1..=65536`
    /// ([`MAX_CONCURRENCY`](Self::MAX_CONCURRENCY)). For a blocking task it is also the
    /// number of threads of each worker's pool, and `workers × concurrency` may not exceed
    /// 1024 ([`MAX_BLOCKING_THREADS`](Self::MAX_BLOCKING_THREADS)). Default: 16.
    pub concurrency: usize,
    /// Stop after this many transactions, counted across the task's workers; exact: no
    /// transaction beyond it is fetched. At most 10^15 ([`MAX_LIMIT`](Self::MAX_LIMIT)).
    /// Default: none.
    pub limit: Option<u64>,
    /// Stop fetching after this long, then drain. Default: none.
    #[serde(with = "super::duration::option")]
    pub timeout: Option<Duration>,
    /// Keep polling when the input is empty (with `fetch.empty` backoff) instead of
    /// finishing once it is drained (an empty fetch with nothing in flight, confirmed by
    /// the connector: see [`Connector::drained`](crate::Connector::drained)). Default: false.
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
    /// Largest `concurrency`: each transaction in flight holds buffers and a future, so
    /// a larger value only costs memory (no transport delivers that much at once).
    pub const MAX_CONCURRENCY: usize = 65_536;
    /// Largest number of threads of a blocking task (`workers × concurrency`): each is
    /// an OS thread with its own stack, and operating systems refuse tens of thousands.
    pub const MAX_BLOCKING_THREADS: usize = 1_024;
    /// Largest `limit`: 10^15, exact in every JSON or metrics consumer (below 2^53).
    pub const MAX_LIMIT: u64 = 1_000_000_000_000_000;

    pub(crate) fn validate(&self) -> Result<(), ConfigIssue> {
        check_count(
            "concurrency",
            self.concurrency as u64,
            1,
            Self::MAX_CONCURRENCY as u64,
        )?;
        if let Some(limit) = self.limit {
            check_count("limit", limit, 0, Self::MAX_LIMIT)?;
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
    /// Most transactions asked for in one fetch, `1..=65536`
    /// ([`MAX_BATCH_SIZE`](Self::MAX_BATCH_SIZE)). The next batch is fetched while the
    /// current one drains, so at most about two batches are held. Default: 100.
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
    /// Largest `batch_size`: the loop holds about two batches, allocated up front.
    pub const MAX_BATCH_SIZE: usize = 65_536;

    pub(crate) fn validate(&self) -> Result<(), ConfigIssue> {
        check_count(
            "batch_size",
            self.batch_size as u64,
            1,
            Self::MAX_BATCH_SIZE as u64,
        )?;
        self.retry.validate().map_err(|e| e.under("retry"))?;
        self.empty.validate().map_err(|e| e.under("empty"))
    }
}

/// Backoff between empty fetches: `backoff * backoff_multiplier^(n-1)` after the n-th
/// empty fetch in a row, capped at `backoff_cap`; reset by a non-empty fetch. A streaming
/// loop waits so between polls; a finite one waits so while work is in flight or the
/// input is not drained yet (cut short whenever a transaction finishes).
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

    pub(crate) fn validate(&self) -> Result<(), ConfigIssue> {
        self.as_backoff().validate_backoff()
    }
}

/// The budget of one transaction: its time, and how often it may be delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransactionPolicy {
    /// Longest time the steps before the exception step may take together (process,
    /// prepare, dispatch and success, as the role has them), retries and backoff included. When it runs out the running step is cancelled and the transaction goes
    /// to its exception step with a timeout error (the exception step keeps its own
    /// policy, so the failure is still handled). Default: none.
    #[serde(with = "super::duration::option")]
    pub timeout: Option<Duration>,
    /// Most deliveries of one transaction ([`Transaction::deliveries`]): one delivered
    /// more often is dead-lettered with that reason before any step runs, so a message
    /// that always fails with `on_failure = "requeue"`, or that kills the process each
    /// time, cannot cycle forever. `0`: unbounded. Default: 20 (RabbitMQ's own default
    /// delivery limit). How each connector counts deliveries is in its docs.
    ///
    /// [`Transaction::deliveries`]: crate::Transaction::deliveries
    pub max_deliveries: u32,
}

impl Default for TransactionPolicy {
    fn default() -> Self {
        Self {
            timeout: None,
            max_deliveries: 20,
        }
    }
}

impl TransactionPolicy {
    pub(crate) fn validate(&self) -> Result<(), ConfigIssue> {
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

/// Checks the shared parts and a role's steps; error paths are relative to the `policy`
/// table, so every role reports `loop.concurrency` or `prepare.retry.max_attempts` alike.
pub(crate) fn validate_parts(
    r#loop: &LoopPolicy,
    fetch: &FetchPolicy,
    transaction: &TransactionPolicy,
    steps: &[(&str, &StepPolicy)],
) -> Result<(), ConfigIssue> {
    r#loop.validate().map_err(|e| e.under("loop"))?;
    fetch.validate().map_err(|e| e.under("fetch"))?;
    transaction.validate().map_err(|e| e.under("transaction"))?;
    for (name, step) in steps {
        step.retry
            .validate()
            .map_err(|e| e.under("retry").under(name))?;
    }
    Ok(())
}

//! Per-worker counters, read live by the progress line and summed for the run summary.

use std::ops::AddAssign;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::connector::Settlement;
use crate::error::Category;
use crate::lifecycle::TransactionOutcome;

/// Counters of one worker. Each worker owns its own, so updates never contend.
#[derive(Debug, Default)]
pub struct WorkerStats {
    processed: AtomicU64,
    succeeded: AtomicU64,
    failed_business: AtomicU64,
    failed_system: AtomicU64,
    failed_timeout: AtomicU64,
    retries: AtomicU64,
    dead_lettered: AtomicU64,
    requeued: AtomicU64,
    dropped: AtomicU64,
    exception_failed: AtomicU64,
    settle_failed: AtomicU64,
    abandoned: AtomicU64,
    abandoned_attempts: AtomicU64,
    dispatched: AtomicU64,
    in_flight: AtomicU64,
}

/// A point-in-time copy of one or more workers' counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Transactions whose lifecycle finished.
    pub processed: u64,
    /// Of those, the ones acked after a successful success step.
    pub succeeded: u64,
    /// Failed with a business error.
    pub failed_business: u64,
    /// Failed with a system error (panics included).
    pub failed_system: u64,
    /// Failed with a timeout (an attempt or the transaction budget).
    pub failed_timeout: u64,
    /// Attempts beyond the first, over all steps.
    pub retries: u64,
    /// Failed transactions handed to the dead-letter destination.
    pub dead_lettered: u64,
    /// Transactions put back on the input (policy, or unfinished at shutdown).
    pub requeued: u64,
    /// Failed transactions dropped per policy.
    pub dropped: u64,
    /// Exception steps that failed themselves.
    pub exception_failed: u64,
    /// Settlements that failed after their retries.
    pub settle_failed: u64,
    /// Transactions cut off by the drain timeout at shutdown (requeued).
    pub abandoned: u64,
    /// Blocking attempts given up at their deadline while their thread still ran them.
    pub abandoned_attempts: u64,
    /// Outbound transactions confirmed by the output connector (producer, hybrid).
    pub dispatched: u64,
    /// Transactions in flight right now.
    pub in_flight: u64,
}

impl StatsSnapshot {
    /// All failed transactions.
    pub fn failed(&self) -> u64 {
        self.failed_business + self.failed_system + self.failed_timeout
    }
}

impl AddAssign for StatsSnapshot {
    fn add_assign(&mut self, o: Self) {
        self.processed += o.processed;
        self.succeeded += o.succeeded;
        self.failed_business += o.failed_business;
        self.failed_system += o.failed_system;
        self.failed_timeout += o.failed_timeout;
        self.retries += o.retries;
        self.dead_lettered += o.dead_lettered;
        self.requeued += o.requeued;
        self.dropped += o.dropped;
        self.exception_failed += o.exception_failed;
        self.settle_failed += o.settle_failed;
        self.abandoned += o.abandoned;
        self.abandoned_attempts += o.abandoned_attempts;
        self.dispatched += o.dispatched;
        self.in_flight += o.in_flight;
    }
}

impl WorkerStats {
    /// Reads the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            processed: self.processed.load(Relaxed),
            succeeded: self.succeeded.load(Relaxed),
            failed_business: self.failed_business.load(Relaxed),
            failed_system: self.failed_system.load(Relaxed),
            failed_timeout: self.failed_timeout.load(Relaxed),
            retries: self.retries.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            requeued: self.requeued.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            exception_failed: self.exception_failed.load(Relaxed),
            settle_failed: self.settle_failed.load(Relaxed),
            abandoned: self.abandoned.load(Relaxed),
            abandoned_attempts: self.abandoned_attempts.load(Relaxed),
            dispatched: self.dispatched.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
        }
    }

    pub(crate) fn record(&self, outcome: &TransactionOutcome, settled: bool) {
        self.processed.fetch_add(1, Relaxed);
        if outcome.dispatched > 0 {
            self.dispatched
                .fetch_add(u64::from(outcome.dispatched), Relaxed);
        }
        if outcome.retries > 0 {
            self.retries.fetch_add(u64::from(outcome.retries), Relaxed);
        }
        if let Some(failure) = &outcome.failure {
            match failure.category {
                Category::Business => &self.failed_business,
                Category::System => &self.failed_system,
                Category::Timeout => &self.failed_timeout,
            }
            .fetch_add(1, Relaxed);
        }
        if outcome.exception_error.is_some() {
            self.exception_failed.fetch_add(1, Relaxed);
        }
        if !settled {
            self.settle_failed.fetch_add(1, Relaxed);
            return;
        }
        match outcome.settlement {
            Settlement::Ack => &self.succeeded,
            Settlement::Requeue => &self.requeued,
            Settlement::DeadLetter(_) => &self.dead_lettered,
            Settlement::Drop(_) => &self.dropped,
        }
        .fetch_add(1, Relaxed);
    }

    pub(crate) fn record_requeued_unstarted(&self, count: u64, abandoned: bool) {
        self.requeued.fetch_add(count, Relaxed);
        if abandoned {
            self.abandoned.fetch_add(count, Relaxed);
        }
    }

    pub(crate) fn record_abandoned_attempt(&self) {
        self.abandoned_attempts.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_settle_failed(&self) {
        self.settle_failed.fetch_add(1, Relaxed);
    }

    pub(crate) fn set_in_flight(&self, n: usize) {
        self.in_flight.store(n as u64, Relaxed);
    }
}

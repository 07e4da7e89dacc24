//! Per-worker counters and histograms, read live by the progress line, the health
//! checks and the metrics exporters, and summed for the run summary.

use std::ops::AddAssign;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::async_loop::Settled;
use crate::connector::{SettleOutcome, Settlement};
use std::time::Duration;

use crate::delivery::Delivery;
use crate::envelope::{AttemptHook, Attempted};
use crate::error::{Category, TaskError};
use crate::step::Step;
use crate::telemetry::histogram::{BatchSize, Histogram, HistogramSnapshot, Micros};
use crate::telemetry::timing;

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
    settle_stale: AtomicU64,
    abandoned: AtomicU64,
    abandoned_attempts: AtomicU64,
    dispatched: AtomicU64,
    in_flight: AtomicU64,
    fetches_started: AtomicU64,
    fetches: AtomicU64,
    empty_fetches: AtomicU64,
    fetched: AtomicU64,
    attempts: [AtomicU64; 7],
    step_retries: [AtomicU64; 7],
    step_micros: [Histogram<Micros>; 7],
    transaction_micros: Histogram<Micros>,
    batch_sizes: Histogram<BatchSize>,
}

/// Point-in-time copies of one or more workers' histograms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramsSnapshot {
    /// Microseconds per attempt of each step, indexed by [`Step::index`] (only while
    /// timing is on; the settle step is counted, not timed).
    pub step_micros: [HistogramSnapshot; 7],
    /// Microseconds per transaction, lifecycle and settlement (only while timing is on).
    pub transaction_micros: HistogramSnapshot,
    /// Transactions per non-empty fetch.
    pub batch_sizes: HistogramSnapshot,
}

impl HistogramsSnapshot {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &HistogramsSnapshot) {
        for (mine, theirs) in self.step_micros.iter_mut().zip(&other.step_micros) {
            mine.merge(theirs);
        }
        self.transaction_micros.merge(&other.transaction_micros);
        self.batch_sizes.merge(&other.batch_sizes);
    }
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
    /// Settlements the transport did not perform because the delivery was no longer this
    /// consumer's (a lost channel, an expired lease): the transaction is delivered again.
    /// Not counted in `succeeded`, `requeued`, `dead_lettered` or `dropped`.
    pub settle_stale: u64,
    /// Transactions cut off by the drain timeout at shutdown (requeued).
    pub abandoned: u64,
    /// Blocking attempts given up at their deadline while their thread still ran them.
    pub abandoned_attempts: u64,
    /// Outbound transactions confirmed by the output connector (producer, hybrid).
    pub dispatched: u64,
    /// Transactions in flight right now.
    pub in_flight: u64,
    /// Fetches begun (one more than `fetches` while one is running).
    pub fetches_started: u64,
    /// Fetches finished, empty or not, failed or not.
    pub fetches: u64,
    /// Fetches that found nothing.
    pub empty_fetches: u64,
    /// Transactions fetched.
    pub fetched: u64,
    /// Attempts per step, indexed by [`Step::index`].
    pub attempts: [u64; 7],
    /// Attempts beyond the first per step, indexed by [`Step::index`].
    pub step_retries: [u64; 7],
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
        self.settle_stale += o.settle_stale;
        self.abandoned += o.abandoned;
        self.abandoned_attempts += o.abandoned_attempts;
        self.dispatched += o.dispatched;
        self.in_flight += o.in_flight;
        self.fetches_started += o.fetches_started;
        self.fetches += o.fetches;
        self.empty_fetches += o.empty_fetches;
        self.fetched += o.fetched;
        for step in 0..Step::ALL.len() {
            self.attempts[step] += o.attempts[step];
            self.step_retries[step] += o.step_retries[step];
        }
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
            settle_stale: self.settle_stale.load(Relaxed),
            abandoned: self.abandoned.load(Relaxed),
            abandoned_attempts: self.abandoned_attempts.load(Relaxed),
            dispatched: self.dispatched.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            fetches_started: self.fetches_started.load(Relaxed),
            fetches: self.fetches.load(Relaxed),
            empty_fetches: self.empty_fetches.load(Relaxed),
            fetched: self.fetched.load(Relaxed),
            attempts: self.attempts.each_ref().map(|a| a.load(Relaxed)),
            step_retries: self.step_retries.each_ref().map(|a| a.load(Relaxed)),
        }
    }

    /// Reads the histograms.
    pub fn histograms(&self) -> HistogramsSnapshot {
        HistogramsSnapshot {
            step_micros: self.step_micros.each_ref().map(Histogram::snapshot),
            transaction_micros: self.transaction_micros.snapshot(),
            batch_sizes: self.batch_sizes.snapshot(),
        }
    }

    pub(crate) fn record_fetch_started(&self) {
        self.fetches_started.fetch_add(1, Relaxed);
    }

    /// A finished fetch: its batch, attempts and time.
    pub(crate) fn record_fetch(&self, fetched: &Attempted<Vec<Delivery>>, micros: Option<u32>) {
        self.fetches.fetch_add(1, Relaxed);
        self.count_step(Step::Fetch, fetched.attempts, fetched.retries(), micros);
        match &fetched.result {
            Ok(batch) if batch.is_empty() => {
                self.empty_fetches.fetch_add(1, Relaxed);
            }
            Ok(batch) => {
                self.fetched.fetch_add(batch.len() as u64, Relaxed);
                self.batch_sizes.record(batch.len() as u64);
            }
            Err(_) => {}
        }
    }

    fn count_step(&self, step: Step, attempts: u32, retries: u32, micros: Option<u32>) {
        let i = step.index();
        self.attempts[i].fetch_add(u64::from(attempts), Relaxed);
        if retries > 0 {
            self.step_retries[i].fetch_add(u64::from(retries), Relaxed);
        }
        if let Some(micros) = micros {
            self.step_micros[i].record(u64::from(micros));
        }
    }

    /// A finished transaction: its outcome, settlement and time (its lifecycle's attempts
    /// were counted by [`StatsHook`] as they happened).
    pub(crate) fn record(&self, done: &Settled) {
        let outcome = &done.outcome;
        let settle_retries = done.settle.retries();
        self.count_step(Step::Settle, done.settle.attempts, settle_retries, None);
        if let Some(total) = done.micros {
            self.transaction_micros.record(u64::from(total));
        }
        self.processed.fetch_add(1, Relaxed);
        let retries = outcome.retries + settle_retries;
        if retries > 0 {
            self.retries.fetch_add(u64::from(retries), Relaxed);
        }
        if outcome.dispatched > 0 {
            self.dispatched
                .fetch_add(u64::from(outcome.dispatched), Relaxed);
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
        match done.settle.result {
            Ok(SettleOutcome::Performed) => {}
            Ok(SettleOutcome::Stale) => {
                self.settle_stale.fetch_add(1, Relaxed);
                return;
            }
            Err(_) => {
                self.settle_failed.fetch_add(1, Relaxed);
                return;
            }
        }
        match outcome.settlement {
            Settlement::Ack => &self.succeeded,
            Settlement::Requeue => &self.requeued,
            Settlement::DeadLetter(_) => &self.dead_lettered,
            Settlement::Drop(_) => &self.dropped,
        }
        .fetch_add(1, Relaxed);
    }

    pub(crate) fn record_abandoned_attempt(&self) {
        self.abandoned_attempts.fetch_add(1, Relaxed);
    }

    /// A requeue of a transaction that did not run here (see [`Self::record`] for the
    /// others), counted by what became of it.
    pub(crate) fn record_requeue(
        &self,
        settled: &Result<SettleOutcome, TaskError>,
        abandoned: bool,
    ) {
        match settled {
            Ok(SettleOutcome::Performed) => {
                self.requeued.fetch_add(1, Relaxed);
                if abandoned {
                    self.abandoned.fetch_add(1, Relaxed);
                }
            }
            Ok(SettleOutcome::Stale) => {
                self.settle_stale.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.settle_failed.fetch_add(1, Relaxed);
            }
        }
    }

    pub(crate) fn set_in_flight(&self, n: usize) {
        self.in_flight.store(n as u64, Relaxed);
    }
}

/// Counts every attempt of a transaction's steps into the worker's stats as it ends (and
/// its duration, while timing is on): the hook the consume loop runs lifecycles with.
pub(crate) struct StatsHook<'a>(pub(crate) &'a WorkerStats);

impl AttemptHook for StatsHook<'_> {
    #[inline]
    fn on_attempt(
        &mut self,
        step: &'static str,
        attempt: u32,
        _: Result<(), &TaskError>,
        elapsed: Duration,
    ) {
        let Some(step) = Step::named(step) else {
            return;
        };
        let i = step.index();
        self.0.attempts[i].fetch_add(1, Relaxed);
        if attempt > 1 {
            self.0.step_retries[i].fetch_add(1, Relaxed);
        }
        if timing::enabled() {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            self.0.step_micros[i].record(micros);
        }
    }

    #[inline]
    fn wants_elapsed(&self) -> bool {
        timing::enabled()
    }
}

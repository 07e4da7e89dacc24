//! What the journal counts, for the runner's metrics (`/metrics`, OTLP): children spawned
//! per (task, child task), waits decided per outcome and how long they waited, the
//! worker slots held by in-step waits now, and fan-in batches cut per reason.
//!
//! Atomics (and one map behind a lock, touched once per spawn call) that the exporters
//! read when asked; nothing is recorded for them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use ergon_core::journal::{CutReason, WaitOutcome};
use ergon_core::sync::lock;
use ergon_core::telemetry::histogram::{Histogram, HistogramSnapshot, Micros};

/// The journal's counters.
#[derive(Debug, Default)]
pub struct JournalMetrics {
    spawned: Mutex<BTreeMap<(String, String), u64>>,
    decided: [AtomicU64; 3],
    wait_micros: Histogram<Micros>,
    waiting_in_steps: AtomicU64,
    batches: [AtomicU64; 3],
}

impl JournalMetrics {
    /// Children spawned (new ones only), by (spawning task, child task).
    pub fn spawned(&self) -> Vec<((String, String), u64)> {
        lock(&self.spawned)
            .iter()
            .map(|(tasks, n)| (tasks.clone(), *n))
            .collect()
    }

    /// Parked waits decided with `outcome` (timeouts: [`WaitOutcome::TimedOut`]).
    pub fn decided(&self, outcome: WaitOutcome) -> u64 {
        self.decided[index(outcome)].load(Relaxed)
    }

    /// How long parked waits waited, from registration to decision, in microseconds.
    pub fn wait_duration(&self) -> HistogramSnapshot {
        self.wait_micros.snapshot()
    }

    /// Tagged fan-in batches cut for `reason`.
    pub fn batches(&self, reason: CutReason) -> u64 {
        self.batches[reason as usize].load(Relaxed)
    }

    /// Worker slots held by in-step waits now.
    pub fn waiting_in_steps(&self) -> u64 {
        self.waiting_in_steps.load(Relaxed)
    }

    pub(crate) fn count_spawned(&self, task: &str, child_task: &str, new: usize) {
        if new > 0 {
            let key = (task.to_owned(), child_task.to_owned());
            *lock(&self.spawned).entry(key).or_default() += new as u64;
        }
    }

    pub(crate) fn count_decided(&self, outcome: WaitOutcome, waited_ms: i64) {
        self.decided[index(outcome)].fetch_add(1, Relaxed);
        let micros = u64::try_from(waited_ms).unwrap_or(0).saturating_mul(1_000);
        self.wait_micros.record(micros);
    }

    pub(crate) fn count_batch(&self, reason: CutReason) {
        self.batches[reason as usize].fetch_add(1, Relaxed);
    }

    /// Counts one in-step wait until the guard is dropped.
    pub(crate) fn waiting_in_step(&self) -> InStepWait<'_> {
        self.waiting_in_steps.fetch_add(1, Relaxed);
        InStepWait(self)
    }
}

/// An in-step wait being counted (see [`JournalMetrics::waiting_in_steps`]).
pub(crate) struct InStepWait<'a>(&'a JournalMetrics);

impl Drop for InStepWait<'_> {
    fn drop(&mut self) {
        self.0.waiting_in_steps.fetch_sub(1, Relaxed);
    }
}

fn index(outcome: WaitOutcome) -> usize {
    match outcome {
        WaitOutcome::Satisfied => 0,
        WaitOutcome::TimedOut => 1,
        WaitOutcome::Unsatisfiable => 2,
    }
}

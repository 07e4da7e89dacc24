//! When a finite run is over: every finite loop of the run drained at the same time.
//!
//! A loop whose input is drained may still get work from another loop of the same run
//! that is busy (a parent spawning children into its queue, a continuation on its way).
//! Loops that share a [`RunQuiet`] end only once all of them are idle together: each
//! counts as busy from its start until it finds its input drained (nothing in flight,
//! nothing buffered, an empty fetch the connector and the journal confirm), busy again
//! when a fetch brings work, and the run is quiet when none is busy. Then no work can
//! appear any more — only a busy loop could have produced it. Streaming loops do not
//! take part.
//!
//! A loop that has not started yet is not idle either: a run that knows how many finite
//! loops it starts ([`RunQuiet::expecting`]) counts them busy from the outset, so a loop
//! whose connector is slow to open cannot find the others idle, end them, and then get
//! work from nobody.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The loops of one run, counted while busy. Share one among the loops with
/// [`ConsumeLoop::quiet`](super::ConsumeLoop::quiet).
#[derive(Debug, Default)]
pub struct RunQuiet {
    busy: AtomicUsize,
    /// Loops counted busy before they joined, not joined yet.
    expected: AtomicUsize,
}

impl RunQuiet {
    /// A run whose loops are counted as they join (loops that all join before any of
    /// them can find its input drained, such as loops polled together by one task).
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A run of `loops` finite loops, all busy until each has joined and found its input
    /// drained. The runner starts its workers on many tasks, some later than others: each
    /// is counted from the start.
    pub fn expecting(loops: usize) -> Arc<Self> {
        Arc::new(Self {
            busy: AtomicUsize::new(loops),
            expected: AtomicUsize::new(loops),
        })
    }

    /// Joins a loop to the run, busy (counted already when it was expected).
    pub(crate) fn join(self: &Arc<Self>) -> Participant {
        let expected = self
            .expected
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if expected.is_err() {
            self.busy.fetch_add(1, Ordering::SeqCst);
        }
        Participant {
            run: self.clone(),
            idle: false,
        }
    }
}

/// One loop's part in a [`RunQuiet`]; leaving (dropped) while busy counts as idle.
#[derive(Debug)]
pub(crate) struct Participant {
    run: Arc<RunQuiet>,
    idle: bool,
}

impl Participant {
    /// The loop found work.
    pub fn busy(&mut self) {
        if std::mem::replace(&mut self.idle, false) {
            self.run.busy.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The loop's input is drained; returns whether the whole run is now quiet.
    pub fn idle(&mut self) -> bool {
        if !std::mem::replace(&mut self.idle, true) {
            self.run.busy.fetch_sub(1, Ordering::SeqCst);
        }
        self.run.busy.load(Ordering::SeqCst) == 0
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        if !self.idle {
            self.run.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_quiet_only_when_every_loop_is_idle_at_once() {
        let run = RunQuiet::new();
        let (mut a, mut b) = (run.join(), run.join());
        assert!(!a.idle(), "b is still busy");
        assert!(!a.idle(), "idle twice counts once");
        b.busy();
        a.busy();
        assert!(!b.idle());
        assert!(a.idle(), "both idle");
        a.busy();
        drop(b);
        assert!(a.idle(), "a loop that left is not waited for");
        let mut c = run.join();
        drop(a);
        assert!(c.idle());
    }

    #[test]
    fn an_expected_loop_that_has_not_started_keeps_the_run_busy() {
        // Counted as they join: the first loop alone finds the run quiet.
        let run = RunQuiet::new();
        assert!(run.join().idle(), "the race expecting() closes");

        let run = RunQuiet::expecting(2);
        let mut a = run.join();
        assert!(!a.idle(), "b has not started");
        let mut b = run.join();
        assert!(b.idle(), "both started and idle");
        let mut late = run.join();
        assert!(
            !a.idle(),
            "a loop beyond the expected ones counts as it joins"
        );
        assert!(late.idle());
    }
}

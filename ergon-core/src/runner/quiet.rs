//! When a finite run is over: every finite loop of the run drained at the same time.
//!
//! A loop whose input is drained may still get work from another loop of the same run
//! that is busy (a parent spawning children into its queue, a continuation on its way).
//! Loops that share a [`RunQuiet`] end only once all of them are idle together: each
//! counts as busy from its start until it finds its input drained (nothing in flight,
//! nothing buffered, an empty fetch the connector and the journal confirm), busy again
//! when a fetch brings work, and the run is quiet when none is busy and each has found
//! its input drained since the last one stopped working. Then no work can appear any
//! more — only a busy loop could have produced it. Streaming loops do not take part.
//!
//! A drained answer is only as good as the time it was given: a loop that stops being
//! busy may have handed work to a loop that had found its input empty before (a producer
//! dispatching into another task's queue, then resting). So each time a loop stops being
//! busy, every loop must find its input drained again before the run is quiet.
//!
//! A loop that has not started yet is not idle either: a run that knows how many finite
//! loops it starts ([`RunQuiet::expecting`]) counts them busy from the outset, so a loop
//! whose connector is slow to open cannot find the others idle, end them, and then get
//! work from nobody.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::sync::lock;

/// The loops of one run, counted while busy. Share one among the loops with
/// [`ConsumeLoop::quiet`](super::ConsumeLoop::quiet).
#[derive(Debug, Default)]
pub struct RunQuiet {
    state: Mutex<State>,
    /// Notified whenever a loop stops being busy, and when the run is found quiet: idle
    /// loops look at their input again at once instead of after their empty-fetch
    /// backoff (up to `backoff_cap`), and end together.
    rested: Notify,
}

/// Where the run's loops stand.
#[derive(Debug, Default)]
struct State {
    /// Loops busy now (expected loops not joined yet included).
    busy: usize,
    /// Loops counted busy before they joined, not joined yet.
    expected: usize,
    /// Loops taking part (expected ones included).
    members: usize,
    /// Bumped whenever a loop stops being busy: the work it did may sit in another's
    /// input, so every drained answer given before is stale.
    epoch: u64,
    /// Loops that found their input drained since the last bump.
    confirmed: usize,
}

impl State {
    /// A loop stopped being busy: earlier confirmations no longer count.
    fn rest(&mut self) {
        self.busy -= 1;
        self.epoch += 1;
        self.confirmed = 0;
    }
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
            state: Mutex::new(State {
                busy: loops,
                expected: loops,
                members: loops,
                ..State::default()
            }),
            rested: Notify::new(),
        })
    }

    /// Completes when a loop of the run stops being busy or finds the run quiet (see
    /// [`Participant::idle`]).
    pub(crate) fn rested(&self) -> Notified<'_> {
        self.rested.notified()
    }

    /// Joins a loop to the run, busy (counted already when it was expected).
    pub(crate) fn join(self: &Arc<Self>) -> Participant {
        let mut state = lock(&self.state);
        if state.expected > 0 {
            state.expected -= 1;
        } else {
            state.busy += 1;
            state.members += 1;
        }
        Participant {
            run: self.clone(),
            idle: false,
            confirmed_at: None,
        }
    }
}

/// One loop's part in a [`RunQuiet`]; leaving (dropped) while busy counts as idle.
#[derive(Debug)]
pub(crate) struct Participant {
    run: Arc<RunQuiet>,
    idle: bool,
    /// The epoch in which this loop last found its input drained.
    confirmed_at: Option<u64>,
}

impl Participant {
    /// The loop found work.
    pub fn busy(&mut self) {
        if std::mem::replace(&mut self.idle, false) {
            lock(&self.run.state).busy += 1;
        }
    }

    /// The loop's input is drained; returns whether the whole run is now quiet: no loop
    /// busy, and every loop found its input drained after the last one stopped being
    /// busy (a loop that was idle all along must look again once another loop has
    /// worked: that work may be in its input now).
    pub fn idle(&mut self) -> bool {
        let mut state = lock(&self.run.state);
        let rested = !std::mem::replace(&mut self.idle, true);
        if rested {
            state.rest();
        }
        if self.confirmed_at != Some(state.epoch) {
            self.confirmed_at = Some(state.epoch);
            state.confirmed += 1;
        }
        let quiet = state.busy == 0 && state.confirmed >= state.members;
        drop(state);
        if rested || quiet {
            // The others look again: for work this loop may have handed them, or to end.
            self.run.rested.notify_waiters();
        }
        quiet
    }

    /// The run this loop takes part in.
    pub fn run(&self) -> &Arc<RunQuiet> {
        &self.run
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        let mut state = lock(&self.run.state);
        if !self.idle {
            state.rest();
        } else if self.confirmed_at == Some(state.epoch) {
            state.confirmed -= 1;
        }
        state.members -= 1;
        drop(state);
        if !self.idle {
            self.run.rested.notify_waiters();
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
        assert!(
            !a.idle(),
            "both idle, but b looked before a's work was done"
        );
        assert!(b.idle(), "b looked again: quiet");
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
        assert!(!b.idle(), "a looked before b's work was done");
        assert!(a.idle(), "both started and idle");
        let mut late = run.join();
        assert!(
            !a.idle(),
            "a loop beyond the expected ones counts as it joins"
        );
        assert!(!late.idle(), "a's and b's answers predate late's work");
        assert!(!b.idle());
        assert!(a.idle(), "all three looked after the last work");
    }

    #[tokio::test]
    async fn idle_loops_are_woken_when_another_rests_and_when_the_run_is_quiet() {
        let run = RunQuiet::expecting(2);
        let (mut split, mut work) = (run.join(), run.join());
        let rested = run.rested();
        tokio::pin!(rested);
        rested.as_mut().enable();
        assert!(!split.idle(), "work is busy");
        tokio::time::timeout(std::time::Duration::from_secs(1), rested)
            .await
            .expect("split resting wakes the idle loops");

        let work_rested = run.rested();
        tokio::pin!(work_rested);
        work_rested.as_mut().enable();
        assert!(!work.idle(), "split looked before work's last task ended");
        let ended = run.rested();
        tokio::pin!(ended);
        ended.as_mut().enable();
        work_rested.await;
        assert!(split.idle(), "split looks again: quiet");
        tokio::time::timeout(std::time::Duration::from_secs(1), ended)
            .await
            .expect("the loop that finds the run quiet wakes the others to end");
    }

    #[test]
    fn work_handed_on_by_a_loop_that_then_rests_is_looked_for() {
        // `split` dispatches to `work`'s queue and rests; `work` found its queue empty
        // before: its answer is stale, and the run is not quiet until it looks again.
        let run = RunQuiet::expecting(2);
        let (mut split, mut work) = (run.join(), run.join());
        assert!(!work.idle(), "split is busy");
        assert!(
            !split.idle(),
            "work's empty queue was seen before split's dispatch"
        );
        work.busy();
        assert!(
            !work.idle(),
            "split saw its input before work's last task ended"
        );
        assert!(split.idle(), "both looked after the last work: quiet");
    }
}

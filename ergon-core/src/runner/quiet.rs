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

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The loops of one run, counted while busy. Share one among the loops with
/// [`ConsumeLoop::quiet`](super::ConsumeLoop::quiet).
#[derive(Debug, Default)]
pub struct RunQuiet {
    busy: AtomicUsize,
}

impl RunQuiet {
    /// A run with no loop yet.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Joins a loop to the run, busy.
    pub(crate) fn join(self: &Arc<Self>) -> Participant {
        self.busy.fetch_add(1, Ordering::SeqCst);
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
}

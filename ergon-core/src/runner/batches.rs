//! The consume loop's batches as an observer sees them: each watched batch ends when its
//! last transaction has started (see [`observe`](crate::observe) for the tree).

use std::collections::VecDeque;

use crate::observe::watch::BatchWatch;

/// The batches whose transactions are still buffered, oldest first, each with its watch
/// (when watched) and its transactions not started yet (kept only while the loop is
/// watched). The buffer is first in, first out, so the transaction at its front belongs
/// to the oldest batch: no per-transaction handle on its batch is needed.
#[derive(Default)]
pub(super) struct OpenBatches<'a> {
    open: VecDeque<(Option<BatchWatch<'a>>, usize)>,
}

impl<'a> OpenBatches<'a> {
    /// A batch of `size` transactions was buffered.
    pub(super) fn push(&mut self, watch: Option<BatchWatch<'a>>, size: usize) {
        if size > 0 {
            self.open.push_back((watch, size));
        }
    }

    /// The transaction at the front of the buffer starts: `start` gets its batch's watch,
    /// which ends once its last transaction has started.
    pub(super) fn start_next<R>(&mut self, start: impl FnOnce(Option<&BatchWatch<'a>>) -> R) -> R {
        let Some((watch, left)) = self.open.front_mut() else {
            return start(None);
        };
        let started = start(watch.as_ref());
        *left -= 1;
        if *left == 0 {
            self.open.pop_front();
        }
        started
    }

    /// The buffer was emptied without starting them: their batches end.
    pub(super) fn clear(&mut self) {
        self.open.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::observe::watch::Watched;
    use crate::observe::{Observer, Scope};

    /// Numbers the batches it watches, and keeps the numbers of those that ended.
    #[derive(Default)]
    struct Batches {
        started: Mutex<u64>,
        ended: Mutex<Vec<u64>>,
    }

    impl Observer for Batches {
        fn batch_started(&self, _: &Scope, _: usize) -> Option<Scope> {
            let mut started = self.started.lock().unwrap();
            *started += 1;
            Some(Scope::new([*started, 0, 0, 0, 0, 0]))
        }

        fn batch_ended(&self, scope: Scope, _: &Scope, _: usize) {
            self.ended.lock().unwrap().push(scope.words()[0]);
        }
    }

    #[test]
    fn a_batch_ends_when_its_last_transaction_starts() {
        let observer = Batches::default();
        let root = Scope::default();
        let parent = Watched {
            observer: &observer,
            scope: &root,
        };
        let ended = || observer.ended.lock().unwrap().clone();
        let mut batches = OpenBatches::default();
        batches.push(BatchWatch::start(parent, 2), 2);
        batches.push(None, 1);
        batches.push(BatchWatch::start(parent, 1), 1);

        let seen: Vec<Option<u64>> = (0..4)
            .map(|_| batches.start_next(|batch| batch.map(|b| b.scope().words()[0])))
            .collect();
        assert_eq!(seen, [Some(1), Some(1), None, Some(2)]);
        assert_eq!(ended(), [1, 2], "both watched batches ended once started");

        batches.push(BatchWatch::start(parent, 3), 3);
        batches.start_next(|_| ());
        assert_eq!(ended(), [1, 2]);
        batches.clear();
        assert_eq!(ended(), [1, 2, 3], "a batch requeued unstarted ends too");
    }
}

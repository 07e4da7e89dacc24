//! Coalesced acknowledgements: which `basic.ack` to send for the deliveries settled so far.
//!
//! Delivery tags on a channel run 1, 2, 3, … . The window remembers which are done (acked
//! by the engine, or already answered with a nack or reject) and finds the *frontier*: the
//! highest tag below which every delivery is done. One `basic.ack` with `multiple = true`
//! up to the frontier then acknowledges them all: one frame instead of one per message.
//! A delivery still in flight holds the frontier back, so nothing is acked before the
//! engine settled it. Deliveries done above a long-held gap are acked one by one
//! ([`AckWindow::take_stragglers`]), so a slow transaction cannot use up the prefetch.

use std::collections::BTreeMap;

/// How a delivery was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    /// To be acked (by a multiple ack, or alone as a straggler).
    Ack,
    /// Already answered on the wire (nack, reject, or an individual ack).
    Answered,
}

/// The settled deliveries of one channel, not yet covered by a multiple ack.
#[derive(Debug, Default)]
pub(crate) struct AckWindow {
    /// Every tag up to here is done and answered.
    frontier: u64,
    /// Done tags above the frontier.
    done: BTreeMap<u64, Done>,
    /// Tags waiting for an ack (not answered yet).
    pending: usize,
}

impl AckWindow {
    /// `tag` was settled with an ack, to be sent coalesced.
    pub(crate) fn ack(&mut self, tag: u64) {
        if tag > self.frontier && self.done.insert(tag, Done::Ack).is_none() {
            self.pending += 1;
        }
    }

    /// `tag` was answered on the wire already (nack or reject).
    pub(crate) fn answered(&mut self, tag: u64) {
        if tag > self.frontier && self.done.insert(tag, Done::Answered) == Some(Done::Ack) {
            self.pending -= 1;
        }
    }

    /// Acks waiting to be sent.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Advances the frontier over done tags; returns the tag to ack with `multiple` when
    /// that covers at least one delivery waiting for an ack: the highest such tag, never an
    /// answered one (acking a tag already acked alone or nacked is an unknown delivery tag
    /// to the broker, which closes the channel and requeues everything unacked on it).
    pub(crate) fn take_multiple(&mut self) -> Option<u64> {
        let mut covered = 0;
        let mut highest = None;
        while let Some(entry) = self.done.first_entry() {
            if *entry.key() != self.frontier + 1 {
                break;
            }
            let tag = *entry.key();
            if entry.remove() == Done::Ack {
                covered += 1;
                highest = Some(tag);
            }
            self.frontier += 1;
        }
        self.pending -= covered;
        highest
    }

    /// The tags waiting above a gap, to ack one by one; they count as answered after.
    pub(crate) fn take_stragglers(&mut self) -> Vec<u64> {
        let tags: Vec<u64> = self
            .done
            .iter_mut()
            .filter(|(_, done)| **done == Done::Ack)
            .map(|(tag, done)| {
                *done = Done::Answered;
                *tag
            })
            .collect();
        self.pending -= tags.len();
        tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contiguous_run_is_acked_with_one_multiple_ack() {
        let mut w = AckWindow::default();
        for tag in [3, 1, 2, 4] {
            w.ack(tag);
        }
        assert_eq!(w.pending(), 4);
        assert_eq!(w.take_multiple(), Some(4));
        assert_eq!(w.pending(), 0);
        assert_eq!(w.take_multiple(), None, "nothing new");
    }

    #[test]
    fn an_unsettled_delivery_holds_the_frontier() {
        let mut w = AckWindow::default();
        w.ack(1);
        w.ack(3);
        assert_eq!(w.take_multiple(), Some(1), "2 is still in flight");
        w.ack(2);
        assert_eq!(w.take_multiple(), Some(3));
    }

    #[test]
    fn nacked_deliveries_let_the_frontier_pass_without_an_ack() {
        let mut w = AckWindow::default();
        w.answered(1);
        assert_eq!(w.take_multiple(), None, "nothing to ack");
        w.ack(2);
        w.answered(3);
        w.ack(4);
        assert_eq!(w.take_multiple(), Some(4));
    }

    #[test]
    fn stragglers_above_a_gap_are_acked_alone_once() {
        let mut w = AckWindow::default();
        w.ack(2);
        w.ack(3);
        assert_eq!(w.take_multiple(), None);
        assert_eq!(w.take_stragglers(), [2, 3]);
        assert_eq!(w.pending(), 0);
        assert!(w.take_stragglers().is_empty());
        w.ack(1);
        assert_eq!(
            w.take_multiple(),
            Some(1),
            "covers 1 only: 2 and 3 were acked alone, and acking them again would close the channel"
        );
        w.ack(4);
        assert_eq!(w.take_multiple(), Some(4));
    }

    #[test]
    fn the_multiple_ack_never_names_an_answered_tag() {
        let mut w = AckWindow::default();
        w.ack(1);
        w.answered(2);
        assert_eq!(w.take_multiple(), Some(1), "2 was nacked: not acked again");
        assert_eq!(w.take_multiple(), None);
    }
}

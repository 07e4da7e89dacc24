//! The consume loop's spans: the loop itself, each sampled batch, each traced
//! transaction (see [`telemetry`](crate::telemetry) for the tree and the sampling).

use std::collections::VecDeque;
use std::sync::Arc;

use opentelemetry::KeyValue;

use crate::context::Context;
use crate::lifecycle::TransactionOutcome;
use crate::policy::{FetchPolicy, LoopPolicy};
use crate::telemetry::names;
use crate::telemetry::propagation;
use crate::telemetry::trace::{
    ActiveSpan, Fields, MessageId, Parent, SpanIds, Spans, count, current,
};
use crate::transaction::Transaction;

/// One worker's loop, with the policy in force, under the current span (the task run).
pub(super) fn loop_span<'a>(
    spans: &'a Spans,
    cx: &Context,
    policy: &LoopPolicy,
    fetch: &FetchPolicy,
) -> ActiveSpan<'a> {
    let mut attributes = input_attributes(cx);
    attributes.extend([
        KeyValue::new(names::WORKER, count(cx.worker())),
        KeyValue::new(names::CONSUMER_GROUP, cx.task_name().to_owned()),
        KeyValue::new(names::CONCURRENCY, count(policy.concurrency)),
        KeyValue::new(names::POLICY_BATCH_SIZE, count(fetch.batch_size)),
        KeyValue::new(names::STREAMING, policy.streaming),
    ]);
    let fields = Fields::Attributes(attributes);
    match current() {
        Some(parent) => ActiveSpan::child(spans, "consume_loop", &parent, fields),
        None => ActiveSpan::start(
            spans,
            "consume_loop",
            SpanIds::new_trace(),
            Parent::Root,
            fields,
        ),
    }
}

/// The attributes every transaction span of a worker carries.
pub(super) fn shared_attributes(cx: &Context) -> Arc<[KeyValue]> {
    input_attributes(cx).into()
}

/// The task, and the system and destination of its input when it has one.
fn input_attributes(cx: &Context) -> Vec<KeyValue> {
    let input = [
        (names::SYSTEM, cx.input_system()),
        (names::DESTINATION, cx.input_destination()),
    ];
    std::iter::once(KeyValue::new(names::TASK, cx.task_name().to_owned()))
        .chain(
            input.into_iter().filter_map(|(name, value)| {
                value.map(|value| KeyValue::new(name, value.to_owned()))
            }),
        )
        .collect()
}

/// A fetched batch of `size`, under the loop's span; it ends when its last transaction
/// has started ([`OpenBatches`]).
pub(super) fn batch_span<'a>(spans: &'a Spans, parent: &SpanIds, size: usize) -> ActiveSpan<'a> {
    ActiveSpan::child(spans, "batch", parent, Fields::Batch { size })
}

/// The batches whose transactions are still buffered, oldest first, each with its span
/// (when sampled) and its transactions not started yet (kept only while the loop is
/// traced). The buffer is first in, first
/// out, so the transaction at its front belongs to the oldest batch: no per-transaction
/// handle on its batch is needed.
#[derive(Default)]
pub(super) struct OpenBatches<'a> {
    open: VecDeque<(Option<ActiveSpan<'a>>, usize)>,
}

impl<'a> OpenBatches<'a> {
    /// A batch of `size` transactions was buffered.
    pub(super) fn push(&mut self, span: Option<ActiveSpan<'a>>, size: usize) {
        if size > 0 {
            self.open.push_back((span, size));
        }
    }

    /// The transaction at the front of the buffer starts: `start` gets its batch's span,
    /// which ends once its last transaction has started.
    pub(super) fn start_next<R>(&mut self, start: impl FnOnce(Option<&ActiveSpan<'a>>) -> R) -> R {
        let Some((span, left)) = self.open.front_mut() else {
            return start(None);
        };
        let started = start(span.as_ref());
        *left -= 1;
        if *left == 0 {
            self.open.pop_front();
        }
        started
    }

    /// The buffer was emptied without starting them: their batches' spans end.
    pub(super) fn clear(&mut self) {
        self.open.clear();
    }
}

/// The span of one transaction: a child of its `batch`, or of the remote parent its
/// `traceparent` names (then linked to the batch). None when neither is sampled, so an
/// untraced transaction makes no span at all.
pub(super) fn transaction_span<'a>(
    spans: &'a Spans,
    shared: &Arc<[KeyValue]>,
    tx: &Transaction,
    batch: Option<&ActiveSpan<'_>>,
    operation: &'static str,
) -> Option<ActiveSpan<'a>> {
    let remote = propagation::remote_parent(tx);
    let (ids, parent, link) = match (&remote, batch) {
        (Some(remote), _) if !remote.is_sampled() => return None,
        (Some(remote), batch) => (
            SpanIds::child_of_remote(remote),
            Parent::Remote(remote.span_id()),
            batch.map(|b| Box::new(*b.ids())),
        ),
        (None, Some(batch)) => (
            batch.ids().child(),
            Parent::Local(batch.ids().span_id),
            None,
        ),
        (None, None) => return None,
    };
    let fields = Fields::Transaction {
        shared: shared.clone(),
        message_id: MessageId::new(tx.id()),
        operation,
        settlement: None,
        batch: link,
    };
    Some(ActiveSpan::start(spans, "transaction", ids, parent, fields))
}

/// Records how a traced transaction ended.
pub(crate) fn record_outcome(span: &mut ActiveSpan<'_>, outcome: &TransactionOutcome) {
    if let Fields::Transaction { settlement, .. } = span.fields_mut() {
        *settlement = Some(outcome.settlement.as_str());
    }
    if let Some(failure) = &outcome.failure {
        span.fail(failure.category);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::telemetry::trace::{SpanBatch, SpanSink};

    /// Keeps the names of the spans it gets.
    #[derive(Default)]
    struct Names(Mutex<Vec<&'static str>>);

    impl SpanSink for Arc<Names> {
        fn accept(&self, batch: &mut SpanBatch) {
            let names = batch.spans.iter().map(|s| s.name);
            self.0.lock().unwrap().extend(names);
            batch.clear();
        }
    }

    #[test]
    fn a_batch_span_ends_when_its_last_transaction_starts() {
        let names = Arc::new(Names::default());
        let spans = Spans::new(names.clone());
        let root = SpanIds::new_trace();
        let ended = || names.0.lock().unwrap().len();
        let mut batches = OpenBatches::default();
        batches.push(Some(batch_span(&spans, &root, 2)), 2);
        batches.push(None, 1);
        batches.push(Some(batch_span(&spans, &root, 1)), 1);

        let parents: Vec<Option<SpanIds>> = (0..4)
            .map(|_| batches.start_next(|batch| batch.map(|b| *b.ids())))
            .collect();
        assert!(parents[0].is_some() && parents[0] == parents[1]);
        assert_eq!(parents[2], None, "the unsampled batch has no span");
        assert!(parents[3].is_some() && parents[3] != parents[0]);
        assert_eq!(ended(), 2, "both sampled batches ended once started");

        batches.push(Some(batch_span(&spans, &root, 3)), 3);
        batches.start_next(|_| ());
        assert_eq!(ended(), 2);
        batches.clear();
        assert_eq!(ended(), 3, "a batch requeued unstarted ends too");
    }
}

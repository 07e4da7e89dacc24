//! The consume loop's spans: the loop itself, each sampled batch, each traced
//! transaction (see [`telemetry`](crate::telemetry) for the tree and the sampling).

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
/// has started.
pub(super) fn batch_span<'a>(spans: &'a Spans, parent: &SpanIds, size: usize) -> ActiveSpan<'a> {
    ActiveSpan::child(spans, "batch", parent, Fields::Batch { size })
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

//! The consume loop's spans: the loop itself, each sampled batch, each traced
//! transaction (see [`telemetry`](crate::telemetry) for the tree and the sampling).

use opentelemetry::trace::TraceContextExt as _;
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::context::Context;
use crate::envelope::record_error;
use crate::lifecycle::TransactionOutcome;
use crate::policy::{FetchPolicy, LoopPolicy};
use crate::telemetry::{names, propagation};
use crate::transaction::Transaction;

/// One worker's loop, with the policy in force.
pub(super) fn loop_span(cx: &Context, policy: &LoopPolicy, fetch: &FetchPolicy) -> Span {
    tracing::debug_span!(
        "consume_loop",
        { names::TASK } = cx.task_name(),
        { names::WORKER } = count(cx.worker()),
        { names::SYSTEM } = cx.input_system(),
        { names::DESTINATION } = cx.input_destination(),
        { names::CONSUMER_GROUP } = cx.task_name(),
        { names::CONCURRENCY } = count(policy.concurrency),
        { names::POLICY_BATCH_SIZE } = count(fetch.batch_size),
        { names::STREAMING } = policy.streaming,
    )
}

/// A fetched batch, under the current (loop) span, or none when it is not sampled.
pub(super) fn batch_span(sampled: bool, size: usize) -> Span {
    if sampled {
        tracing::debug_span!("batch", { names::BATCH_SIZE } = count(size))
    } else {
        Span::none()
    }
}

/// The span of one transaction: a child of its `batch`, or of the remote parent its
/// `traceparent` names (then linked to the batch). None when neither is sampled, so an
/// untraced transaction makes no span at all.
pub(super) fn transaction_span(
    cx: &Context,
    tx: &Transaction,
    batch: &Span,
    operation: &str,
) -> Span {
    // A static check first: with no subscriber wanting DEBUG spans, nothing is parsed.
    if !tracing::level_enabled!(Level::DEBUG) {
        return Span::none();
    }
    let remote = propagation::remote_parent(tx);
    let traced = remote
        .as_ref()
        .map_or(!batch.is_disabled(), |r| r.is_sampled());
    if !traced {
        return Span::none();
    }
    let span = tracing::debug_span!(
        parent: batch,
        "transaction",
        { names::TASK } = cx.task_name(),
        { names::MESSAGE_ID } = tx.id(),
        { names::OPERATION_TYPE } = operation,
        { names::SYSTEM } = cx.input_system(),
        { names::DESTINATION } = cx.input_destination(),
        { names::SETTLEMENT } = tracing::field::Empty,
        { names::STATUS } = tracing::field::Empty,
        { names::ERROR_TYPE } = tracing::field::Empty,
        { names::ERROR_CATEGORY } = tracing::field::Empty,
    );
    if let Some(remote) = remote {
        propagation::continue_remote(&span, remote);
        if !batch.is_disabled() {
            span.add_link(batch.context().span().span_context().clone());
        }
    }
    span
}

/// Records how a traced transaction ended.
pub(crate) fn record_outcome(span: &Span, outcome: &TransactionOutcome) {
    if span.is_disabled() {
        return;
    }
    span.record(names::SETTLEMENT, outcome.settlement.as_str());
    if let Some(failure) = &outcome.failure {
        record_error(span, failure.category);
    }
}

/// A count as a span attribute: OpenTelemetry integers are `i64` (`tracing-opentelemetry`
/// turns unsigned values into strings).
pub(crate) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

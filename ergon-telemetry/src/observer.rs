//! [`SpanObserver`]: the engine's observations ([`ergon_core::observe`]) recorded as spans.
//!
//! Each thing watched gets a [`Scope`] of six words: its trace id (two), its span id, its
//! start tick, and two words its kind uses —
//!
//! * a batch, a loop: none;
//! * a transaction: its parent's span id, and the batch it came in — the same id twice
//!   when the batch is its parent; for the remote parent its `traceparent` names, that
//!   parent and the batch, linked (`0`: none; span ids are never `0`);
//! * a step: the span id of its attempt under way, or of its first when that one is
//!   recorded with the step (`0` once a retry gave it a span of its own); and the tick its
//!   attempt under way started at (`0` for the first: it starts with its step), then the
//!   tick its last attempt ended at;
//! * an attempt: none (the first starts with its step).
//!
//! so recording allocates nothing per step, and a transaction's span is built when it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ergon_core::observe::{AttemptEnd, LoopInfo, Observer, Scope, StepInfo, TransactionEnd};
use ergon_core::sync::lock;
use ergon_core::telemetry::names;
use ergon_core::{Category, Transaction};
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanId;

use crate::clock::Tick;
use crate::ids::{SpanIds, new_span_id};
use crate::message_id::MessageId;
use crate::record::{Fields, Parent, SpanRecord, count};
use crate::sink::Spans;
use crate::step::StepRecord;
use crate::{propagation, sampling};

/// Records what the engine reports as ergon's spans, into [`Spans`]:
///
/// ```text
/// task run (runner) ─▶ consume_loop ─┬─▶ fetch ─▶ attempt
///                                    └─▶ batch ─▶ transaction ─▶ step ─▶ attempt
/// ```
///
/// A batch is traced with the probability [`sampling::ratio`]; a transaction that
/// arrives with a `traceparent` continues that trace instead (its span's parent is the
/// remote one, linked to its batch) and follows its sampled flag. A transaction's
/// settlement is its span's `ergon.settlement` attribute.
pub struct SpanObserver {
    spans: Spans,
    /// The loops running, by their span id.
    loops: Mutex<HashMap<u64, RunningLoop>>,
}

/// What a running loop's spans need when they end.
struct RunningLoop {
    parent: Parent,
    /// The loop span's attributes.
    attributes: Vec<KeyValue>,
    /// The attributes each of its transactions' spans starts with.
    shared: Arc<[KeyValue]>,
}

impl SpanObserver {
    /// Spans recorded into `spans`.
    pub fn new(spans: Spans) -> SpanObserver {
        SpanObserver {
            spans,
            loops: Mutex::new(HashMap::new()),
        }
    }

    /// The shared transaction attributes of the loop with span id `id` (asked once per
    /// [`SpanBatch`](crate::SpanBatch) that holds its transactions).
    fn shared(&self, id: u64) -> Arc<[KeyValue]> {
        lock(&self.loops)
            .get(&id)
            .map_or_else(|| Arc::from([]), |running| running.shared.clone())
    }
}

impl std::fmt::Debug for SpanObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanObserver").finish_non_exhaustive()
    }
}

/// A span id as a scope word, and back.
fn word(id: SpanId) -> u64 {
    u64::from_be_bytes(id.to_bytes())
}

fn span_id(word: u64) -> SpanId {
    SpanId::from(word)
}

impl Observer for SpanObserver {
    fn loop_started(&self, parent: Option<&Scope>, info: &LoopInfo<'_>) -> Option<Scope> {
        let (ids, parent) = match parent {
            Some(parent) => {
                let parent = SpanIds::of_scope(parent);
                (parent.child(), Parent::Local(parent.span_id))
            }
            None => (SpanIds::new_trace(), Parent::Root),
        };
        let input = [
            (names::SYSTEM, info.system),
            (names::DESTINATION, info.destination),
        ];
        let shared: Vec<KeyValue> =
            std::iter::once(KeyValue::new(names::TASK, info.task.to_owned()))
                .chain(input.into_iter().filter_map(|(name, value)| {
                    value.map(|value| KeyValue::new(name, value.to_owned()))
                }))
                .collect();
        let mut attributes = shared.clone();
        attributes.extend([
            KeyValue::new(names::WORKER, count(info.worker)),
            KeyValue::new(names::CONSUMER_GROUP, info.task.to_owned()),
            KeyValue::new(names::CONCURRENCY, count(info.concurrency)),
            KeyValue::new(names::POLICY_BATCH_SIZE, count(info.batch_size)),
            KeyValue::new(names::STREAMING, info.streaming),
        ]);
        let running = RunningLoop {
            parent,
            attributes,
            shared: shared.into(),
        };
        lock(&self.loops).insert(word(ids.span_id), running);
        Some(ids.scope(Tick::now(), [0, 0]))
    }

    fn loop_ended(&self, scope: Scope) {
        let ids = SpanIds::of_scope(&scope);
        let Some(running) = lock(&self.loops).remove(&word(ids.span_id)) else {
            return;
        };
        self.spans.record(SpanRecord {
            ids,
            parent: running.parent,
            name: "consume_loop",
            start: Tick::of_scope(&scope),
            end: Tick::now(),
            fields: Fields::Attributes(running.attributes),
            error: None,
        });
    }

    fn watch_batch(&self) -> bool {
        sampling::sample_batch()
    }

    fn batch_started(&self, parent: &Scope, _size: usize) -> Option<Scope> {
        Some(SpanIds::of_scope(parent).child().scope(Tick::now(), [0, 0]))
    }

    fn batch_ended(&self, scope: Scope, parent: &Scope, size: usize) {
        self.spans.record(SpanRecord {
            ids: SpanIds::of_scope(&scope),
            parent: Parent::Local(SpanIds::of_scope(parent).span_id),
            name: "batch",
            start: Tick::of_scope(&scope),
            end: Tick::now(),
            fields: Fields::Batch { size },
            error: None,
        });
    }

    fn transaction_started(
        &self,
        tx: &Transaction,
        batch: Option<&Scope>,
        _parent: &Scope,
    ) -> Option<Scope> {
        let batch = batch.map(SpanIds::of_scope);
        let (ids, parent, link) = match (propagation::remote_parent(tx), batch) {
            (Some(remote), _) if !remote.is_sampled() => return None,
            (Some(remote), batch) => (
                SpanIds::child_of_remote(&remote),
                remote.span_id(),
                batch.map_or(0, |batch| word(batch.span_id)),
            ),
            (None, Some(batch)) => (batch.child(), batch.span_id, word(batch.span_id)),
            (None, None) => return None,
        };
        Some(ids.scope(Tick::now(), [word(parent), link]))
    }

    fn transaction_ended(&self, scope: Scope, end: &TransactionEnd<'_>) {
        let ids = SpanIds::of_scope(&scope);
        let [.., parent, batch] = scope.words();
        let run = SpanIds::of_scope(end.parent);
        let (parent, link) = if parent == batch {
            (Parent::Local(span_id(parent)), 0)
        } else {
            (Parent::Remote(span_id(parent)), batch)
        };
        let batch = (link != 0).then(|| {
            Box::new(SpanIds {
                trace_id: run.trace_id,
                span_id: span_id(link),
            })
        });
        let loop_id = word(run.span_id);
        let span = SpanRecord {
            ids,
            parent,
            name: "transaction",
            start: Tick::of_scope(&scope),
            end: Tick::now(),
            fields: Fields::Transaction {
                loop_id,
                message_id: MessageId::new(end.tx.id()),
                operation: end.operation,
                settlement: end.settlement,
                batch,
            },
            error: end.error,
        };
        self.spans
            .record_transaction(span, loop_id, || self.shared(loop_id));
    }

    fn step_started(&self, parent: &Scope, _step: &StepInfo) -> Option<Scope> {
        Some(SpanIds::of_scope(parent).child().scope(Tick::now(), [0, 0]))
    }

    fn attempt_started(&self, step: &mut Scope, number: u32) -> Scope {
        let ids = SpanIds::of_scope(step);
        // The first is recorded with its step unless a retry follows, and starts with it.
        let start = if number == 1 {
            Tick::of_scope(step)
        } else {
            Tick::now()
        };
        let attempt = SpanIds {
            trace_id: ids.trace_id,
            span_id: new_span_id(),
        };
        let words = step.words_mut();
        words[4] = word(attempt.span_id);
        words[5] = if number == 1 { 0 } else { start.raw() };
        attempt.scope(start, [0, 0])
    }

    fn attempt_ended(&self, step: &mut Scope, end: &AttemptEnd) {
        let now = Tick::now();
        let [.., attempt, started] = step.words();
        step.words_mut()[5] = now.raw();
        if end.number == 1 && !end.retrying {
            return;
        }
        // A later attempt, or a retried first one: a span of its own.
        step.words_mut()[4] = 0;
        let ids = SpanIds::of_scope(step);
        self.spans.record(SpanRecord {
            ids: SpanIds {
                trace_id: ids.trace_id,
                span_id: span_id(attempt),
            },
            parent: Parent::Local(ids.span_id),
            name: "attempt",
            start: Tick::from_raw(started).unwrap_or_else(|| Tick::of_scope(step)),
            end: now,
            fields: Fields::Attempt { number: end.number },
            error: end.error,
        });
    }

    fn step_ended(&self, scope: Scope, parent: &Scope, step: &StepInfo, error: Option<Category>) {
        let [.., first, ended] = scope.words();
        // The step ends with its last attempt, or now when cut off before one ended.
        let end = Tick::from_raw(ended).unwrap_or_else(Tick::now);
        self.spans.record_step(StepRecord::new(
            SpanIds::of_scope(&scope),
            SpanIds::of_scope(parent).span_id,
            step,
            (Tick::of_scope(&scope), end),
            (first != 0).then(|| span_id(first)),
            error,
        ));
    }

    fn outbound(&self, current: &Scope, outbound: &[Transaction]) -> Option<Vec<Transaction>> {
        Some(propagation::inject(&SpanIds::of_scope(current), outbound))
    }

    fn poll_started(&self) {
        self.spans.poll_started();
    }

    fn poll_ended(&self) {
        self.spans.poll_ended();
    }
}

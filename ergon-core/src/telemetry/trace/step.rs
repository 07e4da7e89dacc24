//! A step's span, kept inline in the step's future and recorded compactly: a
//! transaction's steps are most of its spans, and a box and a full [`SpanRecord`] for
//! each would be an allocation and twice the bytes per step. Its first attempt is
//! recorded with it unless a retry follows.

use std::num::NonZeroU32;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};

use super::clock::Tick;
use super::ids::SpanIds;
use super::record::{Fields, Parent, SpanRecord};
use super::sink::Spans;
use super::span::Traced;
use crate::error::Category;
use crate::policy::RetryPolicy;

/// A finished step, as compact as the hot path wants it ([`StepRecord::to_span_record`]
/// makes the full record at export).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepRecord {
    /// Its trace, as bytes (a `u128` would align the record to 16 bytes).
    trace_id: [u8; 16],
    span_id: SpanId,
    parent: SpanId,
    /// Its first attempt, recorded with it; `INVALID` when that attempt has its own.
    attempt: SpanId,
    start: Tick,
    end: Tick,
    name: &'static str,
    timeout_ms: u64,
    max_attempts: u32,
    fetch_size: Option<NonZeroU32>,
    error: Option<Category>,
}

impl StepRecord {
    /// The full record of this step (its first attempt, when recorded with it, comes out
    /// of [`SpanRecord::inline_attempt`]).
    pub fn to_span_record(&self) -> SpanRecord {
        SpanRecord {
            ids: self.ids(),
            parent: Parent::Local(self.parent),
            name: self.name,
            start: self.start,
            end: self.end,
            fields: Fields::Step {
                max_attempts: self.max_attempts,
                timeout: Duration::from_millis(self.timeout_ms),
                fetch_size: self.fetch_size.map(|n| n.get() as usize),
                attempt: (self.attempt != SpanId::INVALID).then_some(self.attempt),
            },
            error: self.error,
        }
    }

    fn ids(&self) -> SpanIds {
        SpanIds {
            trace_id: TraceId::from_bytes(self.trace_id),
            span_id: self.span_id,
        }
    }
}

/// The span of a step being run; it ends, and goes to its sink, when dropped (a step cut
/// off by a budget or a drain still ends its span) or at [`StepSpan::end_at`].
#[derive(Debug)]
pub struct StepSpan<'a> {
    spans: &'a Spans,
    record: StepRecord,
    ended: bool,
}

impl<'a> StepSpan<'a> {
    /// Starts the span of step `name` under `traced`, now, with `policy` in force (and,
    /// for the fetch step, the transactions asked for).
    pub fn start(
        traced: Traced<'a>,
        name: &'static str,
        policy: &RetryPolicy,
        fetch_size: Option<usize>,
    ) -> StepSpan<'a> {
        let start = Tick::now();
        StepSpan {
            spans: traced.spans,
            record: StepRecord {
                trace_id: traced.parent.trace_id.to_bytes(),
                span_id: traced.parent.child().span_id,
                parent: traced.parent.span_id,
                attempt: SpanId::INVALID,
                start,
                end: start,
                name,
                timeout_ms: u64::try_from(policy.timeout.as_millis()).unwrap_or(u64::MAX),
                max_attempts: policy.max_attempts,
                fetch_size: fetch_size
                    .and_then(|n| NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX))),
                error: None,
            },
            ended: false,
        }
    }

    /// Where its spans go.
    pub fn spans(&self) -> &'a Spans {
        self.spans
    }

    /// Its ids.
    pub fn ids(&self) -> SpanIds {
        self.record.ids()
    }

    /// When it started.
    pub fn started(&self) -> Tick {
        self.record.start
    }

    /// Marks it failed with `category`.
    pub fn fail(&mut self, category: Category) {
        self.record.error = Some(category);
    }

    /// Records its first attempt, `id`, with it (`None`: that attempt has a span of its
    /// own after all, because a retry followed).
    pub fn set_inline_attempt(&mut self, id: Option<SpanId>) {
        self.record.attempt = id.unwrap_or(SpanId::INVALID);
    }

    /// Ends it at `end` (the tick its last attempt ended at).
    pub fn end_at(mut self, end: Tick) {
        self.finish(end);
    }

    fn finish(&mut self, end: Tick) {
        self.ended = true;
        self.record.end = end;
        self.spans.record_step(self.record);
    }
}

impl Drop for StepSpan<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.finish(Tick::now());
        }
    }
}

//! A step's span, recorded compactly: a transaction's steps are most of its spans, and a
//! full [`SpanRecord`] for each would be twice the bytes per step. Its first attempt is
//! recorded with it unless a retry follows.

use std::num::NonZeroU32;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};

use ergon_core::Category;
use ergon_core::observe::StepInfo;

use super::clock::Tick;
use super::ids::SpanIds;
use super::record::{Fields, Parent, SpanRecord};

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
    /// The step `info`, `ids`, under the span `parent`, from `start` to `end`, with its
    /// first attempt recorded with it when `attempt` names it, failed with `error` if it
    /// failed.
    pub fn new(
        ids: SpanIds,
        parent: SpanId,
        info: &StepInfo,
        (start, end): (Tick, Tick),
        attempt: Option<SpanId>,
        error: Option<Category>,
    ) -> StepRecord {
        StepRecord {
            trace_id: ids.trace_id.to_bytes(),
            span_id: ids.span_id,
            parent,
            attempt: attempt.unwrap_or(SpanId::INVALID),
            start,
            end,
            name: info.name,
            timeout_ms: u64::try_from(info.timeout.as_millis()).unwrap_or(u64::MAX),
            max_attempts: info.max_attempts,
            fetch_size: info
                .fetch_size
                .and_then(|n| NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX))),
            error,
        }
    }

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

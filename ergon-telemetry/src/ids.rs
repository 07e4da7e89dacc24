//! Trace and span ids of ergon's spans.

use ergon_core::observe::Scope;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use crate::clock::Tick;

/// The identity of a recorded span: its trace and its own id. Every recorded span is
/// sampled (an unsampled transaction records none). A remote parent's `tracestate`
/// travels in transaction metadata, which outbound transactions inherit, not here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanIds {
    /// The trace.
    pub trace_id: TraceId,
    /// This span.
    pub span_id: SpanId,
}

impl SpanIds {
    /// The first span of a new trace.
    pub fn new_trace() -> SpanIds {
        SpanIds {
            trace_id: TraceId::from(fastrand::u128(1..)),
            span_id: new_span_id(),
        }
    }

    /// A new span in the trace of `self`.
    #[inline]
    pub fn child(&self) -> SpanIds {
        SpanIds {
            trace_id: self.trace_id,
            span_id: new_span_id(),
        }
    }

    /// A new span whose parent is the remote `parent`, in its trace.
    pub fn child_of_remote(parent: &SpanContext) -> SpanIds {
        SpanIds {
            trace_id: parent.trace_id(),
            span_id: new_span_id(),
        }
    }

    /// The span a scope of ergon-telemetry's names (its first three words).
    pub fn of_scope(scope: &Scope) -> SpanIds {
        let [high, low, span, ..] = scope.words();
        SpanIds {
            trace_id: TraceId::from((u128::from(high) << 64) | u128::from(low)),
            span_id: SpanId::from(span),
        }
    }

    /// A scope naming this span, started at `start`, with two more words for its kind of
    /// span to use (a transaction's parent and batch, a step's first attempt and end).
    pub fn scope(&self, start: Tick, extra: [u64; 2]) -> Scope {
        let trace = u128::from_be_bytes(self.trace_id.to_bytes());
        let span = u64::from_be_bytes(self.span_id.to_bytes());
        #[allow(
            clippy::cast_possible_truncation,
            reason = "the two halves of the trace id"
        )]
        let (high, low) = ((trace >> 64) as u64, trace as u64);
        Scope::new([high, low, span, start.raw(), extra[0], extra[1]])
    }

    /// As an OpenTelemetry span context (sampled, local).
    pub fn span_context(&self) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            self.span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        )
    }
}

/// A new span id, never invalid (zero).
#[inline]
pub(crate) fn new_span_id() -> SpanId {
    SpanId::from(fastrand::u64(1..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_names_its_span() {
        let ids = SpanIds::new_trace();
        let start = Tick::now();
        let scope = ids.scope(start, [7, 9]);
        assert_eq!(SpanIds::of_scope(&scope), ids);
        assert_eq!(Tick::of_scope(&scope), start);
        assert_eq!(&scope.words()[4..], [7, 9]);
    }
}

//! Trace and span ids of ergon's spans.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

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

#[inline]
fn new_span_id() -> SpanId {
    SpanId::from(fastrand::u64(1..))
}

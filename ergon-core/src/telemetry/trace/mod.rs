//! ergon's own spans: recorded by the engine in a few nanoseconds each, exported by the
//! runner as OpenTelemetry spans.
//!
//! Not `tracing` spans: a `tracing` span through `tracing-opentelemetry` costs about a
//! microsecond (registry slots, extensions, an SDK span built and ended), and a traced
//! transaction makes five — several times the cost of the transaction itself. Here a
//! span is two clock ticks, a pair of ids and typed fields, staged per thread and turned
//! into OpenTelemetry attributes by the exporter, off the hot path:
//!
//! * a transaction, batch, loop or task run is an [`ActiveSpan`] (its [`SpanRecord`] boxed,
//!   so that an untraced transaction's futures stay small);
//! * a step is a [`StepSpan`], inline in the step's future, ending as a compact
//!   [`StepRecord`]; its first attempt is recorded with it unless a retry follows, and
//!   later attempts are spans of their own.
//!
//! `tracing` stays the way in and out: the sink is found in the current subscriber
//! ([`SpanLayer`]), log lines and a user's own `tracing` spans take the current ergon
//! span as their parent ([`current`]).
//!
//! ```text
//! ActiveSpan / StepSpan ─end─▶ SpanRecord / StepRecord ─▶ Spans::record* ─(staged per loop
//!   poll, SpanBatch)─▶ SpanSink (the runner: SpanData ─▶ batch processor ─▶ OTLP)
//! ```

mod clock;
mod ids;
mod message_id;
mod record;
mod sink;
mod span;
mod step;

pub use clock::Tick;
pub use ids::SpanIds;
pub use message_id::MessageId;
pub use record::{Fields, Parent, SpanRecord, count};
pub use sink::{SpanBatch, SpanLayer, SpanSink, Spans, Staged};
pub use span::{ActiveSpan, InSpan, Traced, current};
pub use step::{StepRecord, StepSpan};

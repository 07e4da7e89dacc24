//! # ergon-telemetry
//!
//! ergon's traces: what the engine reports through its observer interface
//! ([`ergon_core::observe`]) recorded as spans in a few nanoseconds each, and turned into
//! OpenTelemetry data off the engine's threads. ergon-core names no OpenTelemetry type;
//! everything that does lives here (and the export itself in the runner).
//!
//! Not `tracing` spans: a `tracing` span through `tracing-opentelemetry` costs about a
//! microsecond (registry slots, extensions, an SDK span built and ended), and a traced
//! transaction makes five — several times the cost of the transaction itself. Here a
//! span is two clock ticks, a pair of ids and typed fields, staged per thread and turned
//! into OpenTelemetry attributes by the exporter, off the hot path:
//!
//! ```text
//! engine ─observe::Observer events─▶ SpanObserver ─▶ SpanRecord / StepRecord
//!   ─▶ Spans::record* ─(staged per loop poll, SpanBatch)─▶ SpanSink
//!   (the runner: SpanData ─▶ batch processor ─▶ OTLP)
//! ```
//!
//! * [`SpanObserver`]: the observer, and the span tree it records;
//! * [`Spans`], [`SpanSink`], [`SpanBatch`]: where spans go, and [`Spans::layer`], which
//!   installs both in a `tracing` subscriber;
//! * [`SpanRecord`], [`StepRecord`]: finished spans, with their OpenTelemetry attributes;
//! * [`Tick`], [`SpanIds`], [`MessageId`]: clock readings, ids, inline message ids;
//! * [`ActiveSpan`]: a span recorded by hand (the runner's task run);
//! * [`propagation`]: W3C trace context in and out of transactions; [`sampling`]: the
//!   share of batches traced.
//!
//! `tracing` stays the way in and out: the observer and the sink are found in the
//! current subscriber, and log lines and a user's own `tracing` spans take the engine's
//! current scope ([`ergon_core::observe::current`], read with [`SpanIds::of_scope`]) as
//! their parent.

mod clock;
mod ids;
mod message_id;
mod observer;
pub mod propagation;
mod record;
pub mod sampling;
mod sink;
mod span;
mod step;

pub use clock::Tick;
pub use ids::SpanIds;
pub use message_id::MessageId;
pub use observer::SpanObserver;
pub use record::{Fields, Parent, SpanRecord, count};
pub use sink::{SpanBatch, SpanLayer, SpanSink, Spans};
pub use span::ActiveSpan;
pub use step::StepRecord;

//! Telemetry: the names, the switches and the trace context that the engines use.
//!
//! ergon-core only *emits*: spans into the [`trace`] sink of the current `tracing`
//! subscriber (none without one: then they cost one lookup per worker), counters and
//! histograms into each worker's [`WorkerStats`](crate::runner::WorkerStats). The runner
//! decides where they go (OTLP, a Prometheus endpoint, logs) and flips the switches here:
//!
//! * [`trace`]: ergon's span recording — why it is not `tracing` spans, and how it meets
//!   `tracing` (log lines, a user's own spans);
//! * [`sampling`]: the share of batches traced, decided once per batch, so that an
//!   unsampled batch creates no span below it at all;
//! * [`timing`]: whether step and transaction durations are measured (two clock
//!   reads per step) — on when something reads the histograms;
//! * [`propagation`]: the W3C `traceparent` read from an inbound transaction and
//!   written into outbound ones, so a trace crosses connectors and processes.
//!
//! The span tree of one worker:
//!
//! ```text
//! task run (runner) ─▶ consume_loop ─┬─▶ fetch ─▶ attempt
//!                                    └─▶ batch ─▶ transaction ─▶ step ─▶ attempt
//! ```
//!
//! (The settlement is an attribute of the transaction span, `ergon.settlement`, not a span:
//! see [`settle`](crate::settle).)
//!
//! A transaction that arrives with a `traceparent` continues that trace instead (its
//! span's parent is the remote one) and keeps a link to its batch.

pub mod histogram;
pub mod names;
pub mod propagation;
pub mod sampling;
pub mod timing;
pub mod trace;

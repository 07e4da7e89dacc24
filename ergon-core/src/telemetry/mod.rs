//! What the engine measures for metrics and logs: attribute names, the timing switch,
//! lock-free histograms. (Spans are not recorded here: the engine reports to an
//! [`Observer`](crate::observe::Observer), and `ergon-telemetry` makes spans of that.)
//!
//! ergon-core only *counts*: counters and histograms go into each worker's
//! [`WorkerStats`](crate::runner::WorkerStats), and the runner decides where they go (OTLP, a
//! Prometheus endpoint, the summary):
//!
//! * [`names`]: attribute and log field names, in one place (OpenTelemetry conventions
//!   where they apply);
//! * [`timing`]: whether step and transaction durations are measured (two clock reads per
//!   step) — on when something reads the histograms;
//! * [`histogram`]: the lock-free histograms those durations go into.

pub mod histogram;
pub mod names;
pub mod timing;

//! Telemetry: span and attribute names. Spans are emitted at DEBUG so that, without a
//! subscriber or exporter asking for them, they cost next to nothing on the hot path.

pub mod names;

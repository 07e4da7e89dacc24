//! W3C trace context on transactions: `traceparent` (and `tracestate`) in metadata.
//!
//! Inbound: [`remote_parent`] reads a transaction's `traceparent`, and the observer makes
//! it the parent of the transaction's span. Outbound: the dispatch step has the observer
//! write the current span's context into every transaction it sends ([`inject`]), so the
//! next task — in this process or another, across RabbitMQ or a file — continues the
//! same trace.

use std::str::FromStr as _;

use ergon_core::Transaction;
use ergon_core::transaction::meta;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use crate::ids::SpanIds;

/// Parses a W3C `traceparent` value (`00-<trace id>-<span id>-<flags>`), as remote.
///
/// ```
/// use ergon_telemetry::propagation::{format_traceparent, parse_traceparent};
/// let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let parsed = parse_traceparent(value, None).unwrap();
/// assert!(parsed.is_sampled() && parsed.is_remote());
/// assert_eq!(format_traceparent(&parsed), value);
/// assert!(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None).is_none());
/// ```
pub fn parse_traceparent(value: &str, state: Option<&str>) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2
        || version == "ff"
        || trace.len() != 32
        || span.len() != 16
        || flags.len() != 2
    {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let state = state
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    let context = SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        state,
    );
    context.is_valid().then_some(context)
}

/// Formats a span context as a `traceparent` value.
pub fn format_traceparent(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// The remote parent a transaction carries, if its `traceparent` is valid.
pub fn remote_parent(tx: &Transaction) -> Option<SpanContext> {
    parse_traceparent(tx.meta(meta::TRACEPARENT)?, tx.meta(meta::TRACESTATE))
}

/// Writes `span`'s context into each transaction as its `traceparent`, so the task that
/// receives them continues the trace. (A `tracestate` they carry is inherited from their
/// parent transaction, with the rest of its trace metadata.)
pub fn inject(span: &SpanIds, transactions: &[Transaction]) -> Vec<Transaction> {
    let parent = format_traceparent(&span.span_context());
    transactions
        .iter()
        .map(|tx| tx.with_meta(meta::TRACEPARENT, parent.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad, None).is_none(), "{bad:?}");
        }
        let unsampled = parse_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            Some("k=v"),
        )
        .unwrap();
        assert!(!unsampled.is_sampled());
        assert_eq!(unsampled.trace_state().header(), "k=v");
    }
}

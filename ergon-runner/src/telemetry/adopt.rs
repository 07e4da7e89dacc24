//! A user's `tracing` spans become children of the ergon span they start in.
//!
//! ergon's spans are not `tracing` spans ([`ergon_telemetry`]), so a span a
//! task opens in `process_transaction` has no `tracing` parent. `tracing-opentelemetry`
//! then takes the current OpenTelemetry context as its parent: [`Attach`] (a layer before
//! it) makes the current ergon span that context while the new span is created, and
//! [`Detach`] (a layer after it) restores the previous one. Nothing happens for spans
//! with a `tracing` parent, or outside ergon's spans.

use std::cell::RefCell;

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{Context, ContextGuard};
use tracing::Subscriber;
use tracing::span::{Attributes, Id};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

thread_local! {
    /// The context [`Attach`] made current for the span being created.
    static ATTACHED: RefCell<Option<ContextGuard>> = const { RefCell::new(None) };
}

/// Makes the current ergon span the OpenTelemetry context of a new root `tracing` span.
pub struct Attach;

/// Restores the context [`Attach`] replaced.
pub struct Detach;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Attach {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, ctx: LayerContext<'_, S>) {
        let unparented = attrs.is_contextual() && ctx.lookup_current().is_none();
        let guard = unparented
            .then(ergon_core::observe::current)
            .flatten()
            .map(|ergon| {
                let ergon = ergon_telemetry::SpanIds::of_scope(&ergon);
                Context::current()
                    .with_remote_span_context(ergon.span_context())
                    .attach()
            });
        ATTACHED.set(guard);
    }
}

impl<S: Subscriber> Layer<S> for Detach {
    fn on_new_span(&self, _: &Attributes<'_>, _: &Id, _: LayerContext<'_, S>) {
        ATTACHED.set(None);
    }
}

//! Log lines: human-readable text by default, JSON on request; inside a traced span each
//! line carries the span's `trace_id` and `span_id`, so a log search leads to the trace.

use std::fmt;
use std::sync::{Arc, OnceLock};

#[cfg(feature = "otlp")]
use opentelemetry::trace::TraceContextExt as _;
use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::config::LogFormat;

/// Formats events as `format` says, with trace ids when the current span has them.
///
/// The ids live in the OpenTelemetry layer's span data, reachable only through the
/// subscriber, which an event being formatted cannot ask for (`tracing` hides it during
/// the call): add [`LineFormat::dispatch_catcher`] to the subscriber so the formatter
/// gets a handle on it.
pub struct LineFormat {
    format: LogFormat,
    text: Format<Full, SystemTime>,
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

/// The layer that hands the subscriber to a [`LineFormat`] when it is registered.
pub struct DispatchCatcher(Arc<OnceLock<WeakDispatch>>);

impl LineFormat {
    /// A formatter for `format`; `ansi` colors text lines (on a terminal).
    pub fn new(format: LogFormat, ansi: bool) -> Self {
        Self {
            format,
            text: Format::default().with_target(false).with_ansi(ansi),
            dispatch: Arc::default(),
        }
    }

    /// The layer to put in the same subscriber, so lines can carry trace ids.
    pub fn dispatch_catcher(&self) -> DispatchCatcher {
        DispatchCatcher(self.dispatch.clone())
    }

    /// The OpenTelemetry ids of the current span, when it has valid ones.
    fn current_trace_ids<S, N>(&self, ctx: &FmtContext<'_, S, N>) -> Option<(String, String)>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        // A user's span (a child of ergon's) first, else the ergon span at work here.
        // (A user's spans have OpenTelemetry ids only when traces are exported.)
        #[cfg(not(feature = "otlp"))]
        let users = {
            let _ = ctx;
            None
        };
        #[cfg(feature = "otlp")]
        let users = ctx.lookup_current().and_then(|span| {
            let dispatch = self.dispatch.get()?.upgrade()?;
            let otel = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
            let context = otel.span().span_context().clone();
            context
                .is_valid()
                .then(|| (context.trace_id(), context.span_id()))
        });
        let (trace_id, span_id) = users.or_else(|| {
            ergon_core::observe::current().map(|scope| {
                let ids = ergon_telemetry::SpanIds::of_scope(&scope);
                (ids.trace_id, ids.span_id)
            })
        })?;
        Some((trace_id.to_string(), span_id.to_string()))
    }
}

impl<S: Subscriber> Layer<S> for DispatchCatcher {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.0.set(subscriber.downgrade());
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = self.current_trace_ids(ctx);
        match self.format {
            LogFormat::Json => write_json(ctx, &mut writer, event, ids.as_ref()),
            LogFormat::Text => match ids {
                None => self.text.format_event(ctx, writer, event),
                Some((trace_id, span_id)) => {
                    let mut line = String::new();
                    self.text.format_event(ctx, Writer::new(&mut line), event)?;
                    let line = line.trim_end_matches('\n');
                    writeln!(writer, "{line} trace_id={trace_id} span_id={span_id}")
                }
            },
        }
    }
}

fn write_json<S, N>(
    ctx: &FmtContext<'_, S, N>,
    writer: &mut Writer<'_>,
    event: &Event<'_>,
    ids: Option<&(String, String)>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let mut timestamp = String::new();
    SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
    let meta = event.metadata();
    let mut line = Map::new();
    line.insert("timestamp".into(), timestamp.into());
    line.insert("level".into(), meta.level().as_str().into());
    line.insert("target".into(), meta.target().into());
    let mut fields = JsonFields(Map::new());
    event.record(&mut fields);
    if let Some(message) = fields.0.remove("message") {
        line.insert("message".into(), message);
    }
    if !fields.0.is_empty() {
        line.insert("fields".into(), Value::Object(fields.0));
    }
    if let Some(span) = ctx.lookup_current() {
        line.insert("span".into(), span.name().into());
    }
    if let Some((trace_id, span_id)) = ids {
        line.insert("trace_id".into(), trace_id.as_str().into());
        line.insert("span_id".into(), span_id.as_str().into());
    }
    writeln!(writer, "{}", Value::Object(line))
}

/// Collects an event's fields as JSON values.
struct JsonFields(Map<String, Value>);

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

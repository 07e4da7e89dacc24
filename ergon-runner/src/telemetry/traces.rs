//! Traces: the OpenTelemetry SDK's tracer provider, exporting by OTLP/HTTP in batches,
//! and the `tracing` layer that turns ergon's spans into OpenTelemetry spans.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanExporter};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

/// The instrumentation scope of ergon's spans.
pub const SCOPE: &str = "ergon";

/// A tracer provider exporting to `endpoint` (the full `/v1/traces` URL) in batches.
///
/// # Errors
///
/// The exporter cannot be built (an invalid endpoint).
pub fn otlp_provider(endpoint: &str, resource: Resource) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_http_client(blocking_client()?)
        .build()
        .map_err(|err| format!("cannot build the OTLP span exporter for {endpoint}: {err}"))?;
    Ok(provider(exporter, resource))
}

/// A tracer provider handing finished spans to `exporter` in batches. Sampling is
/// ergon's own, per batch (see `ergon_core::telemetry::sampling`): the SDK only follows
/// the parent's decision.
pub fn provider(exporter: impl SpanExporter + 'static, resource: Resource) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_resource(resource)
        .build()
}

/// The `tracing` layer for `provider`'s tracer. It is not filtered itself: [`Gate`],
/// a global filter, decides which callsites exist at all (a per-layer filter measured
/// 15 % of the cost of a traced transaction, in its bookkeeping on every enter and exit).
pub fn layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SCOPE))
        // Per-span bookkeeping ergon does not need: each costs time on every span.
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_level(false)
        .with_target(false)
        .with_context_activation(false)
}

/// The global filter of a traced run: every ergon span (they are DEBUG), other crates'
/// spans from INFO, and events up to `events` (the log level; WARN or worse reach the
/// spans as span events). Decided once per callsite.
pub struct Gate {
    /// The most verbose event level let through.
    pub events: LevelFilter,
}

impl Gate {
    fn wants(&self, meta: &Metadata<'_>) -> bool {
        let level = *meta.level();
        if meta.is_span() {
            level <= Level::INFO || (level <= Level::DEBUG && meta.target().starts_with("ergon"))
        } else {
            // The exporter's own chatter must not feed back into what it exports.
            self.events >= level && !meta.target().starts_with("opentelemetry")
        }
    }
}

impl<S: Subscriber> Layer<S> for Gate {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.wants(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _: LayerContext<'_, S>) -> bool {
        self.wants(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG.max(self.events))
    }
}

/// The HTTP client of the OTLP exporters: blocking (they export from their own
/// threads), built here so that its runtime thread starts outside any tokio runtime.
///
/// # Errors
///
/// The client cannot be built.
pub fn blocking_client() -> Result<reqwest::blocking::Client, String> {
    std::thread::spawn(|| reqwest::blocking::Client::builder().build())
        .join()
        .map_err(|_| "building the OTLP HTTP client panicked".to_string())?
        .map_err(|err| format!("cannot build the OTLP HTTP client: {err}"))
}

//! Traces: ergon's span records turned into OpenTelemetry spans and exported by OTLP in
//! batches, with a user's own `tracing` spans through `tracing-opentelemetry` into the
//! same batches.
//!
//! ```text
//! engine threads ─SpanRecord (staged per loop poll)─▶ Collector ─▶ "ergon-spans" thread
//!        ─SpanData─▶ BatchSpanProcessor ─▶ exporter (OTLP/HTTP)
//! user spans (tracing) ─▶ tracing-opentelemetry ─▶ SdkTracerProvider ──┘ (same processor)
//! ```
//!
//! The engine hands finished spans to the [`Collector`] and goes on: building attribute
//! lists, wall-clock times and `SpanData` happens on the collector's own thread.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanEvents, SpanExporter, SpanLinks,
    SpanProcessor,
};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

use ergon_core::sync::lock;
use ergon_telemetry::{SpanBatch, SpanRecord, SpanSink, Spans, StepRecord};

use super::adopt;

/// The instrumentation scope of ergon's spans.
pub const SCOPE: &str = "ergon";

/// Spans waiting for the collector's thread beyond which new ones are dropped (and
/// counted): an exporter that cannot keep up must not grow memory without bound.
const MAX_PENDING: usize = 1 << 18;

/// Pending spans that wake the collector's thread before its next tick.
const WAKE_AT: usize = 16_384;

/// Emptied span vectors kept for reuse.
const MAX_SPARE: usize = 64;

/// How often the collector's thread hands pending spans on when few arrive.
const TICK: Duration = Duration::from_millis(100);

/// A run's trace pipeline: ergon's spans and a user's `tracing` spans, into one batch
/// processor and exporter. [`Traces::shutdown`] exports what is left.
pub struct Traces {
    collector: Arc<Collector>,
    spans: Spans,
    thread: Option<JoinHandle<()>>,
    provider: SdkTracerProvider,
}

impl Traces {
    /// Spans exported by OTLP/HTTP to `endpoint` (the full `/v1/traces` URL).
    ///
    /// # Errors
    ///
    /// The exporter cannot be built (an invalid endpoint).
    pub fn otlp(endpoint: &str, resource: Resource) -> Result<Traces, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .with_http_client(blocking_client()?)
            .build()
            .map_err(|err| format!("cannot build the OTLP span exporter for {endpoint}: {err}"))?;
        Ok(Traces::new(Some(exporter), resource))
    }

    /// Spans exported by `exporter` in batches — or, with none, recorded and dropped
    /// (what the instrumentation alone costs: the `telemetry_spans` benchmark).
    pub fn new<E: SpanExporter + 'static>(exporter: Option<E>, resource: Resource) -> Traces {
        let processor = exporter.map(|exporter| {
            let mut processor = BatchSpanProcessor::builder(exporter).build();
            processor.set_resource(&resource);
            Arc::new(processor)
        });
        let mut provider = SdkTracerProvider::builder()
            // ergon samples per batch (`ergon_telemetry::sampling`); a user's spans
            // follow the ergon span they start in.
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_resource(resource);
        if let Some(processor) = &processor {
            provider = provider.with_span_processor(Shared(processor.clone()));
        }
        let collector = Arc::new(Collector {
            pending: Mutex::new((Vec::new(), 0)),
            spare: Mutex::new(Vec::new()),
            exporting: Mutex::new(()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            processor,
            scope: InstrumentationScope::builder(SCOPE).build(),
        });
        let thread = {
            let collector = collector.clone();
            std::thread::Builder::new()
                .name("ergon-spans".into())
                .spawn(move || collector.run())
                .ok()
        };
        Traces {
            spans: Spans::shared(collector.clone()),
            collector,
            thread,
            provider: provider.build(),
        }
    }

    /// Where the engine records its spans.
    pub fn spans(&self) -> &Spans {
        &self.spans
    }

    /// The `tracing` layers of this pipeline: ergon's span sink, and a user's spans
    /// through `tracing-opentelemetry`, each a child of the ergon span it starts in.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + Send + Sync + for<'a> LookupSpan<'a>,
    {
        let users = tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer(SCOPE))
            // Per-span bookkeeping ergon does not need: each costs time on every span.
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_level(false)
            .with_target(false);
        self.spans
            .layer()
            .and_then(adopt::Attach)
            .and_then(users)
            .and_then(adopt::Detach)
    }

    /// Exports every span recorded so far, and waits for the exporter.
    ///
    /// # Errors
    ///
    /// The exporter failed.
    pub fn force_flush(&self) -> Result<(), String> {
        self.collector.hand_on();
        self.provider
            .force_flush()
            .map_err(|err| format!("flushing spans: {err}"))
    }

    /// Exports what is left and stops the exporter.
    ///
    /// # Errors
    ///
    /// The exporter failed.
    pub fn shutdown(mut self) -> Result<(), String> {
        self.collector.stop.store(true, Relaxed);
        self.collector.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.collector.hand_on();
        let dropped = self.collector.dropped.load(Relaxed);
        if dropped > 0 {
            eprintln!("ergon-runner: {dropped} spans were dropped (the exporter fell behind)");
        }
        self.provider
            .shutdown()
            .map_err(|err| format!("flushing spans: {err}"))
    }
}

/// Takes ergon's finished spans from the engine and hands them, as `SpanData`, to the
/// batch processor from its own thread.
///
/// The engine hands over whole vectors of spans and gets emptied ones back (`spare`):
/// no span is copied on the way, and no vector's memory changes threads.
struct Collector {
    /// Batches of spans waiting, and how many spans they hold.
    pending: Mutex<(Vec<SpanBatch>, usize)>,
    /// Emptied batches, with their room, for the engine to fill again.
    spare: Mutex<Vec<SpanBatch>>,
    /// Held while spans are handed on: a flush waits for the thread's batch in hand.
    exporting: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
    dropped: AtomicU64,
    processor: Option<Arc<BatchSpanProcessor>>,
    scope: InstrumentationScope,
}

impl SpanSink for Collector {
    fn accept(&self, spans: &mut SpanBatch) {
        let n = spans.len();
        let mut pending = lock(&self.pending);
        if pending.1 + n > MAX_PENDING {
            drop(pending);
            self.dropped.fetch_add(n as u64, Relaxed);
            spans.clear();
            return;
        }
        let spare = lock(&self.spare).pop().unwrap_or_default();
        pending.0.push(std::mem::replace(spans, spare));
        pending.1 += n;
        // Once, when crossing: the thread is awake (or about to be) until it takes them.
        if pending.1 >= WAKE_AT && pending.1 - n < WAKE_AT {
            self.wake.notify_one();
        }
    }
}

impl Collector {
    /// The collector's thread: hands pending spans on every tick, or sooner when many
    /// wait, until stopped.
    fn run(&self) {
        while !self.stop.load(Relaxed) {
            let pending = lock(&self.pending);
            let waited = self
                .wake
                .wait_timeout_while(pending, TICK, |p| p.1 < WAKE_AT && !self.stop.load(Relaxed));
            drop(waited);
            self.hand_on();
        }
    }

    /// Converts what is pending and hands it on (drops it, with no exporter).
    fn hand_on(&self) {
        let _exporting = lock(&self.exporting);
        let batches = {
            let mut pending = lock(&self.pending);
            pending.1 = 0;
            std::mem::take(&mut pending.0)
        };
        let mut emptied = Vec::with_capacity(batches.len());
        for mut batch in batches {
            if let Some(processor) = &self.processor {
                // Taken out (and put back emptied, with its room) so that the loops' shared
                // attributes can be read from the batch meanwhile.
                let mut spans = std::mem::take(&mut batch.spans);
                let steps = batch.steps.iter().map(StepRecord::to_span_record);
                for record in steps.chain(spans.drain(..)) {
                    if let Some(attempt) = record.inline_attempt() {
                        processor.on_end(span_data(attempt, &batch, &self.scope));
                    }
                    processor.on_end(span_data(record, &batch, &self.scope));
                }
                batch.spans = spans;
            }
            batch.clear();
            emptied.push(batch);
        }
        let mut spare = lock(&self.spare);
        spare.extend(emptied);
        spare.truncate(MAX_SPARE);
    }
}

/// Locks `mutex`, through a panic elsewhere (what the collector guards stays consistent).
/// An ergon span as OpenTelemetry span data.
fn span_data(record: SpanRecord, batch: &SpanBatch, scope: &InstrumentationScope) -> SpanData {
    let mut links = SpanLinks::default();
    links.links = record.links();
    SpanData {
        span_context: record.ids.span_context(),
        parent_span_id: record.parent.span_id(),
        parent_span_is_remote: record.parent.is_remote(),
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed(record.name),
        start_time: record.start.to_system_time(),
        end_time: record.end.to_system_time(),
        attributes: batch.attributes(&record),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links,
        status: record.status(),
        instrumentation_scope: scope.clone(),
    }
}

/// The batch processor, shared by the collector and the user spans' tracer provider.
#[derive(Debug)]
struct Shared(Arc<BatchSpanProcessor>);

impl SpanProcessor for Shared {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        self.0.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

/// The global filter of a traced run: other crates' spans from INFO, and events up to
/// `events` (the log level). Decided once per callsite.
pub struct Gate {
    /// The most verbose event level let through.
    pub events: LevelFilter,
}

impl Gate {
    fn wants(&self, meta: &Metadata<'_>) -> bool {
        let level = *meta.level();
        if meta.is_span() {
            level <= Level::INFO
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
        Some(LevelFilter::INFO.max(self.events))
    }
}

/// The HTTP client of the OTLP exporters: blocking (they export from their own
/// threads), built here so that its runtime thread starts outside any tokio runtime.
///
/// # Errors
///
/// The client cannot be built.
pub fn blocking_client() -> Result<reqwest::blocking::Client, String> {
    // With TLS built in (rustls without a bundled provider) reqwest needs a process-wide
    // rustls provider: `ring`, as every TLS client of ergon uses.
    #[cfg(any(feature = "http", feature = "http-connector", feature = "llm"))]
    ergon_services::http::client::install_ring();
    std::thread::spawn(|| reqwest::blocking::Client::builder().build())
        .join()
        .map_err(|_| "building the OTLP HTTP client panicked".to_string())?
        .map_err(|err| format!("cannot build the OTLP HTTP client: {err}"))
}

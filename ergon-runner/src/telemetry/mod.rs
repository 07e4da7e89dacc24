//! Telemetry of a run: traces by OTLP, metrics by OTLP and on a Prometheus endpoint,
//! log lines with trace ids, and health checks.
//!
//! ```text
//! [telemetry] + OTEL_* ──Settings::resolve──▶ Settings ──Telemetry::install──▶ global subscriber
//!    (fmt layer: text | json, trace ids)  +  (ergon's span sink ─▶ batch ─▶ OTLP /v1/traces)
//! TaskManager ──pins workers──▶ WorkerBoard ◀──reads── metrics::otlp (every interval ─▶ /v1/metrics)
//!                                            ◀──reads── http: /metrics, /health/live, /health/ready
//! ```
//!
//! * [`config`]: the `[telemetry]` table; [`Settings`]: it resolved against `OTEL_*`.
//! * [`traces`]: the span pipeline and its `tracing` layers ([`adopt`]: a user's spans
//!   under ergon's); [`logs`]: the line format.
//! * [`board`]: where workers are observed; [`metrics`]: families, Prometheus, OTLP.
//! * [`health`]: liveness and readiness; [`http`]: the endpoint serving them.
//!
//! The OTLP export (traces, metrics, trace ids taken from a user's own spans) is the
//! `otlp` cargo feature: without it `[telemetry] endpoint` and the
//! `OTEL_EXPORTER_OTLP_*ENDPOINT` variables are refused with a config error (exit 2) rather
//! than ignored. Logs, the health endpoints and Prometheus `/metrics` are always built:
//! they use only `tokio` and `tracing-subscriber`, which every build has anyway.

#[cfg(feature = "otlp")]
pub mod adopt;
pub mod board;
pub mod config;
pub mod health;
pub mod http;
pub mod logs;
pub mod metrics;
#[cfg(feature = "otlp")]
pub mod traces;

/// Traces are exported by OTLP only, and this build leaves the `otlp` feature out.
#[cfg(not(feature = "otlp"))]
pub mod traces {
    /// A run's trace pipeline; without the `otlp` feature there is none (this type has
    /// no values, so [`subscriber`](super::subscriber) keeps one signature in every build).
    pub enum Traces {}
}

use std::io::IsTerminal as _;
use std::time::Duration;

use ergon_core::policy::duration;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub use config::{HttpConfig, LogFormat, LogsConfig, TelemetryConfig};

/// `[telemetry]` resolved against the `OTEL_*` environment: what this run does.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `service.name`.
    pub service_name: String,
    /// Full `/v1/traces` URL, when traces are exported.
    pub traces_endpoint: Option<String>,
    /// Full `/v1/metrics` URL, when metrics are exported by OTLP.
    pub metrics_endpoint: Option<String>,
    /// Share of batches traced.
    pub sampling_ratio: f64,
    /// OTLP metrics export period.
    pub metrics_interval: Duration,
    /// Resource attributes, `service.name` first.
    pub resource: Vec<(String, String)>,
    /// Log format and level.
    pub logs: LogsConfig,
    /// The health and metrics endpoint.
    pub http: Option<HttpConfig>,
}

impl Settings {
    /// Resolves `config`, filling what it leaves out from `env` (the `OTEL_*`
    /// variables: `OTEL_SDK_DISABLED`, `OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_TRACES_SAMPLER_ARG`,
    /// `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_RESOURCE_ATTRIBUTES`).
    ///
    /// # Errors
    ///
    /// An `OTEL_*` value that cannot be used, named with the variable.
    pub fn resolve(
        config: &TelemetryConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, String> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(protocol) = var("OTEL_EXPORTER_OTLP_PROTOCOL")
            && config.protocol.is_none()
            && protocol != config::PROTOCOL
        {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={protocol:?} is not supported; this build speaks {:?}",
                config::PROTOCOL
            ));
        }
        #[cfg(not(feature = "otlp"))]
        for name in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ] {
            if let Some(value) = var(name) {
                return Err(format!(
                    "{name}={value:?} asks for OTLP export, but this binary was built without \
                     ergon-runner's `otlp` feature (unset the variable, or enable the feature)"
                ));
            }
        }
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let base = config
            .endpoint
            .clone()
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let endpoint = |signal: &str, path: &str, wanted: Option<bool>| {
            let url = if config.endpoint.is_some() {
                base.as_ref().map(|b| join(b, path))
            } else {
                var(signal).or_else(|| base.as_ref().map(|b| join(b, path)))
            };
            url.filter(|_| !disabled && wanted.unwrap_or(true))
        };
        let traces_endpoint = endpoint(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "v1/traces",
            config.traces,
        );
        let metrics_endpoint = endpoint(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "v1/metrics",
            config.metrics,
        );
        let sampling_ratio = match (config.sampling_ratio, var("OTEL_TRACES_SAMPLER_ARG")) {
            (Some(ratio), _) => ratio,
            (None, Some(arg)) => arg
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    format!("OTEL_TRACES_SAMPLER_ARG={arg:?} is not a ratio in 0.0..=1.0")
                })?,
            (None, None) => 1.0,
        };
        let metrics_interval = match (config.metrics_interval, var("OTEL_METRIC_EXPORT_INTERVAL")) {
            (Some(interval), _) => interval,
            (None, Some(ms)) => ms
                .trim()
                .parse::<u64>()
                .ok()
                .map(Duration::from_millis)
                .filter(|interval| !interval.is_zero() && *interval <= duration::MAX)
                .ok_or_else(|| format!(
                    "OTEL_METRIC_EXPORT_INTERVAL={ms:?} is not a number of milliseconds in 1..={}",
                    duration::MAX.as_millis()
                ))?,
            (None, None) => Duration::from_secs(60),
        };
        let service_name = config
            .service_name
            .clone()
            .or_else(|| var("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| "ergon".into());
        let mut resource = vec![("service.name".to_owned(), service_name.clone())];
        let from_env = var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
        let env_pairs = from_env.split(',').filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.trim().to_owned(), value.trim().to_owned()))
        });
        for (key, value) in env_pairs.chain(config.resource.clone()) {
            if key.is_empty() || key == "service.name" {
                continue;
            }
            resource.retain(|(k, _)| *k != key);
            resource.push((key, value));
        }
        Ok(Settings {
            service_name,
            traces_endpoint,
            metrics_endpoint,
            sampling_ratio,
            metrics_interval,
            resource,
            logs: config.logs.clone(),
            http: config.http.clone(),
        })
    }

    /// The OpenTelemetry resource of these settings.
    #[cfg(feature = "otlp")]
    pub fn otel_resource(&self) -> opentelemetry_sdk::Resource {
        opentelemetry_sdk::Resource::builder_empty()
            .with_attributes(
                self.resource
                    .iter()
                    .map(|(k, v)| opentelemetry::KeyValue::new(k.clone(), v.clone())),
            )
            .build()
    }

    /// Whether anything reads the duration histograms (then they are measured).
    pub fn reads_durations(&self) -> bool {
        self.metrics_endpoint.is_some() || self.http.is_some()
    }
}

fn join(base: &str, path: &str) -> String {
    format!("{}/{path}", base.trim_end_matches('/'))
}

/// Installed telemetry: the global subscriber and, when traces are exported, their
/// pipeline. [`Telemetry::shutdown`] flushes what is buffered.
pub struct Telemetry {
    settings: Settings,
    #[cfg(feature = "otlp")]
    traces: Option<traces::Traces>,
}

impl Telemetry {
    /// Installs the global subscriber (logs, and the OpenTelemetry layer when traces are
    /// exported), sets the sampling ratio, and turns duration measurement on when
    /// something reads it. A subscriber installed before (tests) is kept.
    ///
    /// # Errors
    ///
    /// A log level that does not parse, or an exporter that cannot be built.
    pub fn install(settings: Settings) -> Result<Telemetry, String> {
        ergon_telemetry::sampling::set_ratio(settings.sampling_ratio);
        ergon_core::telemetry::timing::set_enabled(settings.reads_durations());
        #[cfg(feature = "otlp")]
        let traces = match &settings.traces_endpoint {
            Some(endpoint) => Some(traces::Traces::otlp(endpoint, settings.otel_resource())?),
            None => None,
        };
        #[cfg(not(feature = "otlp"))]
        let traces: Option<traces::Traces> = None;
        let filter = log_filter(&settings.logs)?;
        let ansi = settings.logs.format == LogFormat::Text && std::io::stderr().is_terminal();
        let _ = subscriber(settings.logs.format, ansi, filter, traces.as_ref()).try_init();
        Ok(Telemetry {
            settings,
            #[cfg(feature = "otlp")]
            traces,
        })
    }

    /// Logs only, as text at `info` (or `RUST_LOG`): for the commands that run nothing.
    pub fn install_logs() {
        let settings =
            Settings::resolve(&TelemetryConfig::default(), &|_| None).expect("defaults resolve");
        let _ = Self::install(Settings {
            traces_endpoint: None,
            ..settings
        });
    }

    /// What this run does.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Exports the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(traces) = self.traces
            && let Err(err) = traces.shutdown()
        {
            eprintln!("ergon-runner: flushing traces failed: {err}");
        }
    }
}

/// The subscriber of a run: log lines on stderr in `format`, filtered by `filter`, and,
/// with `traces`, ergon's spans and a user's through [`traces::Traces::layer`] behind
/// [`traces::Gate`]. (The benchmarks and tests build theirs here too, so they measure and
/// check what a run does.)
pub fn subscriber(
    format: LogFormat,
    ansi: bool,
    filter: EnvFilter,
    traces: Option<&traces::Traces>,
) -> impl tracing::Subscriber + Send + Sync + for<'a> tracing_subscriber::registry::LookupSpan<'a> {
    let events = filter
        .max_level_hint()
        .unwrap_or(tracing_subscriber::filter::LevelFilter::TRACE);
    let line_format = logs::LineFormat::new(format, ansi);
    let catcher = line_format.dispatch_catcher();
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(line_format)
        .with_filter(filter);
    #[cfg(feature = "otlp")]
    let (gate, spans) = match traces {
        Some(traces) => (Some(traces::Gate { events }), Some(traces.layer())),
        None => (None, None),
    };
    #[cfg(feature = "otlp")]
    return tracing_subscriber::registry()
        .with(gate)
        .with(catcher)
        .with(spans)
        .with(lines);
    #[cfg(not(feature = "otlp"))]
    {
        let _ = events;
        if let Some(traces) = traces {
            match *traces {}
        }
        tracing_subscriber::registry().with(catcher).with(lines)
    }
}

/// The log filter: `RUST_LOG` when set, else the configured level, else `info`.
fn log_filter(logs: &LogsConfig) -> Result<EnvFilter, String> {
    if let Ok(filter) = EnvFilter::try_from_default_env() {
        return Ok(filter);
    }
    let level = logs.level.as_deref().unwrap_or("info");
    EnvFilter::try_new(level).map_err(|err| format!("telemetry.logs.level {level:?}: {err}"))
}

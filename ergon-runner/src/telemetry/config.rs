//! `[telemetry]`: where traces, metrics and logs go. Every key is optional; the standard
//! `OTEL_*` environment variables fill what the file leaves out.
//!
//! ```toml
//! [telemetry]
//! service_name = "orders"                 # OTEL_SERVICE_NAME; default "ergon"
//! endpoint = "http://127.0.0.1:4318"      # OTLP/HTTP base; OTEL_EXPORTER_OTLP_ENDPOINT
//! protocol = "http/protobuf"              # OTEL_EXPORTER_OTLP_PROTOCOL; the only one built in
//! sampling_ratio = 0.1                    # share of batches traced; OTEL_TRACES_SAMPLER_ARG
//! metrics_interval = "10s"                # OTLP metrics export period; OTEL_METRIC_EXPORT_INTERVAL (ms)
//! resource = { "deployment.environment.name" = "prod" }   # plus OTEL_RESOURCE_ATTRIBUTES
//!
//! [telemetry.logs]
//! format = "json"                         # "text" (default) or "json"
//! level = "info"                          # RUST_LOG wins when set
//!
//! [telemetry.http]                        # health and Prometheus metrics; absent: no server
//! port = 9464                             # 0: any free port (logged)
//! address = "127.0.0.1"                   # loopback unless you say otherwise
//! stall_after = "60s"                     # liveness: no progress this long is unhealthy
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

/// The `[telemetry]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `service.name` of traces and metrics.
    pub service_name: Option<String>,
    /// OTLP/HTTP base endpoint (`/v1/traces` and `/v1/metrics` are appended). Without
    /// one (here or in `OTEL_EXPORTER_OTLP_ENDPOINT`) nothing is exported.
    pub endpoint: Option<String>,
    /// OTLP protocol: `http/protobuf`.
    pub protocol: Option<String>,
    /// Share of batches traced, `0.0..=1.0` (a transaction with a `traceparent` follows
    /// its parent's decision instead).
    pub sampling_ratio: Option<f64>,
    /// Period of the OTLP metrics export.
    #[serde(default, with = "ergon_core::policy::duration::option")]
    pub metrics_interval: Option<Duration>,
    /// Whether traces are exported (default: when there is an endpoint).
    pub traces: Option<bool>,
    /// Whether metrics are exported by OTLP (default: when there is an endpoint).
    pub metrics: Option<bool>,
    /// Extra resource attributes.
    #[serde(default)]
    pub resource: BTreeMap<String, String>,
    /// `[telemetry.logs]`.
    #[serde(default)]
    pub logs: LogsConfig,
    /// `[telemetry.http]`: the health and metrics endpoint.
    pub http: Option<HttpConfig>,
}

/// `[telemetry.logs]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// Line format.
    #[serde(default)]
    pub format: LogFormat,
    /// Level or `RUST_LOG`-style directives (`info`, `warn,ergon_core=debug`); `RUST_LOG`
    /// wins when set. Default `info`.
    pub level: Option<String>,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (colored on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[telemetry.http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// Address to bind; loopback by default.
    #[serde(default = "loopback")]
    pub address: IpAddr,
    /// Liveness: a fetch running, or in-flight work finishing nothing, for this long, or
    /// a connector unreachable for this long, makes the process unhealthy.
    #[serde(default = "sixty_seconds", with = "ergon_core::policy::duration")]
    pub stall_after: Duration,
}

/// The one OTLP protocol built in.
pub const PROTOCOL: &str = "http/protobuf";

impl TelemetryConfig {
    /// Checks the values serde cannot: `(key path, what is wrong)`.
    ///
    /// # Errors
    ///
    /// An unsupported protocol, a ratio outside `0..=1`, a zero metrics interval, an
    /// endpoint that is not an `http(s)://` URL, or any endpoint in a build without the
    /// `otlp` feature.
    pub fn check(&self) -> Result<(), (String, String)> {
        if let Some(protocol) = &self.protocol
            && protocol != PROTOCOL
        {
            return Err((
                "telemetry.protocol".into(),
                format!(
                    "unsupported OTLP protocol {protocol:?}; this build speaks {PROTOCOL:?} (the OTLP default)"
                ),
            ));
        }
        if let Some(ratio) = self.sampling_ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            return Err((
                "telemetry.sampling_ratio".into(),
                format!("{ratio} is outside 0.0..=1.0"),
            ));
        }
        if self
            .metrics_interval
            .is_some_and(|interval| interval.is_zero())
        {
            return Err((
                "telemetry.metrics_interval".into(),
                "must be greater than zero".into(),
            ));
        }
        #[cfg(not(feature = "otlp"))]
        if let Some(endpoint) = &self.endpoint {
            return Err((
                "telemetry.endpoint".into(),
                format!(
                    "{endpoint:?} asks for OTLP export, but this binary was built without \
                     ergon-runner's `otlp` feature (remove the key, or enable the feature)"
                ),
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err((
                "telemetry.endpoint".into(),
                format!(
                    "{endpoint:?} is not an http:// or https:// URL (OTLP/HTTP, e.g. \"http://127.0.0.1:4318\")"
                ),
            ));
        }
        Ok(())
    }
}

fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn sixty_seconds() -> Duration {
    Duration::from_secs(60)
}

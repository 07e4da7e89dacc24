//! OTLP/HTTP metrics export: the families as an `ExportMetricsServiceRequest` (protobuf),
//! cumulative since the process started, posted every `interval` and once at the end.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use super::{Family, Kind, Value, collect};
use crate::telemetry::board::WorkerBoard;

/// Encodes `families` for `resource` (`(key, value)` pairs), cumulative from `start`.
pub fn encode(
    families: &[Family],
    resource: &[(String, String)],
    start: SystemTime,
) -> ExportMetricsServiceRequest {
    let (start, now) = (unix_nanos(start), unix_nanos(SystemTime::now()));
    let cumulative = AggregationTemporality::Cumulative as i32;
    let metrics = families
        .iter()
        .filter(|f| !f.points.is_empty())
        .map(|family| {
            let numbers = || {
                family
                    .points
                    .iter()
                    .filter_map(|p| match p.value {
                        Value::Count(value) => Some(NumberDataPoint {
                            attributes: attributes(p.labels.iter().map(|(k, v)| (*k, v.as_str()))),
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            value: Some(number_data_point::Value::AsInt(
                                i64::try_from(value).unwrap_or(i64::MAX),
                            )),
                            ..Default::default()
                        }),
                        Value::Histogram(..) => None,
                    })
                    .collect()
            };
            let data = match family.kind {
                Kind::Counter => metric::Data::Sum(Sum {
                    data_points: numbers(),
                    aggregation_temporality: cumulative,
                    is_monotonic: true,
                }),
                Kind::Gauge => metric::Data::Gauge(Gauge {
                    data_points: numbers(),
                }),
                Kind::Histogram => metric::Data::Histogram(Histogram {
                    data_points: family
                        .points
                        .iter()
                        .filter_map(|p| match &p.value {
                            Value::Histogram(snapshot, scale) => Some(HistogramDataPoint {
                                attributes: attributes(
                                    p.labels.iter().map(|(k, v)| (*k, v.as_str())),
                                ),
                                start_time_unix_nano: start,
                                time_unix_nano: now,
                                count: snapshot.count(),
                                sum: Some(snapshot.sum as f64 * scale),
                                bucket_counts: snapshot.buckets.clone(),
                                explicit_bounds: snapshot
                                    .bounds
                                    .iter()
                                    .map(|&b| b as f64 * scale)
                                    .collect(),
                                ..Default::default()
                            }),
                            Value::Count(_) => None,
                        })
                        .collect(),
                    aggregation_temporality: cumulative,
                }),
            };
            Metric {
                name: family.name.to_owned(),
                description: family.help.to_owned(),
                unit: family.unit.to_owned(),
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: attributes(resource.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "ergon".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Posts the board's metrics to `endpoint` (the full `/v1/metrics` URL) every
/// `interval`, and once more when `stop` is cancelled; returns when that last export is
/// done. A failed export is logged and the next one carries the totals (they are
/// cumulative), so nothing is lost but resolution.
pub async fn export_every(
    endpoint: String,
    interval: Duration,
    resource: Vec<(String, String)>,
    board: Arc<WorkerBoard>,
    stop: CancellationToken,
) {
    // With TLS built in (rustls without a bundled provider) reqwest needs a process-wide
    // rustls provider: `ring`, as every TLS client of ergon uses.
    #[cfg(any(feature = "http", feature = "http-connector", feature = "llm"))]
    ergon_services::http::client::install_ring();
    let client = reqwest::Client::new();
    let start = SystemTime::now();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        let last = tokio::select! {
            _ = ticks.tick() => false,
            () = stop.cancelled() => true,
        };
        let body = encode(&collect(&board), &resource, start).encode_to_vec();
        let sent = client
            .post(&endpoint)
            .header("content-type", "application/x-protobuf")
            .timeout(Duration::from_secs(10))
            .body(body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        if let Err(err) = sent {
            tracing::warn!(endpoint = %endpoint, error = %err, "OTLP metrics export failed; the next export carries the totals");
        }
        if last {
            return;
        }
    }
}

fn attributes<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<KeyValue> {
    pairs
        .map(|(key, value)| KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_owned())),
            }),
            ..Default::default()
        })
        .collect()
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

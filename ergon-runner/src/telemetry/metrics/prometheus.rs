//! The Prometheus text exposition format (version 0.0.4) of the metric families.

use std::fmt::Write as _;

use super::{Family, Kind, Value};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `families`: `ergon.step.duration` becomes `ergon_step_duration_seconds`, a
/// counter gets `_total`, a label `ergon.task` becomes `ergon_task`.
///
/// ```
/// use ergon_runner::telemetry::metrics::{Family, Kind, Point, Value, prometheus};
/// let family = Family {
///     name: "ergon.transactions.succeeded",
///     help: "Transactions acked",
///     unit: "{transaction}",
///     kind: Kind::Counter,
///     points: vec![Point { labels: vec![("ergon.task", "orders".into())], value: Value::Count(3) }],
/// };
/// let text = prometheus::render(&[family]);
/// assert!(text.contains("ergon_transactions_succeeded_total{ergon_task=\"orders\"} 3\n"));
/// ```
pub fn render(families: &[Family]) -> String {
    let mut out = String::with_capacity(8 * 1024);
    for family in families.iter().filter(|f| !f.points.is_empty()) {
        let base = metric_name(family);
        let (kind, name) = match family.kind {
            Kind::Counter => ("counter", format!("{base}_total")),
            Kind::Gauge => ("gauge", base.clone()),
            Kind::Histogram => ("histogram", base.clone()),
        };
        let _ = writeln!(out, "# HELP {name} {}", family.help);
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for point in &family.points {
            let labels: Vec<String> = point
                .labels
                .iter()
                .map(|(key, value)| format!("{}=\"{}\"", sanitize(key), escape(value)))
                .collect();
            match &point.value {
                Value::Count(value) => {
                    let _ = writeln!(out, "{name}{} {value}", braces(&labels));
                }
                Value::Histogram(snapshot, scale) => {
                    for (bound, count) in snapshot.cumulative() {
                        let le = bound
                            .map_or_else(|| "+Inf".to_owned(), |b| format_float(b as f64 * scale));
                        let mut with_le = labels.clone();
                        with_le.push(format!("le=\"{le}\""));
                        let _ = writeln!(out, "{name}_bucket{} {count}", braces(&with_le));
                    }
                    let sum = format_float(snapshot.sum as f64 * scale);
                    let _ = writeln!(out, "{name}_sum{} {sum}", braces(&labels));
                    let _ = writeln!(out, "{name}_count{} {}", braces(&labels), snapshot.count());
                }
            }
        }
    }
    out
}

fn metric_name(family: &Family) -> String {
    let name = sanitize(family.name);
    if family.unit == "s" {
        format!("{name}_seconds")
    } else {
        name
    }
}

fn braces(labels: &[String]) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", labels.join(","))
    }
}

/// Keeps `[a-zA-Z0-9_]`, turning anything else into `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_float(value: f64) -> String {
    let text = format!("{value}");
    if text.contains('.') || text.contains('e') {
        text
    } else {
        format!("{text}.0")
    }
}

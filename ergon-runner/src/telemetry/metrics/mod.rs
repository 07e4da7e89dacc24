//! Metrics: the workers' counters and histograms, read from the
//! [`WorkerBoard`](super::board::WorkerBoard) when asked, as metric families that the
//! Prometheus endpoint ([`prometheus`]) and the OTLP exporter ([`otlp`]) render.
//!
//! Nothing is recorded for the exporters: they read the same per-worker atomics the run
//! summary reads, so metrics cost the hot path nothing beyond those counters (and the
//! duration histograms, measured only while an exporter is on).
//!
//! Names follow the OpenTelemetry messaging conventions where one applies
//! (`messaging.client.consumed.messages`, `messaging.client.sent.messages`,
//! `messaging.process.duration`), ergon's own under `ergon.*`; Prometheus gets them with
//! `_` for `.`, `_total` on counters and `_seconds` on durations.

#[cfg(feature = "otlp")]
pub mod otlp;
pub mod prometheus;

use ergon_core::runner::StatsSnapshot;
use ergon_core::service::MetricKind;
use ergon_core::step::Step;
use ergon_core::telemetry::histogram::HistogramSnapshot;
use ergon_core::telemetry::names;

use super::board::{TaskTotals, WorkerBoard};

/// One metric with its points.
#[derive(Debug, Clone)]
pub struct Family {
    /// OpenTelemetry name.
    pub name: &'static str,
    /// What it measures.
    pub help: &'static str,
    /// UCUM unit (`s`, `{transaction}`, ...).
    pub unit: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// One point per label set.
    pub points: Vec<Point>,
}

/// The instrument kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic sum since the process started.
    Counter,
    /// A value now.
    Gauge,
    /// Bucketed distribution since the process started.
    Histogram,
}

/// One labelled value.
#[derive(Debug, Clone)]
pub struct Point {
    /// `(attribute, value)` pairs.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: Value,
}

/// A point's value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A counter or gauge.
    Count(u64),
    /// A histogram, recorded in units that `scale` turns into the family's unit
    /// (microseconds × 1e-6 = seconds).
    Histogram(HistogramSnapshot, f64),
}

const MICROS: f64 = 1e-6;

/// Every family, from the workers on `board`, summed per task.
pub fn collect(board: &WorkerBoard) -> Vec<Family> {
    let totals = board.totals();
    let mut families = Vec::new();
    let counter = |name, help, unit, read: fn(&StatsSnapshot) -> u64| Family {
        name,
        help,
        unit,
        kind: Kind::Counter,
        points: totals
            .iter()
            .map(|t| Point {
                labels: labels(t),
                value: Value::Count(read(&t.stats)),
            })
            .collect(),
    };
    families.push(counter(
        "messaging.client.consumed.messages",
        "Transactions fetched from the input",
        "{transaction}",
        |s| s.fetched,
    ));
    families.push(counter(
        "messaging.client.sent.messages",
        "Outbound transactions confirmed by the output",
        "{transaction}",
        |s| s.dispatched,
    ));
    families.push(counter(
        "ergon.transactions.processed",
        "Transactions whose lifecycle finished",
        "{transaction}",
        |s| s.processed,
    ));
    families.push(counter(
        "ergon.transactions.succeeded",
        "Transactions acked after their success step",
        "{transaction}",
        |s| s.succeeded,
    ));
    families.push(counter(
        "ergon.transactions.dead_lettered",
        "Failed transactions dead-lettered",
        "{transaction}",
        |s| s.dead_lettered,
    ));
    families.push(counter(
        "ergon.transactions.requeued",
        "Transactions put back on the input",
        "{transaction}",
        |s| s.requeued,
    ));
    families.push(counter(
        "ergon.transactions.dropped",
        "Failed transactions dropped per policy",
        "{transaction}",
        |s| s.dropped,
    ));
    families.push(counter(
        "ergon.exception.failed",
        "Exception steps that failed themselves",
        "{transaction}",
        |s| s.exception_failed,
    ));
    families.push(counter(
        "ergon.settle.failed",
        "Settlements that failed after their retries",
        "{transaction}",
        |s| s.settle_failed,
    ));
    families.push(counter(
        "ergon.settle.stale",
        "Settlements not performed because the delivery was no longer this consumer's (delivered again)",
        "{transaction}",
        |s| s.settle_stale,
    ));
    families.push(counter(
        "ergon.fetches",
        "Fetches finished",
        "{fetch}",
        |s| s.fetches,
    ));
    families.push(counter(
        "ergon.fetches.empty",
        "Fetches that found nothing",
        "{fetch}",
        |s| s.empty_fetches,
    ));
    families.push(counter(
        "ergon.blocking.abandoned_attempts",
        "Blocking attempts given up at their deadline while their thread ran on",
        "{attempt}",
        |s| s.abandoned_attempts,
    ));
    families.push(Family {
        name: "ergon.transactions.failed",
        help: "Failed transactions by error category",
        unit: "{transaction}",
        kind: Kind::Counter,
        points: totals
            .iter()
            .flat_map(|t| {
                [
                    ("business", t.stats.failed_business),
                    ("system", t.stats.failed_system),
                    ("timeout", t.stats.failed_timeout),
                ]
                .map(|(category, count)| Point {
                    labels: with(t, names::ERROR_TYPE, category),
                    value: Value::Count(count),
                })
            })
            .collect(),
    });
    families.push(Family {
        name: "ergon.transactions.in_flight",
        help: "Transactions in flight now",
        unit: "{transaction}",
        kind: Kind::Gauge,
        points: totals
            .iter()
            .map(|t| Point {
                labels: labels(t),
                value: Value::Count(t.stats.in_flight),
            })
            .collect(),
    });
    let per_step =
        |name, help, unit, kind, value: &dyn Fn(&TaskTotals, usize) -> Option<Value>| Family {
            name,
            help,
            unit,
            kind,
            points: totals
                .iter()
                .flat_map(|t| {
                    Step::ALL.iter().filter_map(move |step| {
                        let value = value(t, step.index())?;
                        Some(Point {
                            labels: with(t, names::STEP, step.as_str()),
                            value,
                        })
                    })
                })
                .collect(),
        };
    families.push(per_step(
        "ergon.step.attempts",
        "Attempts per step",
        "{attempt}",
        Kind::Counter,
        &|t, i| (t.stats.attempts[i] > 0).then_some(Value::Count(t.stats.attempts[i])),
    ));
    families.push(per_step(
        "ergon.step.retries",
        "Attempts beyond the first per step",
        "{attempt}",
        Kind::Counter,
        &|t, i| (t.stats.attempts[i] > 0).then_some(Value::Count(t.stats.step_retries[i])),
    ));
    families.push(per_step(
        "ergon.step.duration",
        "Duration of each attempt of a step (of the whole step for fetch; settle is counted, not timed)",
        "s",
        Kind::Histogram,
        &|t, i| {
            let h = &t.histograms.step_micros[i];
            (h.count() > 0).then(|| Value::Histogram(h.clone(), MICROS))
        },
    ));
    let histogram = |name, help, unit, read: fn(&TaskTotals) -> &HistogramSnapshot, scale| Family {
        name,
        help,
        unit,
        kind: Kind::Histogram,
        points: totals
            .iter()
            .map(|t| Point {
                labels: labels(t),
                value: Value::Histogram(read(t).clone(), scale),
            })
            .collect(),
    };
    families.push(histogram(
        "messaging.process.duration",
        "Time from a transaction's first step to its settlement",
        "s",
        |t| &t.histograms.transaction_micros,
        MICROS,
    ));
    families.push(histogram(
        "ergon.fetch.batch_size",
        "Transactions per non-empty fetch",
        "{transaction}",
        |t| &t.histograms.batch_sizes,
        1.0,
    ));
    families.extend(service_families(board));
    #[cfg(feature = "journal")]
    if let Some(journal) = board.journal() {
        families.extend(journal_families(journal));
    }
    families
}

/// The journal's families: tagged fan-in batches cut per reason, children spawned per
/// (task, child task), parked waits decided per outcome (`timed_out`: the wait timeouts)
/// and how long they waited, and the worker slots in-step waits hold now.
#[cfg(feature = "journal")]
fn journal_families(journal: &ergon_journal::JournalMetrics) -> Vec<Family> {
    use ergon_core::journal::{CutReason, WaitOutcome};
    let spawned = journal
        .spawned()
        .into_iter()
        .map(|((task, child), n)| Point {
            labels: vec![(names::TASK, task), ("ergon.child.task", child)],
            value: Value::Count(n),
        });
    let outcomes = [
        WaitOutcome::Satisfied,
        WaitOutcome::TimedOut,
        WaitOutcome::Unsatisfiable,
    ];
    let decided = outcomes.map(|outcome| Point {
        labels: vec![("ergon.wait.outcome", outcome.as_str().to_owned())],
        value: Value::Count(journal.decided(outcome)),
    });
    let reasons = [CutReason::Full, CutReason::Timeout, CutReason::Complete];
    let batches = reasons.map(|reason| Point {
        labels: vec![("ergon.batch.reason", reason.as_str().to_owned())],
        value: Value::Count(journal.batches(reason)),
    });
    let duration = journal.wait_duration();
    vec![
        Family {
            name: "ergon.fanin.batches",
            help: "Tagged fan-in batches cut, by reason (full, timeout, complete)",
            unit: "{batch}",
            kind: Kind::Counter,
            points: batches.into(),
        },
        Family {
            name: "ergon.children.spawned",
            help: "Children spawned into another task, new ones only",
            unit: "{transaction}",
            kind: Kind::Counter,
            points: spawned.collect(),
        },
        Family {
            name: "ergon.waits.decided",
            help: "Parked waits decided, by outcome (timed_out: the wait timeouts)",
            unit: "{wait}",
            kind: Kind::Counter,
            points: decided.into(),
        },
        Family {
            name: "ergon.wait.duration",
            help: "Time from a parked wait's registration to its decision",
            unit: "s",
            kind: Kind::Histogram,
            points: (duration.count() > 0)
                .then(|| Point {
                    labels: Vec::new(),
                    value: Value::Histogram(duration, MICROS),
                })
                .into_iter()
                .collect(),
        },
        Family {
            name: "ergon.wait.in_step",
            help: "Worker slots held by in-step waits now",
            unit: "{slot}",
            kind: Kind::Gauge,
            points: vec![Point {
                labels: Vec::new(),
                value: Value::Count(journal.waiting_in_steps()),
            }],
        },
    ]
}

/// The metrics the run's services registered (`BuildContext::gauge` / `counter`), one
/// family per name, labelled with `ergon.service`.
fn service_families(board: &WorkerBoard) -> Vec<Family> {
    let mut families: Vec<Family> = Vec::new();
    for metric in board.service_telemetry().metrics() {
        let point = Point {
            labels: vec![(names::SERVICE, metric.service.to_string())],
            value: Value::Count(metric.value()),
        };
        match families.iter_mut().find(|f| f.name == metric.name) {
            Some(family) => family.points.push(point),
            None => families.push(Family {
                name: metric.name,
                help: metric.help,
                unit: "1",
                kind: match metric.kind {
                    MetricKind::Gauge => Kind::Gauge,
                    MetricKind::Counter => Kind::Counter,
                },
                points: vec![point],
            }),
        }
    }
    families
}

/// A task's labels: the task and, when it has an input, its system and destination.
fn labels(t: &TaskTotals) -> Vec<(&'static str, String)> {
    let mut labels = vec![(names::TASK, t.task.clone())];
    if let Some(system) = t.system {
        labels.push((names::SYSTEM, system.to_owned()));
    }
    if let Some(destination) = &t.destination {
        labels.push((names::DESTINATION, destination.clone()));
    }
    labels
}

fn with(t: &TaskTotals, key: &'static str, value: &str) -> Vec<(&'static str, String)> {
    let mut labels = labels(t);
    labels.push((key, value.to_owned()));
    labels
}

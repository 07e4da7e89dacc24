//! A soak: streaming at full speed on the embedded default, with the journal and
//! telemetry on, while the runner's resident memory is sampled every second; it must stay
//! flat after warm-up ([`rss::Flatness`]: the maximum of the last third within a tenth plus
//! 4 MiB of the maximum of the first third).
//!
//! Two local queues in one SQLite file feed each other: task `ping` forwards `ping` into
//! `pong`, task `pong` forwards it back, so a fixed set of ids circulates as fast as the
//! runner goes, with nothing to feed from outside. The journal records every completion
//! (`record = "all"`, in the queues' file), traces (every batch sampled) and metrics (every
//! second) are exported to an OTLP receiver on loopback ([`otlp_sink`]), and the health
//! and metrics endpoint is served. After the soak the runner is stopped with SIGTERM and
//! both queues are drained into files: every id must be there exactly once (a drained stop
//! duplicates nothing).
//!
//! Short profile: 20 s (5 s warm-up); full: 10 minutes (1 minute warm-up).

mod otlp_sink;
mod rss;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness::{Deployment, Error, Report, Result, Signal, Suite, Tally, ids};
use crate::scenarios::summary;

use otlp_sink::OtlpSink;
use rss::{Flatness, mib};

/// Ids in circulation: enough to keep both tasks' concurrency and batches full.
const CIRCULATING: usize = 2_000;

/// How often the memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The longest a command around the soak (seed, stop, collect) may take.
const LIMIT: Duration = Duration::from_secs(300);

/// The soak on the embedded default (see the module's documentation).
///
/// # Errors
///
/// A step of the scenario could not be carried out: the runner died or hung, a command
/// failed, the OTLP receiver could not listen.
pub fn local(suite: &Suite, name: &'static str) -> Result<Report> {
    let length = suite
        .profile
        .pick(Duration::from_secs(20), Duration::from_secs(600));
    let warm_up = suite
        .profile
        .pick(Duration::from_secs(5), Duration::from_secs(60));
    let sink = OtlpSink::start()?;
    let deployment = Deployment::new(suite, &config(&sink.endpoint()))?;
    let sent = ids::numbered("s", CIRCULATING);
    deployment.write("seed.jsonl", ids::json_lines(&sent))?;
    deployment.enqueue("ping", "seed.jsonl")?;

    let mut runner = deployment.spawn(&["run", "ping", "pong"])?;
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < length {
        std::thread::sleep(SAMPLE_EVERY);
        if let Some(exit) = runner.exited()? {
            return Err(Error::Output(format!(
                "the soak's runner ended ({}) after {:?}: {}",
                exit.describe(),
                started.elapsed(),
                runner.stderr_tail()
            )));
        }
        if started.elapsed() >= warm_up {
            samples.push(rss::rss_kib(runner.id())?);
        }
    }
    runner.signal(Signal::Term)?;
    let stdout = runner.expect_exit(LIMIT, Signal::Term.exit_code())?;
    let seconds = started.elapsed().as_secs_f64();

    deployment.run(&["run", "collect_ping", "collect_pong"], LIMIT)?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for file in ["ping.jsonl", "pong.jsonl"] {
        for (id, copies) in ids::count(&deployment.path(file), "id")? {
            *seen.entry(id).or_default() += copies;
        }
    }
    let tally = Tally::of(&sent, &seen);
    let processed: u64 = ["ping", "pong"]
        .iter()
        .filter_map(|task| {
            summary::task_field(&stdout, task, "processed")?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let verdict = Flatness::of(&samples).ok_or_else(|| {
        Error::Output(format!(
            "only {} memory samples after warm-up",
            samples.len()
        ))
    })?;
    Ok(Report::new(name)
        .tally(&tally, 0)
        .field("seconds", format!("{seconds:.0}"))
        .field("processed", processed)
        .field("tx_per_s", format!("{:.0}", processed as f64 / seconds))
        .field("samples", samples.len())
        .field("rss_min_mib", mib(verdict.min))
        .field("rss_max_mib", mib(verdict.max))
        .field("rss_early_max_mib", mib(verdict.early_max))
        .field("rss_late_max_mib", mib(verdict.late_max))
        .field("rss_limit_mib", mib(verdict.limit))
        .field("trace_exports", sink.trace_exports())
        .field("metric_exports", sink.metric_exports())
        .field("otlp_bytes", sink.bytes())
        .check(verdict.flat(), || {
            format!(
                "memory grew after warm-up: {} MiB late against {} MiB early (limit {} MiB)",
                mib(verdict.late_max),
                mib(verdict.early_max),
                mib(verdict.limit)
            )
        })
        .check(processed > 0, || "the soak processed nothing".to_owned())
        .check(
            sink.trace_exports() > 0 && sink.metric_exports() > 0,
            || "telemetry was not on: the OTLP receiver got no traces or no metrics".to_owned(),
        ))
}

/// The soak's `tasks.toml`, exporting to the OTLP receiver at `endpoint`.
fn config(endpoint: &str) -> String {
    format!(
        r#"[connectors.ping]
type = "local"
path = "queue.db"

[connectors.pong]
type = "local"
path = "queue.db"

[connectors.ping_file]
type = "file"
path = "ping.jsonl"

[connectors.pong_file]
type = "file"
path = "pong.jsonl"

[tasks.ping]
type = "forward"
input = "ping"
output = "pong"
policy.loop = {{ concurrency = 32, streaming = true }}

[tasks.pong]
type = "forward"
input = "pong"
output = "ping"
policy.loop = {{ concurrency = 32, streaming = true }}

[tasks.collect_ping]
type = "forward"
input = "ping"
output = "ping_file"

[tasks.collect_pong]
type = "forward"
input = "pong"
output = "pong_file"

[journal]
record = "all"

[telemetry]
service_name = "ergon-faults-soak"
endpoint = "{endpoint}"
sampling_ratio = 1.0
metrics_interval = "1s"

[telemetry.http]
port = 0
"#
    )
}

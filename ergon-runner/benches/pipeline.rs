//! End-to-end throughput of the consume engine, beside a hand-written tokio loop.
//!
//! ```text
//! cargo bench -p ergon-runner --bench pipeline              # every case
//! cargo bench -p ergon-runner --bench pipeline -- c64       # cases whose name contains "c64"
//! cargo bench -p ergon-runner --bench pipeline -- --list    # the case names
//! ```
//!
//! Each case prints one line on stdout, `bench <case> key=value ...`. Every number on it
//! is the **median** of the case's runs, followed by its spread: `tx_per_s=<median>
//! tx_per_s_min=<lowest run> tx_per_s_max=<highest run>`, and the same `_min` / `_max` for
//! every other measured number and ratio (see Method). The `inmemory_*` cases
//! time a no-op [`Consumer`] through the full engine ([`ConsumeLoop`]: fetch step,
//! process and success envelopes, settlement, spans compiled in, no subscriber or
//! exporter) over transactions generated as they are fetched
//! ([`MemoryConnector::generated`]), and the same work done by a hand-written tokio loop
//! (per transaction: `Arc<Semaphore>::acquire_owned`, `tokio::spawn`, a retry loop around
//! `tokio::time::timeout(per_attempt, noop())`, an ack counter `fetch_add`):
//!
//! ```text
//! bench inmemory_c64 tx=1000000 tx_per_s=<x> tx_per_s_min= tx_per_s_max=
//!     handwritten_tx_per_s=<y> handwritten_tx_per_s_min= handwritten_tx_per_s_max=
//!     ratio=<x/y> ratio_min= ratio_max= runs=5 peak_rss_mib=<m>          (one line)
//! ```
//!
//! The engine runs with `ConsumerPolicy` defaults except `loop.concurrency` and
//! `fetch.batch_size = 256`: `inmemory_c1` is one consume loop of concurrency 1;
//! `inmemory_c64` is one consume loop of concurrency 64 (one tokio task, so one core);
//! `inmemory_c64_w2` is two consume loops of concurrency 32 sharing the input (what
//! `workers = 2` runs on this 2-core machine), 64 in flight in all, as in the hand-written
//! loop, whose spawned tasks use both cores too.
//!
//! The role cases:
//!
//! ```text
//! bench blocking_c1 tx= tx_per_s= handwritten_tx_per_s= ratio= runs= peak_rss_mib=   (also _c2)
//! bench cpu_c2 tx= tx_per_s= handwritten_tx_per_s= ratio= runs= peak_rss_mib= speedup=  (and _c1)
//! bench hybrid_fanout3 tx= tx_per_s= outbound_per_s= peak_rss_mib= runs=
//! ```
//!
//! `blocking_c<N>` runs a no-op [`BlockingConsumer`] on the engine's thread pool with N
//! threads (`loop.concurrency = N`), against a semaphore of N permits with
//! `tokio::task::spawn_blocking` per transaction; `cpu_c<N>` does the same with about
//! 0.4 ms of hashing per transaction, and `cpu_c2` prints its `speedup` over the engine
//! at concurrency 1, measured in `cpu_c2`'s own rounds (variant `engine_c1`). The
//! blocking children also print on stderr what the scheduler did with each thread during
//! the timed run (`# engine threads: <name>@cpu<last CPU> run= wait= sleeps/tx=
//! preempted= migrated=`, from `/proc/self/task/*/sched`): how `blocking_c1`'s two modes
//! were told apart (BENCHMARKS.md). `hybrid_fanout3` runs an async [`Hybrid`] that turns each inbound transaction into three
//! children, dispatched to a sink that confirms at once, at concurrency 64; `tx_per_s`
//! counts inbound transactions.
//!
//! The RabbitMQ cases need the local broker (`amqp://guest:guest@127.0.0.1:5672`) and fail
//! with the reason printed without it:
//!
//! ```text
//! bench amqp_consume_p500 msgs= msgs_per_s= raw_msgs_per_s= ratio= runs=    (also _p50)
//! bench amqp_publish msgs= msgs_per_s= raw_msgs_per_s= ratio= wide_msgs_per_s= wide_ratio= runs=
//! ```
//!
//! `amqp_consume_p<P>` pre-publishes the messages (100 bytes each) to a fresh queue, then
//! times a no-op consumer at concurrency 64 through [`RabbitConnector`] with prefetch P
//! until every message is acked, beside a raw lapin consumer with the same prefetch that
//! acks with `multiple` every 100 deliveries (every P/2 when P < 200, or it would stall
//! at the prefetch). `amqp_publish` times a producer dispatching generated 100-byte
//! transactions (concurrency 256: 256 dispatches of one message each waiting for their
//! confirm) beside raw lapin on one channel publishing them all pipelined and then
//! waiting for every confirm. A publisher with confirms moves its window of unconfirmed
//! messages per broker round trip: the raw loop's window is the whole run, the engine's
//! is the producer's concurrency (`ERGON_BENCH_PUBLISH_CONCURRENCY` sets it;
//! `ERGON_BENCH_RAW_WINDOW` bounds the raw loop's, to compare the two at one window).
//! The `wide` variant, interleaved with the two and reported beside them, is the same
//! producer at concurrency 1,024, a window tuned for throughput.
//! Both publish the same messages the same way: persistent,
//! `mandatory`, with a `message_id`, to a durable classic queue, a return or nack
//! failing the run (a persistent message is confirmed once the broker wrote it to disk;
//! before, raw published transient messages, confirmed from memory, and read about
//! twice as fast as any publisher keeping them could).
//!
//! The `telemetry_*` and `local_*` cases print `bench <case> tx= tx_per_s= ...` (see their
//! modules); telemetry cases add `ratio_to_off=`. The journal cases (module `journal`):
//!
//! ```text
//! bench journal_cost tx= tx_per_s= off_tx_per_s= ratio= own_file_tx_per_s= own_file_ratio= runs=
//! bench chain_fanout_local children= children_per_s= fanin_p50_ms= fanin_p99_ms= runs=
//! bench chain_fanout_amqp_pg children= children_per_s= fanin_p50_ms= fanin_p99_ms= runs=
//! bench fanin_local items= items_per_s= batch_p50_ms= batch_p99_ms= runs=
//! bench dag_runs_local runs= runs_per_s= run_p50_ms= run_p99_ms= ... rounds=
//! ```
//!
//! `journal_cost` is `local_consume` (a no-op consumer, concurrency 64, over a local queue
//! filled beforehand) with an SQLite journal recording every completion (`record =
//! "all"`, in the queue's file, so each ack is made in the journal's commit) against the
//! same without a journal, interleaved; `own_file` is the same journal in a file of its
//! own (each completion journaled, then acked by the queue like any settlement: the two
//! files have a writer each), interleaved with them and reported beside them.
//! `chain_fanout_local` is one parent spawning `children` no-op children (one
//! `spawn_all`) into a local queue and parking a `when_all` continuation on them, on the
//! embedded default (queue and journal in one SQLite file): `children_per_s` counts from
//! the parent's fetch to the continuation's start; the fan-in latency is from the last
//! child's completion (its journal record's end) to the continuation's start, one sample
//! per run: `fanin_p50_ms` is the median over the runs and `fanin_p99_ms` the highest.
//! `chain_fanout_amqp_pg` is the same fan-out across machines' parts: the journal in
//! PostgreSQL (a fresh schema), the children on a fresh RabbitMQ queue where the
//! journal's relay dispatches them, the parent and the fan-in on local queues.
//! `fanin_local` is a tagged fan-in on the embedded default: one transaction of a hybrid
//! `split` with `produces = ["items"]` returns `items` no-op children (100,000 in one
//! transaction, one dispatch to the local queue of `work`: the parent is not split), a
//! no-op consumer `work` (concurrency 64) ends each, and the journal cuts their results
//! into batches of 100 (`consumes = { tags = ["items"], from = ["work"], batch_size = 100,
//! group_by = "parent" }`) for a consumer `agg` that only notes when it got each. Every
//! loop polls an empty input after 1 ms, backing off to 5 ms (as in `chain_fanout_*`).
//! `items_per_s` counts from the start of the loops (the parent waiting in its queue) to
//! the start of the last batch; a batch's latency is from the end of its last item (the
//! latest `finished_at` of its items' journal records) to the start of the batch in
//! `agg`, on the same wall clock in milliseconds: each run gives the p50 and p99 over its
//! 1,000 batches, and the line has their medians over the runs with their spread. A run
//! fails unless every child is in exactly one batch and exactly one batch is marked last.
//! `dag_runs_local` is DAG runs of a 6-node diamond started by a workflow's start task on
//! the embedded default (module `dag`, whose header has the details).
//!
//! Method: the parent process only orchestrates and prints. Every measured run happens in
//! a child process (this executable re-run with `ERGON_BENCH_CHILD=<case>/<variant>`), so
//! peak RSS (`VmHWM` from `/proc/self/status`, read by the child at its end) belongs to one
//! variant alone; `peak_rss_mib` is the engine's highest (the worst run, not the median: it
//! is checked against a bound). Each child builds a 2-worker multi-thread runtime, warms up
//! on a shorter run, then times one run. A run that does not ack every transaction fails
//! the bench (non-zero exit).
//!
//! The variants a case compares run **interleaved**, `ERGON_BENCH_RUNS` times each (default
//! and minimum 5): engine, hand-written, engine, hand-written, … ([`Bench::interleave`]),
//! so that drift on this shared host (neighbours compiling, frequency changes) hits every
//! variant alike. Each number is reported as its median over the runs, never the best run,
//! with the lowest and highest run as its spread ([`Spread`]). A ratio (`ratio`,
//! `ratio_to_off`, `speedup`) is the ratio of the two **medians**; its `_min` / `_max` are
//! the lowest and highest ratio of runs that ran side by side (run `i` of one variant over
//! run `i` of the other), which always bracket the ratio of the medians. The `# ...` lines
//! on stderr give every run, the per-pair ratios and their own median, and the cost of
//! making the transactions alone (`source`, interleaved too).
//!
//! Knobs (environment): `ERGON_BENCH_TX` (transactions per timed run, default per case),
//! `ERGON_BENCH_RUNS`, and for exploring the engine `ERGON_BENCH_WORKERS` (consume loops
//! sharing the input; the case's concurrency is split between them) and
//! `ERGON_BENCH_BATCH` (fetch batch size).
//!
//! Add a case by writing a `parent` function (runs its variants with [`Bench::interleave`]
//! and builds the line from the [`Runs`]) and a `child` function (measures one variant and
//! returns its numbers), then listing them in [`CASES`].

use std::collections::BTreeMap;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use ergon_connectors::rabbitmq::{RabbitConfig, RabbitConnector};
use ergon_core::lifecycle::{ConsumerLifecycle, HybridLifecycle, Lifecycle};
use ergon_core::memory::MemoryConnector;
use ergon_core::runner::{ConsumeLoop, OnPool, ThreadPool, WorkerStats};
use ergon_core::{
    BlockingConsumer, Connector, Consumer, ConsumerPolicy, Context, Delivery, Hybrid, HybridPolicy,
    Settlement, TaskError, Transaction,
};
use tokio::sync::Semaphore;

/// Selects the case and variant a child process measures.
const CHILD_ENV: &str = "ERGON_BENCH_CHILD";

/// One benchmark case.
struct Case {
    /// The name printed on its line and matched by the argv filter.
    name: &'static str,
    /// Runs in the parent: measures through child processes, returns the line to print.
    parent: fn(&Bench, &Case) -> Result<String, String>,
    /// Runs in a child: measures one variant, returns its numbers (`peak_rss_mib` is added).
    child: fn(&str) -> Result<Sample, String>,
    /// Transactions per timed run unless `ERGON_BENCH_TX` says otherwise.
    tx: u64,
}

/// The registry. Later cases (amqp, telemetry) go here.
const CASES: &[Case] = &[
    Case {
        name: "inmemory_c1",
        parent: engine_vs_handwritten,
        child: |variant| inmemory::child(variant, 1, 1),
        tx: 1_000_000,
    },
    Case {
        name: "inmemory_c64",
        parent: engine_vs_handwritten,
        // One consume loop of concurrency 64: `concurrency = 64`, `workers = 1`.
        child: |variant| inmemory::child(variant, 64, 1),
        tx: 1_000_000,
    },
    Case {
        name: "inmemory_c64_w2",
        parent: engine_vs_handwritten,
        // Two consume loops of 32 (one per core, as `workers = 2` runs them), 64 in flight
        // in all: the hand-written loop spreads its spawned tasks over both cores too.
        child: |variant| inmemory::child(variant, 64, 2),
        tx: 1_000_000,
    },
    Case {
        name: "blocking_c1",
        parent: engine_vs_handwritten,
        child: |variant| blocking::child(variant, 1),
        tx: 200_000,
    },
    Case {
        name: "blocking_c2",
        parent: engine_vs_handwritten,
        child: |variant| blocking::child(variant, 2),
        tx: 200_000,
    },
    Case {
        name: "cpu_c1",
        parent: cpu::parent,
        child: |variant| cpu::child(variant, 1),
        tx: 5_000,
    },
    Case {
        name: "cpu_c2",
        parent: cpu::parent,
        child: |variant| cpu::child(variant, 2),
        tx: 5_000,
    },
    Case {
        name: "hybrid_fanout3",
        parent: hybrid::parent,
        child: hybrid::child,
        tx: 300_000,
    },
    Case {
        name: "amqp_consume_p50",
        parent: amqp::parent,
        child: |variant| amqp::consume(variant, 50),
        tx: 200_000,
    },
    Case {
        name: "amqp_consume_p500",
        parent: amqp::parent,
        child: |variant| amqp::consume(variant, 500),
        tx: 200_000,
    },
    Case {
        name: "amqp_publish",
        parent: amqp::publish_parent,
        child: amqp::publish,
        tx: 100_000,
    },
    Case {
        name: "local_enqueue",
        parent: local::parent,
        child: local::child,
        tx: 100_000,
    },
    Case {
        name: "local_consume",
        parent: local::parent,
        child: local::child,
        tx: 100_000,
    },
    Case {
        name: "journal_cost",
        parent: journal::cost_parent,
        child: journal::cost_child,
        tx: 100_000,
    },
    Case {
        name: "chain_fanout_local",
        parent: journal::fanout_parent,
        child: journal::fanout_child,
        tx: 100_000,
    },
    Case {
        name: "fanin_local",
        parent: journal::fanin::parent,
        child: journal::fanin::child,
        tx: 100_000,
    },
    Case {
        name: "dag_runs_local",
        parent: dag::parent,
        child: dag::child,
        tx: 10_000,
    },
    Case {
        name: "chain_fanout_amqp_pg",
        parent: journal::fanout_parent,
        child: journal::fanout_amqp_pg_child,
        tx: 100_000,
    },
    Case {
        name: "telemetry_off",
        parent: telemetry::parent,
        child: telemetry::child,
        tx: 1_000_000,
    },
    Case {
        name: "telemetry_spans",
        parent: telemetry::parent,
        child: telemetry::child,
        tx: 1_000_000,
    },
    Case {
        name: "telemetry_otlp_100",
        parent: telemetry::parent,
        child: telemetry::child,
        tx: 300_000,
    },
    Case {
        name: "telemetry_otlp_1",
        parent: telemetry::parent,
        child: telemetry::child,
        tx: 1_000_000,
    },
    Case {
        name: "pg_consume",
        parent: amqp::parent,
        child: pg::child,
        tx: 100_000,
    },
    Case {
        name: "redis_consume",
        parent: amqp::parent,
        child: redis_streams::child,
        tx: 100_000,
    },
    Case {
        name: "http_dispatch",
        parent: amqp::parent,
        child: http::child,
        tx: 20_000,
    },
];

/// Numbers reported by a child, by name.
type Sample = BTreeMap<String, f64>;

/// What the parent knows while running cases.
struct Bench {
    /// Transactions per timed run, overriding each case's own (`ERGON_BENCH_TX`).
    tx: Option<u64>,
    /// Runs of each variant (`ERGON_BENCH_RUNS`, at least [`MIN_RUNS`]), interleaved.
    runs: usize,
}

/// Runs of each variant when `ERGON_BENCH_RUNS` does not ask for more.
const MIN_RUNS: usize = 5;

impl Bench {
    /// Transactions per timed run of `case`.
    fn tx(&self, case: &Case) -> u64 {
        self.tx.unwrap_or(case.tx)
    }

    /// Runs every variant of `case` [`Bench::runs`] times, interleaved (A B C, A B C, …),
    /// so that drift on the host (neighbours compiling, frequency) hits every variant
    /// alike, and run `i` of each variant ran next to run `i` of the others.
    fn interleave(&self, case: &Case, variants: &[&'static str]) -> Result<Runs, String> {
        let mut samples = vec![Vec::with_capacity(self.runs); variants.len()];
        for _ in 0..self.runs {
            for (variant, runs) in variants.iter().zip(&mut samples) {
                runs.push(self.sample(case, variant)?);
            }
        }
        Ok(Runs {
            case: case.name,
            variants: variants.iter().copied().zip(samples).collect(),
        })
    }

    /// Runs `variant` of `case` in a child process and returns its numbers.
    fn sample(&self, case: &Case, variant: &str) -> Result<Sample, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let output = Command::new(exe)
            .env(CHILD_ENV, format!("{}/{variant}", case.name))
            .env("ERGON_BENCH_TX", self.tx(case).to_string())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("spawning the child for {}/{variant}: {e}", case.name))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "child {}/{variant} failed ({}): {stdout}",
                case.name, output.status
            ));
        }
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("sample "))
            .ok_or_else(|| format!("child {}/{variant} printed no sample", case.name))?;
        line.split_whitespace()
            .map(|kv| {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("bad field {kv:?}"))?;
                let v = v.parse().map_err(|_| format!("bad number in {kv:?}"))?;
                Ok((k.to_owned(), v))
            })
            .collect()
    }
}

/// The median of a number over a case's runs, and its spread.
#[derive(Debug, Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    /// The median (the mean of the middle two for an even count), lowest and highest of
    /// `values`, which must not be empty.
    fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        assert!(n > 0, "a spread of no values");
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        }
    }

    /// `key=<median> key_min=<min> key_max=<max>`, each with `decimals` decimals.
    fn fields(&self, key: &str, decimals: usize) -> String {
        let Self { median, min, max } = self;
        format!("{key}={median:.decimals$} {key}_min={min:.decimals$} {key}_max={max:.decimals$}")
    }
}

/// Every run of every variant of one case, in the order [`Bench::interleave`] ran them.
struct Runs {
    case: &'static str,
    variants: Vec<(&'static str, Vec<Sample>)>,
}

impl Runs {
    /// The runs of `variant`.
    fn of(&self, variant: &str) -> &[Sample] {
        self.variants
            .iter()
            .find_map(|(v, runs)| (*v == variant).then_some(runs.as_slice()))
            .unwrap_or_else(|| panic!("{}: no variant {variant:?}", self.case))
    }

    /// `key` of every run of `variant`, in run order.
    fn values(&self, variant: &str, key: &str) -> Vec<f64> {
        self.of(variant)
            .iter()
            .map(|s| s.get(key).copied().unwrap_or(f64::NAN))
            .collect()
    }

    /// The median and spread of `key` over the runs of `variant`.
    fn spread(&self, variant: &str, key: &str) -> Spread {
        Spread::of(&self.values(variant, key))
    }

    /// The highest `key` over the runs of `variant` (for peak memory: the worst run).
    fn max(&self, variant: &str, key: &str) -> f64 {
        self.values(variant, key)
            .into_iter()
            .fold(f64::NAN, f64::max)
    }

    /// `key` of `a` over `key` of `b`: the ratio of their medians, with the lowest and
    /// highest ratio of runs that ran side by side (run `i` of `a` over run `i` of `b`) as
    /// its spread. The ratio of the medians always lies within that spread: if every
    /// `a[i] ≥ c·b[i]`, the `k`-th smallest of `a` is at least `c` times the `k`-th
    /// smallest of `b`.
    fn ratio(&self, a: &str, b: &str, key: &str) -> Spread {
        let pairs = self.pair_ratios(a, b, key);
        let pairs = Spread::of(&pairs);
        Spread {
            median: self.spread(a, key).median / self.spread(b, key).median,
            ..pairs
        }
    }

    /// The fields of a `variant` reported beside a case's main comparison: its `key` as
    /// `<variant>_<key>=` and its ratio to `base` as `<variant>_ratio=`, each with its
    /// spread.
    fn beside(&self, variant: &str, base: &str, key: &str) -> String {
        format!(
            "{} {}",
            self.spread(variant, key)
                .fields(&format!("{variant}_{key}"), 0),
            self.ratio(variant, base, key)
                .fields(&format!("{variant}_ratio"), 2),
        )
    }

    /// Run `i` of `a` over run `i` of `b`, for every `i`.
    fn pair_ratios(&self, a: &str, b: &str, key: &str) -> Vec<f64> {
        let (a, b) = (self.values(a, key), self.values(b, key));
        a.iter().zip(&b).map(|(x, y)| x / y).collect()
    }

    /// On stderr, one `# ...` line per variant with `key` of every run, its median and
    /// spread, and for each `(a, b)` of `ratios` the per-run ratios and their median.
    fn describe(&self, key: &str, ratios: &[(&str, &str)]) {
        for (variant, _) in &self.variants {
            let values = self.values(variant, key);
            let Spread { median, min, max } = Spread::of(&values);
            eprintln!(
                "# {}/{variant}: {key} runs {values:.0?}; median {median:.0}, spread {min:.0}–{max:.0}",
                self.case
            );
        }
        for (a, b) in ratios {
            let pairs = self.pair_ratios(a, b, key);
            eprintln!(
                "# {}: {a}/{b} per run {pairs:.2?}; median of those {:.2}, ratio of medians {:.2}",
                self.case,
                Spread::of(&pairs).median,
                self.ratio(a, b, key).median
            );
        }
    }
}

fn main() -> ExitCode {
    if let Ok(selector) = std::env::var(CHILD_ENV) {
        return run_child(&selector);
    }
    // `cargo bench` passes `--bench`; flags other than `--list` are ignored, every other
    // argument is a filter on case names (substring match, any of them).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for case in CASES {
            println!("{}", case.name);
        }
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let bench = Bench {
        tx: std::env::var("ERGON_BENCH_TX")
            .ok()
            .and_then(|v| v.parse().ok()),
        runs: env_or("ERGON_BENCH_RUNS", MIN_RUNS).max(MIN_RUNS),
    };
    let mut failed = false;
    for case in CASES {
        if !filters.is_empty() && !filters.iter().any(|f| case.name.contains(f)) {
            continue;
        }
        match (case.parent)(&bench, case) {
            Ok(line) => println!("{line}"),
            Err(err) => {
                eprintln!("bench {} FAILED: {err}", case.name);
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn run_child(selector: &str) -> ExitCode {
    let (name, variant) = selector.split_once('/').unwrap_or((selector, ""));
    let Some(case) = CASES.iter().find(|c| c.name == name) else {
        eprintln!("unknown case {name:?}");
        return ExitCode::FAILURE;
    };
    match (case.child)(variant) {
        Ok(mut sample) => {
            sample.insert("peak_rss_mib".into(), peak_rss_mib());
            let fields: Vec<String> = sample.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("sample {}", fields.join(" "));
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// This process's peak resident set (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The parent of every case that compares the engine with a hand-written loop: runs the
/// `engine`, `handwritten` and `source` variants interleaved (see [`Bench::interleave`])
/// and prints `bench <case> tx= tx_per_s= handwritten_tx_per_s= ratio= peak_rss_mib=`,
/// each throughput and the ratio with its `_min` and `_max`.
fn engine_vs_handwritten(bench: &Bench, case: &Case) -> Result<String, String> {
    // `source`: what making and fetching the transactions alone costs (both loops pay it).
    let runs = bench.interleave(case, &["engine", "handwritten", "source"])?;
    runs.describe("tx_per_s", &[("engine", "handwritten")]);
    Ok(format!(
        "{} peak_rss_mib={:.1}",
        engine_vs_handwritten_line(bench, case, &runs),
        runs.max("engine", "peak_rss_mib")
    ))
}

/// The fields of an engine-versus-hand-written line before `peak_rss_mib` (and a detail
/// line on stderr).
fn engine_vs_handwritten_line(bench: &Bench, case: &Case, runs: &Runs) -> String {
    let engine = runs.of("engine");
    eprintln!(
        "# {}: workers={} batch={}; handwritten peak_rss_mib={:.1}",
        case.name,
        engine[0]["workers"],
        engine[0]["batch_size"],
        runs.max("handwritten", "peak_rss_mib"),
    );
    format!(
        "bench {} tx={} {} {} {} runs={}",
        case.name,
        bench.tx(case),
        runs.spread("engine", "tx_per_s").fields("tx_per_s", 0),
        runs.spread("handwritten", "tx_per_s")
            .fields("handwritten_tx_per_s", 0),
        runs.ratio("engine", "handwritten", "tx_per_s")
            .fields("ratio", 2),
        bench.runs,
    )
}

/// A warm-up run of `min(warm_up, tx)` transactions, then the timed run of `tx`:
/// `tx`, `secs` and `tx_per_s` of the timed one.
fn timed(
    tx: u64,
    warm_up: u64,
    run: impl Fn(u64) -> Result<Duration, String>,
) -> Result<Sample, String> {
    run(warm_up.min(tx))?;
    let elapsed = run(tx)?;
    let mut sample = Sample::new();
    sample.insert("tx".into(), tx as f64);
    sample.insert("secs".into(), elapsed.as_secs_f64());
    sample.insert("tx_per_s".into(), tx as f64 / elapsed.as_secs_f64());
    Ok(sample)
}

/// Runs `lifecycle` over `input` with `concurrency` transactions in flight (one worker),
/// checking that every transaction was acked; returns the elapsed time.
async fn run_lifecycle<L: Lifecycle>(
    lifecycle: L,
    policy: L::Policy,
    input: Arc<MemoryConnector>,
    output: Option<Arc<dyn Connector>>,
    n: u64,
) -> Result<Duration, String> {
    let mut cx = Context::builder("bench").input(input.clone());
    if let Some(output) = output {
        cx = cx.output(output);
    }
    let started = Instant::now();
    ConsumeLoop::new(Arc::new(lifecycle), cx.build(), Arc::new(policy))
        .run()
        .await
        .map_err(|e| format!("worker failed: {e}"))?;
    let elapsed = started.elapsed();
    if input.acked() != n {
        return Err(format!(
            "engine acked {} of {n} transactions",
            input.acked()
        ));
    }
    Ok(elapsed)
}

/// The runtime every child measures on: 2 workers, like the 2-core reference machine.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime")
}

#[path = "pipeline/dag.rs"]
mod dag;
#[path = "pipeline/http.rs"]
mod http;
#[path = "pipeline/pg.rs"]
mod pg;
#[path = "pipeline/redis.rs"]
mod redis_streams;

/// `inmemory_c<N>`: a no-op consumer over generated in-memory transactions.
mod inmemory {
    use super::*;

    /// The payload of every transaction (static: no copy per transaction).
    const PAYLOAD: &[u8] = br#"{"amount":1}"#;
    /// Fetch batch size of both loops: large enough that fetching (one lock, one `Vec`)
    /// is a small share of the cost, small enough that two batches stay a few KiB.
    pub(super) const BATCH_SIZE: usize = 256;
    /// Per-attempt timeout and attempts of the hand-written loop (the engine's defaults).
    const PER_ATTEMPT: Duration = Duration::from_secs(30);
    const MAX_ATTEMPTS: u32 = 3;
    const BACKOFF: Duration = Duration::from_millis(100);
    /// Transactions of the warm-up run before the timed one.
    const WARM_UP: u64 = 100_000;

    /// One variant at `concurrency` transactions in flight; the engine splits them over
    /// `workers` consume loops.
    pub(super) fn child(
        variant: &str,
        concurrency: usize,
        workers: usize,
    ) -> Result<Sample, String> {
        let tx = env_or("ERGON_BENCH_TX", 1_000_000);
        let batch_size = env_or("ERGON_BENCH_BATCH", BATCH_SIZE);
        let workers = env_or("ERGON_BENCH_WORKERS", workers).clamp(1, concurrency);
        let rt = runtime();
        let mut sample = timed(tx, WARM_UP, |n| match variant {
            "engine" => rt.block_on(engine(n, concurrency, workers, batch_size)),
            "handwritten" => rt.block_on(handwritten(n, concurrency, batch_size)),
            "source" => rt.block_on(source_only(n, batch_size)),
            other => Err(format!("unknown variant {other:?}")),
        })?;
        sample.insert("workers".into(), workers as f64);
        sample.insert("batch_size".into(), batch_size as f64);
        Ok(sample)
    }

    /// `n` transactions made as they are fetched: a short id and the static payload.
    pub(super) fn source(n: u64) -> Arc<MemoryConnector> {
        Arc::new(MemoryConnector::generated(n, |i| {
            Transaction::new(i.to_string(), PAYLOAD)
        }))
    }

    pub(super) struct Noop;

    impl Consumer for Noop {
        type Output = ();

        async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
            Ok(())
        }
    }

    /// The engine: `workers` consume loops share the input and split `concurrency`.
    pub(super) async fn engine(
        n: u64,
        concurrency: usize,
        workers: usize,
        batch_size: usize,
    ) -> Result<Duration, String> {
        let input = source(n);
        let task = Arc::new(Noop);
        let started = Instant::now();
        let loops: Vec<_> = (0..workers)
            .map(|worker| {
                let mut policy = ConsumerPolicy::default();
                // Worker `w` gets its share of the concurrency (they sum to `concurrency`).
                policy.r#loop.concurrency =
                    concurrency / workers + usize::from(worker < concurrency % workers);
                policy.fetch.batch_size = batch_size;
                let cx = Context::builder("bench")
                    .worker(worker)
                    .input(input.clone())
                    .build();
                tokio::spawn(ConsumeLoop::consumer(task.clone(), cx, Arc::new(policy)).run())
            })
            .collect();
        for handle in loops {
            handle
                .await
                .map_err(|e| format!("worker panicked: {e}"))?
                .map_err(|e| format!("worker failed: {e}"))?;
        }
        let elapsed = started.elapsed();
        if input.acked() != n {
            return Err(format!(
                "engine acked {} of {n} transactions",
                input.acked()
            ));
        }
        Ok(elapsed)
    }

    /// What a user would write by hand for the same work.
    async fn handwritten(
        n: u64,
        concurrency: usize,
        batch_size: usize,
    ) -> Result<Duration, String> {
        let input = source(n);
        let started = Instant::now();
        let acked = tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(concurrency));
            let acked = Arc::new(AtomicU64::new(0));
            loop {
                let batch = input.fetch(batch_size).await.map_err(|e| e.to_string())?;
                if batch.is_empty() {
                    break;
                }
                for tx in batch.into_iter().map(Delivery::into_transaction) {
                    let permit = permits.clone().acquire_owned().await.expect("open");
                    let acked = acked.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let mut attempt = 1;
                        loop {
                            match tokio::time::timeout(PER_ATTEMPT, noop(&tx)).await {
                                Ok(Ok(())) => {
                                    acked.fetch_add(1, Relaxed);
                                    break;
                                }
                                _ if attempt < MAX_ATTEMPTS => {
                                    tokio::time::sleep(BACKOFF * attempt).await;
                                    attempt += 1;
                                }
                                _ => break,
                            }
                        }
                    });
                }
            }
            // Every permit back: every transaction is done.
            let all = u32::try_from(concurrency).expect("concurrency fits u32");
            drop(permits.acquire_many(all).await.expect("open"));
            Ok::<_, String>(acked.load(Relaxed))
        })
        .await
        .map_err(|e| format!("hand-written loop panicked: {e}"))??;
        let elapsed = started.elapsed();
        if acked != n {
            return Err(format!(
                "hand-written loop acked {acked} of {n} transactions"
            ));
        }
        Ok(elapsed)
    }

    /// Only fetches (makes) the transactions and drops them: the floor under both loops.
    pub(super) async fn source_only(n: u64, batch_size: usize) -> Result<Duration, String> {
        let input = source(n);
        let started = Instant::now();
        let mut fetched = 0;
        loop {
            let batch = input.fetch(batch_size).await.map_err(|e| e.to_string())?;
            if batch.is_empty() {
                break;
            }
            fetched += batch.len() as u64;
            drop(std::hint::black_box(batch));
        }
        let elapsed = started.elapsed();
        if fetched != n {
            return Err(format!("the source made {fetched} of {n} transactions"));
        }
        Ok(elapsed)
    }

    async fn noop(tx: &Transaction) -> Result<(), TaskError> {
        std::hint::black_box(tx);
        Ok(())
    }
}

/// `blocking_c<N>` and `cpu_c<N>`: blocking consumers on the engine's thread pool (one
/// worker, `concurrency` = N threads) against what a user would write by hand: a
/// semaphore of N permits and `tokio::task::spawn_blocking` per transaction.
mod blocking {
    use super::*;

    /// Transactions of the warm-up run.
    const WARM_UP: u64 = 10_000;

    /// A blocking consumer whose process step is `work`; its success step is the default.
    struct Work(fn(&Transaction));

    impl BlockingConsumer for Work {
        type Output = ();

        fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
            (self.0)(tx);
            Ok(())
        }
    }

    /// The no-op of `blocking_c<N>`.
    fn noop(tx: &Transaction) {
        std::hint::black_box(tx);
    }

    pub(super) fn child(variant: &str, concurrency: usize) -> Result<Sample, String> {
        measure(variant, concurrency, noop)
    }

    /// One variant of a blocking case whose per-transaction work is `work`.
    pub(super) fn measure(
        variant: &str,
        concurrency: usize,
        work: fn(&Transaction),
    ) -> Result<Sample, String> {
        let tx = env_or("ERGON_BENCH_TX", 100_000);
        let rt = runtime();
        let batch = inmemory::BATCH_SIZE;
        let mut sample = timed(tx, WARM_UP, |n| match variant {
            "engine" => rt.block_on(engine(n, concurrency, work)),
            "handwritten" => rt.block_on(handwritten(n, concurrency, work)),
            "source" => rt.block_on(inmemory::source_only(n, batch)),
            other => Err(format!("unknown variant {other:?}")),
        })?;
        sample.insert("workers".into(), 1.0);
        sample.insert("batch_size".into(), batch as f64);
        if let Some(report) = threads::last() {
            eprintln!("# {variant} threads: {}", report.line);
            sample.extend(report.totals);
        }
        Ok(sample)
    }

    async fn engine(
        n: u64,
        concurrency: usize,
        work: fn(&Transaction),
    ) -> Result<Duration, String> {
        let mut policy = ConsumerPolicy::default();
        policy.r#loop.concurrency = concurrency;
        policy.fetch.batch_size = inmemory::BATCH_SIZE;
        let stats = Arc::new(WorkerStats::default());
        let pool = ThreadPool::new("bench", concurrency, stats).map_err(|e| e.to_string())?;
        let task = Arc::new(OnPool::new(Arc::new(Work(work)), pool));
        let lifecycle = ConsumerLifecycle::new(task.clone());
        let before = threads::snapshot();
        let elapsed = run_lifecycle(lifecycle, policy, inmemory::source(n), None, n).await?;
        // Read while the pool's threads still run (they end when `task` is dropped).
        threads::record(&before, n);
        drop(task);
        Ok(elapsed)
    }

    async fn handwritten(
        n: u64,
        concurrency: usize,
        work: fn(&Transaction),
    ) -> Result<Duration, String> {
        let input = inmemory::source(n);
        let before = threads::snapshot();
        let started = Instant::now();
        let permits = Arc::new(Semaphore::new(concurrency));
        let acked = Arc::new(AtomicU64::new(0));
        loop {
            let batch = input
                .fetch(inmemory::BATCH_SIZE)
                .await
                .map_err(|e| e.to_string())?;
            if batch.is_empty() {
                break;
            }
            for tx in batch.into_iter().map(Delivery::into_transaction) {
                let permit = permits.clone().acquire_owned().await.expect("open");
                let acked = acked.clone();
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    work(&tx);
                    acked.fetch_add(1, Relaxed);
                });
            }
        }
        let all = u32::try_from(concurrency).expect("concurrency fits u32");
        drop(permits.acquire_many(all).await.expect("open"));
        let elapsed = started.elapsed();
        threads::record(&before, n);
        match acked.load(Relaxed) {
            done if done == n => Ok(elapsed),
            done => Err(format!(
                "hand-written loop acked {done} of {n} transactions"
            )),
        }
    }
}

/// What the scheduler did with this process's threads during a timed run, from
/// `/proc/self/task/<tid>/{sched,stat}` (no privileges, no `perf`): per thread its last
/// CPU, CPU time, time spent runnable but waiting for a CPU, voluntary switches (it slept:
/// each one is a wake-up later), involuntary switches (preempted) and migrations.
mod threads {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::Sample;

    /// One thread's cumulative counters.
    #[derive(Debug, Clone, Default)]
    pub(super) struct Counters {
        name: String,
        cpu: u32,
        run_ms: f64,
        wait_ms: f64,
        voluntary: f64,
        involuntary: f64,
        migrations: f64,
    }

    /// A run's report: one line for stderr, and totals per transaction for the sample.
    pub(super) struct Report {
        pub(super) line: String,
        pub(super) totals: Sample,
    }

    static LAST: Mutex<Option<Report>> = Mutex::new(None);

    /// The counters of every thread of this process, by thread id.
    pub(super) fn snapshot() -> BTreeMap<u32, Counters> {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return BTreeMap::new();
        };
        tasks
            .flatten()
            .filter_map(|task| {
                let tid = task.file_name().to_str()?.parse().ok()?;
                let sched = std::fs::read_to_string(task.path().join("sched")).ok()?;
                let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
                let field = |name: &str| {
                    sched
                        .lines()
                        .find_map(|l| l.strip_prefix(name)?.trim().strip_prefix(':'))
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .unwrap_or(f64::NAN)
                };
                // `stat`: the name is in parentheses; field 39 (the 37th after it) is the CPU.
                let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
                let cpu = rest.split_whitespace().nth(36)?.parse().ok()?;
                let wait_ns: f64 = schedstat.split_whitespace().nth(1)?.parse().ok()?;
                Some((
                    tid,
                    Counters {
                        name: name.to_owned(),
                        cpu,
                        run_ms: field("se.sum_exec_runtime"),
                        wait_ms: wait_ns / 1e6,
                        voluntary: field("nr_voluntary_switches"),
                        involuntary: field("nr_involuntary_switches"),
                        migrations: field("se.nr_migrations"),
                    },
                ))
            })
            .collect()
    }

    /// Keeps what changed since `before` (a run of `n` transactions) for [`last`], summed
    /// over the threads of each name (`×k` when `k` threads share it).
    pub(super) fn record(before: &BTreeMap<u32, Counters>, n: u64) {
        let n = n as f64;
        let mut by_name: BTreeMap<String, (usize, Counters)> = BTreeMap::new();
        for (tid, now) in snapshot() {
            let was = before.get(&tid).cloned().unwrap_or_default();
            if now.run_ms - was.run_ms < 1.0 {
                continue;
            }
            let (threads, sum) = by_name.entry(now.name.clone()).or_default();
            *threads += 1;
            sum.cpu = now.cpu;
            sum.run_ms += now.run_ms - was.run_ms;
            sum.wait_ms += now.wait_ms - was.wait_ms;
            sum.voluntary += now.voluntary - was.voluntary;
            sum.involuntary += now.involuntary - was.involuntary;
            sum.migrations += now.migrations - was.migrations;
        }
        let mut parts = Vec::new();
        let mut totals = Sample::new();
        for (name, (threads, sum)) in by_name {
            let name = if threads > 1 {
                format!("{name}×{threads}")
            } else {
                format!("{name}@cpu{}", sum.cpu)
            };
            parts.push(format!(
                "{name} run={:.0}ms wait={:.0}ms sleeps/tx={:.2} preempted={} migrated={}",
                sum.run_ms,
                sum.wait_ms,
                sum.voluntary / n,
                sum.involuntary,
                sum.migrations
            ));
            *totals.entry("sleeps_per_tx".into()).or_default() += sum.voluntary / n;
            *totals.entry("migrations".into()).or_default() += sum.migrations;
        }
        *LAST
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Report {
            line: parts.join("; "),
            totals,
        });
    }

    /// The report of the last recorded run.
    pub(super) fn last() -> Option<Report> {
        LAST.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// `cpu_c<N>`: a CPU-bound blocking consumer (about 0.4 ms of hashing per transaction);
/// `cpu_c2` also prints its `speedup` over `cpu_c1`, which approaches 2 on 2 cores when the
/// pool adds nothing serial.
mod cpu {
    use super::*;

    /// Rounds of FNV-1a over the payload per transaction (about 0.4 ms here).
    const ROUNDS: u32 = 20_000;

    /// The CPU-bound work: iterated FNV-1a over the payload.
    fn hash(tx: &Transaction) {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for _ in 0..ROUNDS {
            for &byte in tx.payload().iter() {
                h ^= u64::from(byte);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        std::hint::black_box(h);
    }

    pub(super) fn child(variant: &str, concurrency: usize) -> Result<Sample, String> {
        match variant {
            // `cpu_c2` measures the engine at concurrency 1 beside its own runs, for `speedup`.
            "engine_c1" => blocking::measure("engine", 1, hash),
            _ => blocking::measure(variant, concurrency, hash),
        }
    }

    /// `cpu_c1` is an engine-versus-hand-written case. `cpu_c2` also runs the engine at
    /// concurrency 1 (`engine_c1`) interleaved with its own runs, and adds
    /// `speedup` = median engine at c2 ÷ median engine at c1, with the per-round spread.
    pub(super) fn parent(bench: &Bench, case: &Case) -> Result<String, String> {
        if case.name != "cpu_c2" {
            return engine_vs_handwritten(bench, case);
        }
        let runs = bench.interleave(case, &["engine", "handwritten", "engine_c1"])?;
        runs.describe(
            "tx_per_s",
            &[("engine", "handwritten"), ("engine", "engine_c1")],
        );
        Ok(format!(
            "{} peak_rss_mib={:.1} {}",
            engine_vs_handwritten_line(bench, case, &runs),
            runs.max("engine", "peak_rss_mib"),
            runs.ratio("engine", "engine_c1", "tx_per_s")
                .fields("speedup", 2),
        ))
    }
}

/// `hybrid_fanout3`: an async hybrid turning each inbound transaction into three children,
/// dispatched to a counting sink; `tx_per_s` counts inbound transactions.
mod hybrid {
    use super::*;

    /// Transactions of the warm-up run.
    const WARM_UP: u64 = 30_000;
    /// In flight at once.
    const CONCURRENCY: usize = 64;

    struct FanOut3;

    impl Hybrid for FanOut3 {
        async fn process_transaction(
            &self,
            _: &Context,
            tx: &Transaction,
        ) -> Result<Vec<Transaction>, TaskError> {
            Ok((0..3)
                .map(|k| {
                    tx.child(format!("{}/{k}", tx.id()), tx.payload().clone())
                        .build()
                })
                .collect())
        }
    }

    /// An output that confirms at once and counts.
    #[derive(Default)]
    struct Sink(AtomicU64);

    #[async_trait::async_trait]
    impl Connector for Sink {
        async fn fetch(&self, _: usize) -> Result<Vec<Delivery>, TaskError> {
            Ok(Vec::new())
        }

        async fn settle(
            &self,
            _: &Delivery,
            _: &Settlement,
        ) -> Result<ergon_core::SettleOutcome, TaskError> {
            Ok(ergon_core::SettleOutcome::Performed)
        }

        async fn dispatch(&self, transactions: &[Transaction]) -> Result<(), TaskError> {
            self.0.fetch_add(transactions.len() as u64, Relaxed);
            Ok(())
        }
    }

    pub(super) fn child(variant: &str) -> Result<Sample, String> {
        if variant != "engine" {
            return Err(format!("unknown variant {variant:?}"));
        }
        let tx = env_or("ERGON_BENCH_TX", 300_000);
        let rt = runtime();
        timed(tx, WARM_UP, |n| rt.block_on(engine(n)))
    }

    async fn engine(n: u64) -> Result<Duration, String> {
        let mut policy = HybridPolicy::default();
        policy.r#loop.concurrency = CONCURRENCY;
        policy.fetch.batch_size = inmemory::BATCH_SIZE;
        let sink = Arc::new(Sink::default());
        let lifecycle = HybridLifecycle::new(Arc::new(FanOut3));
        let elapsed = run_lifecycle(
            lifecycle,
            policy,
            inmemory::source(n),
            Some(sink.clone()),
            n,
        )
        .await?;
        match sink.0.load(Relaxed) {
            sent if sent == 3 * n => Ok(elapsed),
            sent => Err(format!("dispatched {sent} of {} children", 3 * n)),
        }
    }

    pub(super) fn parent(bench: &Bench, case: &Case) -> Result<String, String> {
        let runs = bench.interleave(case, &["engine"])?;
        runs.describe("tx_per_s", &[]);
        let tx_per_s = runs.spread("engine", "tx_per_s");
        Ok(format!(
            "bench {} tx={} {} outbound_per_s={:.0} peak_rss_mib={:.1} runs={}",
            case.name,
            bench.tx(case),
            tx_per_s.fields("tx_per_s", 0),
            3.0 * tx_per_s.median,
            runs.max("engine", "peak_rss_mib"),
            bench.runs,
        ))
    }
}

/// `amqp_*`: the RabbitMQ connector against raw lapin, on the local broker.
mod amqp {
    use futures_util::StreamExt as _;
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    };
    use lapin::types::{FieldTable, ShortString};
    use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

    use super::*;
    use ergon_core::{Producer, ProducerPolicy};

    pub(super) const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
    /// Every message's body.
    pub(super) const BODY: [u8; 100] = [b'x'; 100];

    /// Dispatches `n` transactions of [`BODY`] (ids `0`, `1`, …) into `queue`, 5,000 per
    /// dispatch: how the consume cases of the other transports fill their input.
    pub(super) async fn fill(queue: &dyn ergon_core::Connector, n: u64) -> Result<(), String> {
        let all: Vec<Transaction> = (0..n)
            .map(|i| Transaction::new(i.to_string(), &BODY[..]))
            .collect();
        for chunk in all.chunks(5_000) {
            queue
                .dispatch(chunk)
                .await
                .map_err(|e| e.chain().to_string())?;
        }
        Ok(())
    }
    /// Transactions in flight in the engine when consuming.
    const CONCURRENCY: usize = 64;
    /// Transactions in flight in the engine when publishing: each waits for its confirm,
    /// so this is the number of confirms outstanding.
    const PUBLISH_CONCURRENCY: usize = 256;
    /// The same for the `wide` variant: a producer tuned for throughput (a wider window
    /// publishes no faster here: BENCHMARKS.md, "`amqp_publish`: the window of confirms").
    const WIDE_PUBLISH_CONCURRENCY: usize = 1024;

    pub(super) fn parent(bench: &Bench, case: &Case) -> Result<String, String> {
        let runs = bench.interleave(case, &["engine", "raw"])?;
        runs.describe("msgs_per_s", &[("engine", "raw")]);
        Ok(format!(
            "bench {} msgs={} {} {} {} runs={}",
            case.name,
            bench.tx(case),
            runs.spread("engine", "msgs_per_s").fields("msgs_per_s", 0),
            runs.spread("raw", "msgs_per_s").fields("raw_msgs_per_s", 0),
            runs.ratio("engine", "raw", "msgs_per_s").fields("ratio", 2),
            bench.runs,
        ))
    }

    /// `amqp_publish`: the engine at the case's concurrency and at a wide window, each
    /// against the raw loop, the three interleaved.
    pub(super) fn publish_parent(bench: &Bench, case: &Case) -> Result<String, String> {
        let runs = bench.interleave(case, &["engine", "wide", "raw"])?;
        runs.describe("msgs_per_s", &[("engine", "raw"), ("wide", "raw")]);
        Ok(format!(
            "bench {} msgs={} {} {} {} {} runs={}",
            case.name,
            bench.tx(case),
            runs.spread("engine", "msgs_per_s").fields("msgs_per_s", 0),
            runs.spread("raw", "msgs_per_s").fields("raw_msgs_per_s", 0),
            runs.ratio("engine", "raw", "msgs_per_s").fields("ratio", 2),
            runs.beside("wide", "raw", "msgs_per_s"),
            bench.runs,
        ))
    }

    async fn channel() -> Result<(Connection, Channel), String> {
        let connection = Connection::connect(URL, ConnectionProperties::default())
            .await
            .map_err(|e| format!("RabbitMQ is not reachable at {URL}: {e}"))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| e.to_string())?;
        Ok((connection, channel))
    }

    pub(super) fn queue_name(what: &str) -> String {
        format!("ergon-bench-{what}-{}", std::process::id())
    }

    /// Deletes queue `name` (left by an earlier run), if it exists.
    pub(super) async fn deleted(name: &str) -> Result<(), String> {
        let (_connection, channel) = channel().await?;
        let _ = channel
            .queue_delete(ShortString::from(name), QueueDeleteOptions::default())
            .await;
        Ok(())
    }

    /// A fresh queue holding `n` messages, published with confirms.
    async fn filled(name: &str, n: u64) -> Result<(), String> {
        let (_connection, channel) = channel().await?;
        let _ = channel
            .queue_delete(ShortString::from(name), QueueDeleteOptions::default())
            .await;
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(ShortString::from(name), durable, FieldTable::default())
            .await
            .map_err(|e| e.to_string())?;
        raw_publish(&channel, name, n, false).await
    }

    /// Publishes `n` messages pipelined, then waits for every confirm. `like_dispatch`:
    /// each as the connector's dispatch publishes it (persistent, `mandatory`, its id as
    /// `message_id`, a return counted as a failure), the same work for the broker.
    async fn raw_publish(
        channel: &Channel,
        queue: &str,
        n: u64,
        like_dispatch: bool,
    ) -> Result<(), String> {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let options = BasicPublishOptions {
            mandatory: like_dispatch,
            ..BasicPublishOptions::default()
        };
        // Confirms outstanding at most (`ERGON_BENCH_RAW_WINDOW`, default: all of them):
        // the window a producer's concurrency gives the engine, for comparing the two at
        // the same window.
        let window = env_or("ERGON_BENCH_RAW_WINDOW", n).max(1) as usize;
        let mut confirms = std::collections::VecDeque::with_capacity(window.min(n as usize));
        for i in 0..n {
            if confirms.len() == window
                && let Some(oldest) = confirms.pop_front()
            {
                confirmed(oldest).await?;
            }
            let properties = if like_dispatch {
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(ShortString::from(i.to_string()))
            } else {
                BasicProperties::default()
            };
            confirms.push_back(
                channel
                    .basic_publish(
                        ShortString::from(""),
                        ShortString::from(queue),
                        options,
                        &BODY,
                        properties,
                    )
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        for confirm in confirms {
            confirmed(confirm).await?;
        }
        Ok(())
    }

    /// Waits for `confirm`: an ack of a message not returned.
    async fn confirmed(confirm: lapin::PublisherConfirm) -> Result<(), String> {
        match confirm.await.map_err(|e| e.to_string())? {
            lapin::Confirmation::Ack(None) => Ok(()),
            lapin::Confirmation::Ack(Some(_)) => Err("a publish was returned".into()),
            _ => Err("a publish was nacked".into()),
        }
    }

    async fn delete(name: &str) -> Result<u32, String> {
        let (_connection, channel) = channel().await?;
        let left = channel
            .queue_declare(
                ShortString::from(name),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| e.to_string())?
            .message_count();
        channel
            .queue_delete(ShortString::from(name), QueueDeleteOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(left)
    }

    /// `msgs` and `msgs_per_s` of a run that moved `n` messages in `elapsed`.
    pub(super) fn sample(n: u64, elapsed: Duration) -> Sample {
        let mut sample = Sample::new();
        sample.insert("msgs".into(), n as f64);
        sample.insert("msgs_per_s".into(), n as f64 / elapsed.as_secs_f64());
        sample
    }

    pub(super) fn consume(variant: &str, prefetch: u16) -> Result<Sample, String> {
        let n = env_or("ERGON_BENCH_TX", 200_000);
        let queue = queue_name(&format!("consume-p{prefetch}"));
        runtime().block_on(async {
            filled(&queue, n).await?;
            let elapsed = match variant {
                "engine" => consume_engine(&queue, prefetch, n).await?,
                "raw" => consume_raw(&queue, prefetch, n).await?,
                other => return Err(format!("unknown variant {other:?}")),
            };
            match delete(&queue).await? {
                0 => Ok(sample(n, elapsed)),
                left => Err(format!("{left} messages were not acked")),
            }
        })
    }

    async fn consume_engine(queue: &str, prefetch: u16, n: u64) -> Result<Duration, String> {
        let config = RabbitConfig {
            url: URL.into(),
            queue: Some(queue.to_owned()),
            prefetch,
            ..RabbitConfig::default()
        };
        let input = Arc::new(
            RabbitConnector::connect(Arc::new(config), "bench".into())
                .await
                .map_err(|e| e.to_string())?,
        );
        let mut policy = ConsumerPolicy::default();
        policy.r#loop.concurrency = CONCURRENCY;
        // Streaming with a limit, like the raw consumer: it stops after `n`, not at the
        // first pause of the broker longer than `fetch_wait` (on a loaded host one ended a
        // run after 7,500 of 200,000).
        policy.r#loop.streaming = true;
        policy.r#loop.limit = Some(n);
        policy.fetch.batch_size = inmemory::BATCH_SIZE;
        let cx = Context::builder("bench").input(input.clone()).build();
        let started = Instant::now();
        ConsumeLoop::consumer(Arc::new(inmemory::Noop), cx, Arc::new(policy))
            .run()
            .await
            .map_err(|e| e.to_string())?;
        input.close().await.map_err(|e| e.to_string())?;
        Ok(started.elapsed())
    }

    async fn consume_raw(queue: &str, prefetch: u16, n: u64) -> Result<Duration, String> {
        let (_connection, channel) = channel().await?;
        let every = u64::from(prefetch / 2).clamp(1, 100);
        let started = Instant::now();
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let mut consumer = channel
            .basic_consume(
                ShortString::from(queue),
                ShortString::from("raw"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut count = 0;
        let mut last = 0;
        while count < n {
            let delivery = consumer
                .next()
                .await
                .ok_or("the consumer ended")?
                .map_err(|e| e.to_string())?;
            std::hint::black_box(&delivery.data);
            count += 1;
            last = delivery.delivery_tag;
            if count % every == 0 {
                channel
                    .basic_ack(last, BasicAckOptions { multiple: true })
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        channel
            .basic_ack(last, BasicAckOptions { multiple: true })
            .await
            .map_err(|e| e.to_string())?;
        Ok(started.elapsed())
    }

    /// Generates `n` transactions of [`BODY`] and dispatches each unchanged.
    pub(super) struct Publish {
        pub(super) next: AtomicU64,
        pub(super) n: u64,
    }

    impl Producer for Publish {
        async fn generate_transactions(
            &self,
            _: &Context,
            max: usize,
        ) -> Result<Vec<Transaction>, TaskError> {
            let start = self.next.fetch_add(max as u64, Relaxed).min(self.n);
            let end = (start + max as u64).min(self.n);
            Ok((start..end)
                .map(|i| Transaction::new(i.to_string(), &BODY[..]))
                .collect())
        }

        async fn prepare_transaction(
            &self,
            _: &Context,
            tx: &Transaction,
        ) -> Result<Transaction, TaskError> {
            Ok(tx.clone())
        }
    }

    pub(super) fn publish(variant: &str) -> Result<Sample, String> {
        let n = env_or("ERGON_BENCH_TX", 100_000);
        let queue = queue_name("publish");
        runtime().block_on(async {
            filled(&queue, 0).await?;
            let started = Instant::now();
            match variant {
                "engine" => {
                    let concurrency =
                        env_or("ERGON_BENCH_PUBLISH_CONCURRENCY", PUBLISH_CONCURRENCY);
                    publish_engine(&queue, n, concurrency).await?;
                }
                "wide" => publish_engine(&queue, n, WIDE_PUBLISH_CONCURRENCY).await?,
                "raw" => {
                    let (_connection, channel) = channel().await?;
                    raw_publish(&channel, &queue, n, true).await?;
                }
                other => return Err(format!("unknown variant {other:?}")),
            }
            let elapsed = started.elapsed();
            match delete(&queue).await? {
                left if u64::from(left) == n => Ok(sample(n, elapsed)),
                left => Err(format!("{left} of {n} messages arrived")),
            }
        })
    }

    async fn publish_engine(queue: &str, n: u64, concurrency: usize) -> Result<(), String> {
        let config = RabbitConfig {
            url: URL.into(),
            queue: Some(queue.to_owned()),
            ..RabbitConfig::default()
        };
        let output = Arc::new(
            RabbitConnector::connect(Arc::new(config), "bench".into())
                .await
                .map_err(|e| e.to_string())?,
        );
        let mut policy = ProducerPolicy::default();
        policy.r#loop.concurrency = concurrency;
        policy.fetch.batch_size = inmemory::BATCH_SIZE;
        let cx = Context::builder("bench").output(output.clone()).build();
        let task = Arc::new(Publish {
            next: AtomicU64::new(0),
            n,
        });
        ConsumeLoop::producer(task, cx, Arc::new(policy))
            .run()
            .await
            .map_err(|e| e.to_string())?;
        output.close().await.map_err(|e| e.to_string())
    }
}

/// `telemetry_*`: `inmemory_c64` (one loop, concurrency 64) with telemetry off, with
/// spans recorded into ergon's span pipeline but no exporter, and exporting by OTLP/HTTP to a
/// receiver in the same process at 100 % and 1 % sampling. Each case alternates its
/// variant with `off` and prints `bench <case> tx= tx_per_s= ratio_to_off=`.
mod telemetry {
    use std::io::{Read as _, Write as _};

    use super::*;
    use ergon_runner::telemetry::traces::Traces;
    use ergon_runner::telemetry::{self, LogFormat};
    use opentelemetry_otlp::SpanExporter;
    use opentelemetry_sdk::Resource;

    const WARM_UP: u64 = 100_000;

    pub(super) fn parent(bench: &Bench, case: &Case) -> Result<String, String> {
        let variant = VARIANTS
            .iter()
            .copied()
            .find(|v| case.name.strip_prefix("telemetry_") == Some(*v))
            .ok_or_else(|| format!("no variant for {}", case.name))?;
        let variants: &[&'static str] = if variant == "off" {
            &["off"]
        } else {
            &["off", variant]
        };
        let runs = bench.interleave(case, variants)?;
        runs.describe("tx_per_s", &[(variant, "off")]);
        Ok(format!(
            "bench {} tx={} {} {} runs={}",
            case.name,
            bench.tx(case),
            runs.spread(variant, "tx_per_s").fields("tx_per_s", 0),
            runs.ratio(variant, "off", "tx_per_s")
                .fields("ratio_to_off", 2),
            bench.runs,
        ))
    }

    /// The variants, each the suffix of its case's name.
    const VARIANTS: &[&str] = &["off", "spans", "otlp_100", "otlp_1"];

    pub(super) fn child(variant: &str) -> Result<Sample, String> {
        let tx = env_or("ERGON_BENCH_TX", 1_000_000);
        let resource = Resource::builder_empty().build();
        let traces = match variant {
            "off" => None,
            "spans" => Some(Traces::new(None::<SpanExporter>, resource)),
            "otlp_100" | "otlp_1" => {
                let endpoint = format!("http://{}/v1/traces", receiver()?);
                Some(Traces::otlp(&endpoint, resource)?)
            }
            other => return Err(format!("unknown variant {other:?}")),
        };
        ergon_telemetry::sampling::set_ratio(if variant == "otlp_1" { 0.01 } else { 1.0 });
        if let Some(traces) = &traces {
            // What a run installs: warnings as log lines, spans to the pipeline.
            let filter = tracing_subscriber::EnvFilter::new("warn");
            let subscriber = telemetry::subscriber(LogFormat::Text, false, filter, Some(traces));
            tracing::subscriber::set_global_default(subscriber).map_err(|e| e.to_string())?;
        }
        let rt = runtime();
        let sample = timed(tx, WARM_UP, |n| {
            rt.block_on(inmemory::engine(n, 64, 1, inmemory::BATCH_SIZE))
        })?;
        if let Some(traces) = traces {
            traces.shutdown()?;
        }
        Ok(sample)
    }

    /// An OTLP/HTTP receiver on its own thread that reads each request and answers 200.
    fn receiver() -> Result<std::net::SocketAddr, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || drain_requests(stream));
            }
        });
        Ok(address)
    }

    fn drain_requests(mut stream: std::net::TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
            else {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .and_then(|v| v.trim().parse().ok())
                })
                .unwrap_or(0);
            while buf.len() < head_end + length {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            buf.drain(..head_end + length);
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .is_err()
            {
                return;
            }
        }
    }
}

/// `local_enqueue`, `local_consume`: the local queue (SQLite file in a temporary
/// directory). Enqueue: a producer at concurrency 64 dispatching 100,000 100-byte
/// transactions into it, one dispatch per transaction. Consume: 100,000 pre-enqueued
/// (not timed) fetched, processed by a no-op consumer at concurrency 64 and acked.
/// Prints `bench <case> tx= tx_per_s=` (the median of the runs, with its spread).
mod local {
    use super::*;
    use ergon_connectors::local::{LocalConfig, LocalConnector, NewRow, Store};
    use ergon_core::ProducerPolicy;

    pub(super) fn parent(bench: &Bench, case: &Case) -> Result<String, String> {
        let runs = bench.interleave(case, &["engine"])?;
        runs.describe("tx_per_s", &[]);
        Ok(format!(
            "bench {} tx={} {} runs={}",
            case.name,
            bench.tx(case),
            runs.spread("engine", "tx_per_s").fields("tx_per_s", 0),
            bench.runs,
        ))
    }

    pub(super) fn child(_variant: &str) -> Result<Sample, String> {
        let n = env_or("ERGON_BENCH_TX", 100_000);
        let case = std::env::var(CHILD_ENV).unwrap_or_default();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("queue.db");
        runtime().block_on(async {
            let queue = LocalConnector::open(path.clone(), "bench".into(), &LocalConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            let queue = Arc::new(queue);
            let elapsed = if case.starts_with("local_enqueue") {
                enqueue(queue.clone(), n).await?
            } else {
                fill(&path, n)?;
                consume(queue.clone(), n).await?
            };
            queue.close().await.map_err(|e| e.to_string())?;
            let depths = queue.depths().await.map_err(|e| e.to_string())?;
            let expected = if case.starts_with("local_enqueue") {
                n
            } else {
                0
            };
            if depths.ready != expected || depths.in_flight != 0 {
                return Err(format!(
                    "queue holds {depths:?} after the run, expected {expected} ready"
                ));
            }
            let mut sample = Sample::new();
            sample.insert("tx".into(), n as f64);
            sample.insert("tx_per_s".into(), n as f64 / elapsed.as_secs_f64());
            Ok(sample)
        })
    }

    async fn enqueue(output: Arc<LocalConnector>, n: u64) -> Result<Duration, String> {
        let mut policy = ProducerPolicy::default();
        policy.r#loop.concurrency = 64;
        policy.fetch.batch_size = inmemory::BATCH_SIZE;
        let cx = Context::builder("bench").output(output).build();
        let task = Arc::new(amqp::Publish {
            next: AtomicU64::new(0),
            n,
        });
        let started = Instant::now();
        ConsumeLoop::producer(task, cx, Arc::new(policy))
            .run()
            .await
            .map_err(|e| e.to_string())?;
        Ok(started.elapsed())
    }

    /// Enqueues `n` transactions of [`amqp::BODY`] (ids `0`, `1`, …) into the queue
    /// `bench` of the file at `path`.
    pub(super) fn fill(path: &std::path::Path, n: u64) -> Result<(), String> {
        fill_with(path, n, |_| amqp::BODY.to_vec())
    }

    /// Enqueues `n` transactions (ids `0`, `1`, …, transaction `i` of `payload(i)`) into
    /// the queue `bench` of the file at `path`.
    pub(super) fn fill_with(
        path: &std::path::Path,
        n: u64,
        payload: impl Fn(u64) -> Vec<u8>,
    ) -> Result<(), String> {
        let mut store = Store::open(path).map_err(|e| e.to_string())?;
        let made: Vec<(String, Vec<u8>)> = (0..n).map(|i| (i.to_string(), payload(i))).collect();
        for chunk in made.chunks(1_000) {
            let rows: Vec<NewRow<'_>> = chunk
                .iter()
                .map(|(id, payload)| NewRow {
                    id,
                    payload,
                    metadata: "{}".into(),
                })
                .collect();
            store.enqueue("bench", &rows).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn consume(input: Arc<LocalConnector>, n: u64) -> Result<Duration, String> {
        let mut policy = ConsumerPolicy::default();
        policy.r#loop.concurrency = 64;
        policy.fetch.batch_size = inmemory::BATCH_SIZE;
        let cx = Context::builder("bench").input(input).build();
        let started = Instant::now();
        let end = ConsumeLoop::consumer(Arc::new(inmemory::Noop), cx, Arc::new(policy))
            .run()
            .await
            .map_err(|e| e.to_string())?;
        let elapsed = started.elapsed();
        if end != ergon_core::runner::LoopEnd::Exhausted {
            return Err(format!("the loop ended with {end:?}, n = {n}"));
        }
        Ok(elapsed)
    }
}

/// The journal cases: what recording every completion costs, and a fan-out / fan-in
/// through the journal on the embedded default.
mod journal {
    use super::*;
    use ergon_connectors::local::{LocalConfig, LocalConnector};
    use ergon_core::journal::Journal;
    use ergon_core::runner::RunQuiet;
    use ergon_journal::{DurableJournal, Record, Routes, Settings};
    use serde_json::json;
    use std::sync::Mutex;

    pub(super) fn cost_parent(bench: &Bench, case: &Case) -> Result<String, String> {
        let runs = bench.interleave(case, &["all", "own_file", "off"])?;
        runs.describe("tx_per_s", &[("all", "off"), ("own_file", "off")]);
        Ok(format!(
            "bench {} tx={} {} {} {} {} runs={}",
            case.name,
            bench.tx(case),
            runs.spread("all", "tx_per_s").fields("tx_per_s", 0),
            runs.spread("off", "tx_per_s").fields("off_tx_per_s", 0),
            runs.ratio("all", "off", "tx_per_s").fields("ratio", 2),
            runs.beside("own_file", "off", "tx_per_s"),
            bench.runs,
        ))
    }

    /// `local_consume`, with a journal recording everything in the queue's file (`all`) or
    /// in a file of its own (`own_file`), or no journal (`off`).
    pub(super) fn cost_child(variant: &str) -> Result<Sample, String> {
        let n = env_or("ERGON_BENCH_TX", 100_000);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("queue.db");
        local::fill(&path, n)?;
        runtime().block_on(async {
            let input = LocalConnector::open(path.clone(), "bench".into(), &LocalConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            let input = Arc::new(input);
            // As the runner opens it: with `all` the task reads a queue in the journal's
            // file; with `own_file` no queue is in the journal's file.
            let journal = match variant {
                "all" => Some(open(
                    &path,
                    Record::All,
                    Routes::new().queue("bench", "bench"),
                    &[],
                )),
                "own_file" => {
                    let own = dir.path().join("journal.db");
                    Some(open(&own, Record::All, Routes::new(), &[]))
                }
                "off" => None,
                other => return Err(format!("unknown variant {other:?}")),
            }
            .transpose()?;
            let mut policy = ConsumerPolicy::default();
            policy.r#loop.concurrency = 64;
            policy.fetch.batch_size = inmemory::BATCH_SIZE;
            let mut cx = Context::builder("bench").input(input.clone());
            if let Some(journal) = &journal {
                cx = cx.journal(journal.clone());
            }
            let started = Instant::now();
            ConsumeLoop::consumer(Arc::new(inmemory::Noop), cx.build(), Arc::new(policy))
                .run()
                .await
                .map_err(|e| e.to_string())?;
            let elapsed = started.elapsed();
            input.close().await.map_err(|e| e.to_string())?;
            if let Some(journal) = &journal {
                let last = journal
                    .reader()
                    .get(&(n - 1).to_string())
                    .await
                    .map_err(|e| e.to_string())?;
                if last.len() != 1 {
                    return Err(format!("transaction {} is not journaled", n - 1));
                }
            }
            let mut sample = Sample::new();
            sample.insert("tx".into(), n as f64);
            sample.insert("tx_per_s".into(), n as f64 / elapsed.as_secs_f64());
            Ok(sample)
        })
    }

    fn open(
        path: &std::path::Path,
        record: Record,
        routes: Routes,
        running: &[&str],
    ) -> Result<Arc<DurableJournal>, String> {
        let settings = Settings {
            record,
            routes,
            running: running.iter().map(|task| (*task).to_owned()).collect(),
            ..Settings::default()
        };
        DurableJournal::sqlite(path, settings)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }

    pub(super) fn fanout_parent(bench: &Bench, case: &Case) -> Result<String, String> {
        let runs = bench.interleave(case, &["engine"])?;
        runs.describe("children_per_s", &[]);
        runs.describe("fanin_ms", &[]);
        let fanin = runs.spread("engine", "fanin_ms");
        Ok(format!(
            "bench {} children={} {} fanin_p50_ms={:.1} fanin_p99_ms={:.1} runs={}",
            case.name,
            bench.tx(case),
            runs.spread("engine", "children_per_s")
                .fields("children_per_s", 0),
            fanin.median,
            fanin.max,
            bench.runs,
        ))
    }

    /// Spawns `{"children": n}` no-op children and parks `fan_in` on all of them.
    struct Parent;

    impl Consumer for Parent {
        type Output = ();

        async fn process_transaction(
            &self,
            cx: &Context,
            tx: &Transaction,
        ) -> Result<(), TaskError> {
            let n = tx.json::<serde_json::Value>()?["children"]
                .as_u64()
                .unwrap_or(0);
            let children = (0..n).map(|k| tx.child(format!("{}/{k}", tx.id()), "{}").build());
            let members = cx.spawn_all("child", children.collect()).await?;
            cx.when_all(tx, members).then("fan_in").await
        }
    }

    /// Notes when the continuation started and how many members it got.
    struct FanIn(Mutex<Option<(i64, Instant, u64)>>);

    impl Consumer for FanIn {
        type Output = ();

        async fn process_transaction(
            &self,
            _: &Context,
            tx: &Transaction,
        ) -> Result<(), TaskError> {
            let (at_ms, at) = (ergon_core::journal::now_ms(), Instant::now());
            let members = tx.json::<serde_json::Value>()?["total"]
                .as_u64()
                .unwrap_or(0);
            *self.0.lock().unwrap() = Some((at_ms, at, members));
            Ok(())
        }
    }

    /// One fan-out of `n` children through a journal in the queues' file.
    pub(super) fn fanout_child(_variant: &str) -> Result<Sample, String> {
        let n = env_or("ERGON_BENCH_TX", 100_000);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("queue.db");
        let tasks = ["parent", "child", "fan_in"];
        let routes = tasks.iter().fold(Routes::new(), |r, t| r.queue(*t, *t));
        let journal = open(&path, Record::Workflow, routes, &tasks)?;
        runtime().block_on(async {
            let config = LocalConfig::default();
            let queue = |name: &str| LocalConnector::open(path.clone(), name.to_owned(), &config);
            let opened = Opened {
                parents: Arc::new(queue("parent").await.map_err(|e| e.to_string())?),
                children: Arc::new(queue("child").await.map_err(|e| e.to_string())?),
                fan_ins: Arc::new(queue("fan_in").await.map_err(|e| e.to_string())?),
            };
            let reader = journal.reader();
            fan_out(n, 64, journal.clone(), reader.as_ref(), opened).await
        })
    }

    /// The PostgreSQL the journal cases use.
    const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

    /// One fan-out of `n` children across machines' parts: the children on a RabbitMQ
    /// queue, the journal in PostgreSQL (a fresh schema) relaying them there; the parent
    /// and the fan-in on local queues.
    pub(super) fn fanout_amqp_pg_child(_variant: &str) -> Result<Sample, String> {
        use ergon_core::config::{ConfigEnv, ConnectorKind as _};
        let n = env_or("ERGON_BENCH_TX", 100_000);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let child_queue = amqp::queue_name("fanout-child");
        let schema = format!("bench_fanout_{}", std::process::id());
        let env = ConfigEnv {
            name: "bench".into(),
            base_dir: dir.path().to_path_buf(),
        };
        let rabbit = json!({ "url": amqp::URL, "queue": child_queue, "prefetch": 256 });
        let rabbit = ergon_connectors::rabbitmq::RabbitKind
            .configure(rabbit, &env)
            .map_err(|e| e.to_string())?;
        let local = |queue: &str| {
            ergon_connectors::local::LocalKind
                .configure(json!({ "path": "queue.db", "queue": queue }), &env)
                .map_err(|e| e.to_string())
        };
        runtime().block_on(async {
            amqp::deleted(&child_queue).await?;
            drop_schema(&schema).await?;
            let settings = Settings {
                record: Record::Workflow,
                routes: Routes::new().relay("child").relay("fan_in"),
                running: ["parent", "child", "fan_in"].map(str::to_owned).to_vec(),
                ..Settings::default()
            };
            let relays = [("child", rabbit.clone()), ("fan_in", local("fan_in")?)]
                .into_iter()
                .map(|(task, make)| (task.to_owned(), make))
                .collect();
            let journal = DurableJournal::postgres(POSTGRES, &schema, settings, relays)
                .await
                .map_err(|e| e.to_string())?;
            let journal = Arc::new(journal);
            let connect = |make: Arc<dyn ergon_core::config::MakeConnector>| async move {
                make.connect(0).await.map_err(|e| e.to_string())
            };
            let opened = Opened {
                parents: connect(local("parent")?).await?,
                children: connect(rabbit).await?,
                fan_ins: connect(local("fan_in")?).await?,
            };
            // Each child waits for a lookup and a commit over the network: more in flight
            // (the queue's prefetch) keep the pipe full.
            let reader = journal.reader();
            let sample = fan_out(n, 256, journal.clone(), reader.as_ref(), opened).await;
            drop(journal);
            amqp::deleted(&child_queue).await?;
            drop_schema(&schema).await?;
            sample
        })
    }

    /// Drops `schema` (and the journal's tables in it) when it exists.
    async fn drop_schema(schema: &str) -> Result<(), String> {
        let (client, connection) = tokio_postgres::connect(POSTGRES, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("PostgreSQL is not reachable at {POSTGRES}: {e}"))?;
        let driver = tokio::spawn(connection);
        let dropped = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .map_err(|e| e.to_string());
        drop(client);
        let _ = driver.await;
        dropped
    }

    /// The three queues of a fan-out.
    struct Opened {
        parents: Arc<dyn Connector>,
        children: Arc<dyn Connector>,
        fan_ins: Arc<dyn Connector>,
    }

    /// Runs one fan-out of `n` children: the parent, its children and the fan-in, each a
    /// consume loop (`concurrency` in flight) over its queue recording into `journal`;
    /// measures it.
    async fn fan_out(
        n: u64,
        concurrency: usize,
        journal: Arc<dyn Journal>,
        reader: &dyn ergon_journal::JournalReader,
        queues: Opened,
    ) -> Result<Sample, String> {
        let fan_in = Arc::new(FanIn(Mutex::default()));
        let payload = serde_json::json!({ "children": n }).to_string();
        queues
            .parents
            .dispatch(&[Transaction::new("p", payload)])
            .await
            .map_err(|e| e.to_string())?;
        let quiet = RunQuiet::new();
        let cx = |task: &str, input: &Arc<dyn Connector>| {
            Context::builder(task)
                .input(input.clone())
                .journal(journal.clone())
                .build()
        };
        let mut policy = ConsumerPolicy::default();
        policy.r#loop.concurrency = concurrency;
        policy.fetch.batch_size = inmemory::BATCH_SIZE;
        policy.fetch.empty.backoff = Duration::from_millis(1);
        policy.fetch.empty.backoff_cap = Duration::from_millis(5);
        let policy = Arc::new(policy);
        let started = Instant::now();
        let parent = ConsumeLoop::consumer(
            Arc::new(Parent),
            cx("parent", &queues.parents),
            policy.clone(),
        )
        .quiet(Some(quiet.clone()))
        .run();
        let child = ConsumeLoop::consumer(
            Arc::new(inmemory::Noop),
            cx("child", &queues.children),
            policy.clone(),
        )
        .quiet(Some(quiet.clone()))
        .run();
        let last = ConsumeLoop::consumer(fan_in.clone(), cx("fan_in", &queues.fan_ins), policy)
            .quiet(Some(quiet))
            .run();
        let (a, b, c) = tokio::join!(parent, child, last);
        for end in [a, b, c] {
            end.map_err(|e| e.to_string())?;
        }
        for queue in [queues.parents, queues.children, queues.fan_ins] {
            queue.close().await.map_err(|e| e.to_string())?;
        }
        let (fired_ms, fired, members) = fan_in.0.lock().unwrap().ok_or("the fan-in never ran")?;
        if members != n {
            return Err(format!("the fan-in got {members} members, expected {n}"));
        }
        let filter = ergon_journal::Filter {
            parent: Some("p".into()),
            limit: usize::MAX,
            ..Default::default()
        };
        let nodes = reader.list(&filter).await.map_err(|e| e.to_string())?;
        let last_child_ms = nodes
            .iter()
            .filter(|node| node.edge.as_deref() == Some("spawn"))
            .map(|node| node.finished_at_ms)
            .max()
            .ok_or("no child journaled")?;
        let mut sample = Sample::new();
        sample.insert("children".into(), n as f64);
        let elapsed = fired.duration_since(started).as_secs_f64();
        sample.insert("children_per_s".into(), n as f64 / elapsed);
        sample.insert("fanin_ms".into(), (fired_ms - last_child_ms) as f64);
        Ok(sample)
    }

    /// `fanin_local`: a tagged fan-in of `n` children in batches of [`fanin::BATCH`] on the
    /// embedded default (queues and journal in one SQLite file).
    pub(super) mod fanin {
        use super::*;
        use ergon_core::journal::now_ms;
        use ergon_journal::{Consumes, GroupBy};

        /// Results per batch (`consumes.batch_size`).
        pub(crate) const BATCH: u32 = 100;
        /// The tag `split` produces and `agg` consumes.
        const TAG: &str = "items";

        pub(crate) fn parent(bench: &Bench, case: &Case) -> Result<String, String> {
            let runs = bench.interleave(case, &["engine"])?;
            runs.describe("items_per_s", &[]);
            runs.describe("batch_p50_ms", &[]);
            runs.describe("batch_p99_ms", &[]);
            Ok(format!(
                "bench {} items={} {} {} {} runs={}",
                case.name,
                bench.tx(case),
                runs.spread("engine", "items_per_s")
                    .fields("items_per_s", 0),
                runs.spread("engine", "batch_p50_ms")
                    .fields("batch_p50_ms", 1),
                runs.spread("engine", "batch_p99_ms")
                    .fields("batch_p99_ms", 1),
                bench.runs,
            ))
        }

        /// `{"items": n}` → `n` no-op items, dispatched to `work`'s queue (one dispatch),
        /// each tagged by the task's `produces`.
        struct Split;

        impl Hybrid for Split {
            async fn process_transaction(
                &self,
                _: &Context,
                tx: &Transaction,
            ) -> Result<Vec<Transaction>, TaskError> {
                let n = tx.json::<serde_json::Value>()?["items"]
                    .as_u64()
                    .unwrap_or(0);
                Ok((0..n)
                    .map(|k| tx.child(format!("{}/{k}", tx.id()), "{}").build())
                    .collect())
            }
        }

        /// One batch `agg` received: when it started on it (journal clock and monotonic),
        /// the ids it held, and whether it was its group's last.
        struct Consumed {
            at_ms: i64,
            at: Instant,
            ids: Vec<String>,
            last: bool,
        }

        /// The consumer: notes each batch it gets, does nothing with it.
        #[derive(Default)]
        struct Aggregate(Mutex<Vec<Consumed>>);

        impl Consumer for Aggregate {
            type Output = ();

            async fn process_transaction(
                &self,
                _: &Context,
                tx: &Transaction,
            ) -> Result<(), TaskError> {
                let (at_ms, at) = (now_ms(), Instant::now());
                let ids = tx.consumed_results()?.into_iter().map(|r| r.id).collect();
                let last = tx.batch().is_some_and(|batch| batch.last);
                self.0.lock().unwrap().push(Consumed {
                    at_ms,
                    at,
                    ids,
                    last,
                });
                Ok(())
            }
        }

        /// The `q`-quantile (nearest rank) of `sorted`, which must not be empty.
        pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
            let rank = (q * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        }

        /// One fan-in of `n` children: `split` (a hybrid with `produces`) dispatches them
        /// to `work` (a no-op consumer), whose results the journal cuts into batches for
        /// `agg`; measures it.
        pub(crate) fn child(_variant: &str) -> Result<Sample, String> {
            let n = env_or("ERGON_BENCH_TX", 100_000);
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let path = dir.path().join("queue.db");
            let tasks = ["split", "work", "agg"];
            let consumes = Consumes {
                tags: vec![TAG.to_owned()],
                from: vec!["work".to_owned()],
                batch_size: BATCH,
                timeout: None,
                group_by: GroupBy::Parent,
                include_failed: true,
            };
            let routes = tasks
                .iter()
                .fold(Routes::new(), |r, t| r.queue(*t, *t))
                .produces("split", vec![TAG.to_owned()])
                .consumes("agg", consumes);
            let journal = open(&path, Record::Workflow, routes, &tasks)?;
            let reader = journal.reader();
            runtime().block_on(async {
                let config = LocalConfig::default();
                let config = &config;
                let queue = |name: &str| {
                    let (path, name) = (path.clone(), name.to_owned());
                    async move {
                        LocalConnector::open(path, name, config)
                            .await
                            .map(|queue| Arc::new(queue) as Arc<dyn Connector>)
                            .map_err(|e| e.to_string())
                    }
                };
                let (splits, works, aggs) = (
                    queue("split").await?,
                    queue("work").await?,
                    queue("agg").await?,
                );
                let payload = json!({ "items": n }).to_string();
                splits
                    .dispatch(&[Transaction::new("p", payload)])
                    .await
                    .map_err(|e| e.to_string())?;
                let journal: Arc<dyn Journal> = journal.clone();
                let cx = |task: &str, input: &Arc<dyn Connector>| {
                    Context::builder(task)
                        .input(input.clone())
                        .journal(journal.clone())
                };
                let mut split_policy = HybridPolicy::default();
                split_policy.fetch.empty.backoff = Duration::from_millis(1);
                split_policy.fetch.empty.backoff_cap = Duration::from_millis(5);
                let mut policy = ConsumerPolicy::default();
                policy.r#loop.concurrency = 64;
                policy.fetch.batch_size = inmemory::BATCH_SIZE;
                policy.fetch.empty.backoff = Duration::from_millis(1);
                policy.fetch.empty.backoff_cap = Duration::from_millis(5);
                let policy = Arc::new(policy);
                let aggregate = Arc::new(Aggregate::default());
                let quiet = RunQuiet::new();
                let started = Instant::now();
                let split = ConsumeLoop::hybrid(
                    Arc::new(Split),
                    cx("split", &splits)
                        .output(works.clone())
                        .produces([TAG])
                        .build(),
                    Arc::new(split_policy),
                )
                .quiet(Some(quiet.clone()))
                .run();
                let work = ConsumeLoop::consumer(
                    Arc::new(inmemory::Noop),
                    cx("work", &works).build(),
                    policy.clone(),
                )
                .quiet(Some(quiet.clone()))
                .run();
                let agg =
                    ConsumeLoop::consumer(aggregate.clone(), cx("agg", &aggs).build(), policy)
                        .quiet(Some(quiet))
                        .run();
                let (a, b, c) = tokio::join!(split, work, agg);
                for end in [a, b, c] {
                    end.map_err(|e| e.to_string())?;
                }
                for queue in [splits, works, aggs] {
                    queue.close().await.map_err(|e| e.to_string())?;
                }
                let batches = std::mem::take(&mut *aggregate.0.lock().unwrap());
                measure(n, started, &batches, reader.as_ref()).await
            })
        }

        /// Checks that `batches` hold each of the `n` children once, the last one marked
        /// last, and measures: items/s from `started` to the start of the last batch, and
        /// for each batch the time from its last item's end (its journal record's
        /// `finished_at`) to the start of the batch, p50 and p99.
        async fn measure(
            n: u64,
            started: Instant,
            batches: &[Consumed],
            reader: &dyn ergon_journal::JournalReader,
        ) -> Result<Sample, String> {
            let filter = ergon_journal::Filter {
                parent: Some("p".into()),
                limit: usize::MAX,
                ..Default::default()
            };
            let nodes = reader.list(&filter).await.map_err(|e| e.to_string())?;
            let finished: BTreeMap<&str, i64> = nodes
                .iter()
                .filter(|node| node.task == "work")
                .map(|node| (node.id.as_str(), node.finished_at_ms))
                .collect();
            if finished.len() as u64 != n {
                return Err(format!("{} of {n} children journaled", finished.len()));
            }
            let expected = n.div_ceil(u64::from(BATCH)).max(1);
            if batches.len() as u64 != expected {
                return Err(format!("{} batches, expected {expected}", batches.len()));
            }
            let mut seen = std::collections::BTreeSet::new();
            let mut latencies = Vec::with_capacity(batches.len());
            for batch in batches {
                let mut last_item_ms = None::<i64>;
                for id in &batch.ids {
                    let at = *finished
                        .get(id.as_str())
                        .ok_or_else(|| format!("batch item {id} is not a journaled child"))?;
                    if !seen.insert(id.as_str()) {
                        return Err(format!("{id} is in two batches"));
                    }
                    last_item_ms = Some(last_item_ms.map_or(at, |ms| ms.max(at)));
                }
                if let Some(last_item_ms) = last_item_ms {
                    latencies.push((batch.at_ms - last_item_ms) as f64);
                }
            }
            if seen.len() as u64 != n {
                return Err(format!("{} of {n} children in a batch", seen.len()));
            }
            let lasts = batches.iter().filter(|batch| batch.last).count();
            if lasts != 1 {
                return Err(format!("{lasts} batches marked last"));
            }
            let end = batches
                .iter()
                .map(|batch| batch.at)
                .max()
                .ok_or("no batch")?;
            latencies.sort_by(f64::total_cmp);
            let mut sample = Sample::new();
            sample.insert("items".into(), n as f64);
            let elapsed = end.duration_since(started).as_secs_f64();
            sample.insert("items_per_s".into(), n as f64 / elapsed);
            sample.insert("batch_p50_ms".into(), quantile(&latencies, 0.50));
            sample.insert("batch_p99_ms".into(), quantile(&latencies, 0.99));
            sample.insert("batch_max_ms".into(), quantile(&latencies, 1.0));
            Ok(sample)
        }
    }
}

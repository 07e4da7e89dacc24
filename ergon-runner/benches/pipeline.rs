//! End-to-end throughput of the consume engine, beside a hand-written tokio loop.
//!
//! ```text
//! cargo bench -p ergon-runner --bench pipeline              # every case
//! cargo bench -p ergon-runner --bench pipeline -- c64       # cases whose name contains "c64"
//! cargo bench -p ergon-runner --bench pipeline -- --list    # the case names
//! ```
//!
//! Each case prints one line on stdout, in a format of its own. The `inmemory_*` cases
//! time a no-op [`Consumer`] through the full engine ([`ConsumeLoop`]: fetch step,
//! process and success envelopes, settlement, spans compiled in, no subscriber or
//! exporter) over transactions generated as they are fetched
//! ([`MemoryConnector::generated`]), and the same work done by a hand-written tokio loop
//! (per transaction: `Arc<Semaphore>::acquire_owned`, `tokio::spawn`, a retry loop around
//! `tokio::time::timeout(per_attempt, noop())`, an ack counter `fetch_add`):
//!
//! ```text
//! bench inmemory_c64 tx=1000000 tx_per_s=<x> handwritten_tx_per_s=<y> ratio=<x/y> peak_rss_mib=<m>
//! ```
//!
//! The engine runs with `ConsumerPolicy` defaults except `loop.concurrency` and
//! `fetch.batch_size = 256`: `inmemory_c1` is one consume loop of concurrency 1;
//! `inmemory_c64` is one consume loop of concurrency 64 (one tokio task, so one core);
//! `inmemory_c64_w2` is two consume loops of concurrency 32 sharing the input (what
//! `workers = 2` runs on this 2-core machine), 64 in flight in all, as in the hand-written
//! loop, whose spawned tasks use both cores too.
//!
//! Method: the parent process only orchestrates and prints. Every measured run happens in
//! a child process (this executable re-run with `ERGON_BENCH_CHILD=<case>/<variant>`), so
//! peak RSS (`VmHWM` from `/proc/self/status`, read by the child at its end) belongs to one
//! variant alone; `peak_rss_mib` is the engine's. Each child builds a 2-worker
//! multi-thread runtime, warms up on a shorter run, then times one run. Engine and
//! hand-written children alternate, `ERGON_BENCH_ROUNDS` times each (default 3), and the
//! best run of each is reported; all runs go to stderr (`# ...` lines), with the cost of
//! making the transactions alone (`source`). A run that does not ack every transaction
//! fails the bench (non-zero exit).
//!
//! Knobs (environment): `ERGON_BENCH_TX` (transactions per timed run, default 1,000,000),
//! `ERGON_BENCH_ROUNDS`, and for exploring the engine `ERGON_BENCH_WORKERS` (consume loops
//! sharing the input; the case's concurrency is split between them) and
//! `ERGON_BENCH_BATCH` (fetch batch size).
//!
//! Add a case by writing a `parent` function (orchestrates child runs with
//! [`Bench::sample`] and returns the line) and a `child` function (measures one variant and
//! returns its numbers), then listing them in [`CASES`].

use std::collections::BTreeMap;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use ergon_core::memory::MemoryConnector;
use ergon_core::runner::ConsumeLoop;
use ergon_core::{Connector, Consumer, ConsumerPolicy, Context, TaskError, Transaction};
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
}

/// The registry. Later cases (blocking, cpu, hybrid fan-out, amqp, telemetry) go here.
const CASES: &[Case] = &[
    Case {
        name: "inmemory_c1",
        parent: inmemory::parent,
        child: |variant| inmemory::child(variant, 1, 1),
    },
    Case {
        name: "inmemory_c64",
        parent: inmemory::parent,
        // One consume loop of concurrency 64: `concurrency = 64`, `workers = 1`.
        child: |variant| inmemory::child(variant, 64, 1),
    },
    Case {
        name: "inmemory_c64_w2",
        parent: inmemory::parent,
        // Two consume loops of 32 (one per core, as `workers = 2` runs them), 64 in flight
        // in all: the hand-written loop spreads its spawned tasks over both cores too.
        child: |variant| inmemory::child(variant, 64, 2),
    },
];

/// Numbers reported by a child, by name.
type Sample = BTreeMap<String, f64>;

/// What the parent knows while running cases.
struct Bench {
    /// Transactions per timed run.
    tx: u64,
    /// Runs of each variant; the best one is reported.
    rounds: usize,
}

impl Bench {
    /// Runs `variant` of `case` in a child process and returns its numbers.
    fn sample(&self, case: &Case, variant: &str) -> Result<Sample, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let output = Command::new(exe)
            .env(CHILD_ENV, format!("{}/{variant}", case.name))
            .env("ERGON_BENCH_TX", self.tx.to_string())
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
        tx: env_or("ERGON_BENCH_TX", 1_000_000),
        rounds: env_or("ERGON_BENCH_ROUNDS", 3),
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

/// The runtime every child measures on: 2 workers, like the 2-core reference machine.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime")
}

/// `inmemory_c<N>`: a no-op consumer over generated in-memory transactions.
mod inmemory {
    use super::*;

    /// The payload of every transaction (static: no copy per transaction).
    const PAYLOAD: &[u8] = br#"{"amount":1}"#;
    /// Fetch batch size of both loops: large enough that fetching (one lock, one `Vec`)
    /// is a small share of the cost, small enough that two batches stay a few KiB.
    const BATCH_SIZE: usize = 256;
    /// Per-attempt timeout and attempts of the hand-written loop (the engine's defaults).
    const PER_ATTEMPT: Duration = Duration::from_secs(30);
    const MAX_ATTEMPTS: u32 = 3;
    const BACKOFF: Duration = Duration::from_millis(100);
    /// Transactions of the warm-up run before the timed one.
    const WARM_UP: u64 = 100_000;

    pub(super) fn parent(bench: &Bench, case: &Case) -> Result<String, String> {
        let mut engine = Vec::new();
        let mut handwritten = Vec::new();
        // Alternate so that drift (thermal, neighbours) hits both alike.
        for _ in 0..bench.rounds {
            engine.push(bench.sample(case, "engine")?);
            handwritten.push(bench.sample(case, "handwritten")?);
        }
        // What making and fetching the transactions alone costs (both loops pay it).
        let source = bench.sample(case, "source")?;
        let best = |samples: &[Sample]| {
            samples
                .iter()
                .map(|s| s["tx_per_s"])
                .fold(0.0_f64, f64::max)
        };
        let rss = engine
            .iter()
            .map(|s| s["peak_rss_mib"])
            .fold(0.0_f64, f64::max);
        let hand_rss = handwritten
            .iter()
            .map(|s| s["peak_rss_mib"])
            .fold(0.0_f64, f64::max);
        let (x, y) = (best(&engine), best(&handwritten));
        let runs = |samples: &[Sample]| {
            let v: Vec<String> = samples
                .iter()
                .map(|s| format!("{:.0}", s["tx_per_s"]))
                .collect();
            v.join(",")
        };
        eprintln!(
            "# {}: engine runs [{}] workers={} batch={}; handwritten runs [{}] peak_rss_mib={hand_rss:.1}; source alone {:.0} tx/s",
            case.name,
            runs(&engine),
            engine[0]["workers"],
            engine[0]["batch_size"],
            runs(&handwritten),
            source["tx_per_s"],
        );
        Ok(format!(
            "bench {} tx={} tx_per_s={x:.0} handwritten_tx_per_s={y:.0} ratio={:.2} peak_rss_mib={rss:.1}",
            case.name,
            bench.tx,
            x / y
        ))
    }

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
        let run = |n: u64| -> Result<Duration, String> {
            match variant {
                "engine" => rt.block_on(engine(n, concurrency, workers, batch_size)),
                "handwritten" => rt.block_on(handwritten(n, concurrency, batch_size)),
                "source" => rt.block_on(source_only(n, batch_size)),
                other => Err(format!("unknown variant {other:?}")),
            }
        };
        run(WARM_UP.min(tx))?;
        let elapsed = run(tx)?;
        let mut sample = Sample::new();
        sample.insert("tx".into(), tx as f64);
        sample.insert("secs".into(), elapsed.as_secs_f64());
        sample.insert("tx_per_s".into(), tx as f64 / elapsed.as_secs_f64());
        sample.insert("workers".into(), workers as f64);
        sample.insert("batch_size".into(), batch_size as f64);
        Ok(sample)
    }

    /// `n` transactions made as they are fetched: a short id and the static payload.
    fn source(n: u64) -> Arc<MemoryConnector> {
        Arc::new(MemoryConnector::generated(n, |i| {
            Transaction::new(i.to_string(), PAYLOAD)
        }))
    }

    struct Noop;

    impl Consumer for Noop {
        type Output = ();

        async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
            Ok(())
        }
    }

    /// The engine: `workers` consume loops share the input and split `concurrency`.
    async fn engine(
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
                for tx in batch {
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
    async fn source_only(n: u64, batch_size: usize) -> Result<Duration, String> {
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

//! `dag_runs_local`: DAG runs on the embedded default (queues and journal in one SQLite
//! file), started as the runner starts them.
//!
//! Each run is a 6-node diamond with a tail, one task per node:
//!
//! ```text
//!      ┌─▶ b ─┐
//!   a ─┼─▶ c ─┼─▶ e ─▶ f
//!      └─▶ d ─┘
//! ```
//!
//! so a run is four hops deep (`a`; `b`, `c`, `d` at once; `e` once all three ended;
//! `f`). `runs` start transactions (about 100 bytes of JSON each, the run's input, each
//! its own) are in the start queue before the clock starts; the workflow's start task ([`StartRun`], what
//! `[workflows.diamond] start = "..."` runs) starts one run per transaction, and each
//! node's task is a no-op consumer whose `journal_output` is a small JSON object (the
//! node's output, kept in the run's state and passed downstream). Every task is one
//! consume loop of concurrency 64, fetching 256 at a time, polling an empty input after
//! 1 ms and backing off to 5 ms (as in the other journal cases), each spawned on the
//! 2-worker runtime as the runner spawns its workers.
//!
//! Measured from the journal's own clock: `runs_per_s` counts the runs over the time
//! from the start of the loops to the end of the last run (the latest `finished_at` of
//! `JournalReader::runs`); a run's latency is its `finished_at - created_at` (from the
//! commit that started it to the commit that ended it, in milliseconds), and each child
//! run gives the p50 and p99 over its runs. The line has their medians over the child
//! runs (`ERGON_BENCH_RUNS`, at least 5), then each one's spread and the rounds:
//!
//! ```text
//! bench dag_runs_local runs=<n> runs_per_s=<x> run_p50_ms=<a> run_p99_ms=<b>
//!     runs_per_s_min= runs_per_s_max= run_p50_ms_min= ... rounds=5      (one line)
//! ```
//!
//! A child run fails unless every run succeeded with its 6 nodes ended.

use ergon_connectors::local::{LocalConfig, LocalConnector};
use ergon_core::journal::dag::{PlannedNode, RunPlan};
use ergon_core::journal::{Journal, now_ms};
use ergon_core::runner::RunQuiet;
use ergon_journal::{DurableJournal, Record, Routes, Settings};
use ergon_runner::workflows::StartRun;
use serde_json::json;

use super::journal::fanin::quantile;
use super::*;

/// The workflow, and its start task's name.
const WORKFLOW: &str = "diamond";
/// The queue the start transactions wait in ([`local::fill_with`]'s).
const START_QUEUE: &str = "bench";
/// The nodes, each run by the task of its name.
const NODES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
/// Transactions in flight in each task's loop.
const CONCURRENCY: usize = 64;

/// Runs the child runs and prints the line.
pub(super) fn parent(bench: &Bench, case: &Case) -> Result<String, String> {
    let runs = bench.interleave(case, &["engine"])?;
    for key in ["runs_per_s", "run_p50_ms", "run_p99_ms"] {
        runs.describe(key, &[]);
    }
    let per_s = runs.spread("engine", "runs_per_s");
    let p50 = runs.spread("engine", "run_p50_ms");
    let p99 = runs.spread("engine", "run_p99_ms");
    Ok(format!(
        "bench {} runs={} runs_per_s={:.0} run_p50_ms={:.1} run_p99_ms={:.1} {} {} {} rounds={}",
        case.name,
        bench.tx(case),
        per_s.median,
        p50.median,
        p99.median,
        spread_tail("runs_per_s", per_s, 0),
        spread_tail("run_p50_ms", p50, 1),
        spread_tail("run_p99_ms", p99, 1),
        bench.runs,
    ))
}

/// `key_min=<min> key_max=<max>`, with `decimals` decimals.
fn spread_tail(key: &str, spread: Spread, decimals: usize) -> String {
    let Spread { min, max, .. } = spread;
    format!("{key}_min={min:.decimals$} {key}_max={max:.decimals$}")
}

/// The plan every run follows (see the module's header).
fn diamond() -> RunPlan {
    RunPlan::new(vec![
        PlannedNode::new("a", "a"),
        PlannedNode::new("b", "b").after(["a"]),
        PlannedNode::new("c", "c").after(["a"]),
        PlannedNode::new("d", "d").after(["a"]),
        PlannedNode::new("e", "e").after(["b", "c", "d"]),
        PlannedNode::new("f", "f").after(["e"]),
    ])
}

/// A node's task: does nothing, and gives the journal a small output.
struct Node;

impl Consumer for Node {
    type Output = ();

    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        Ok(())
    }

    fn journal_output(&self, (): &()) -> Option<serde_json::Value> {
        Some(json!({ "ok": true }))
    }
}

/// One child run: `runs` runs of [`diamond`] through the engine and the journal.
pub(super) fn child(_variant: &str) -> Result<Sample, String> {
    let n = env_or("ERGON_BENCH_TX", 10_000);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("queue.db");
    let tasks: Vec<&str> = std::iter::once(WORKFLOW).chain(NODES).collect();
    let routes = NODES
        .iter()
        .fold(Routes::new().queue(WORKFLOW, START_QUEUE), |r, t| {
            r.queue(*t, *t)
        });
    let settings = Settings {
        record: Record::Workflow,
        routes,
        running: tasks.iter().map(|task| (*task).to_owned()).collect(),
        ..Settings::default()
    };
    let journal = Arc::new(DurableJournal::sqlite(&path, settings).map_err(|e| e.to_string())?);
    // Each run's input is its own (as documents are), so no two runs store the same
    // definition.
    local::fill_with(&path, n, |i| {
        json!({ "doc": i, "text": "x".repeat(80) })
            .to_string()
            .into_bytes()
    })?;
    runtime().block_on(async {
        let config = LocalConfig::default();
        let mut queues: Vec<Arc<dyn Connector>> = Vec::with_capacity(tasks.len());
        for queue in std::iter::once(START_QUEUE).chain(NODES) {
            let opened = LocalConnector::open(path.clone(), queue.to_owned(), &config)
                .await
                .map_err(|e| e.to_string())?;
            queues.push(Arc::new(opened));
        }
        let started_ms = now_ms();
        run_loops(&tasks, &queues, journal.clone()).await?;
        for queue in &queues {
            queue.close().await.map_err(|e| e.to_string())?;
        }
        measure(n, started_ms, journal.as_ref()).await
    })
}

/// Runs the start task and the node tasks, one spawned consume loop each over the queue
/// of the same index, until every run ended and every queue is drained.
async fn run_loops(
    tasks: &[&str],
    queues: &[Arc<dyn Connector>],
    journal: Arc<DurableJournal>,
) -> Result<(), String> {
    let journal: Arc<dyn Journal> = journal;
    let mut policy = ConsumerPolicy::default();
    policy.r#loop.concurrency = CONCURRENCY;
    policy.fetch.batch_size = inmemory::BATCH_SIZE;
    policy.fetch.empty.backoff = Duration::from_millis(1);
    policy.fetch.empty.backoff_cap = Duration::from_millis(5);
    let policy = Arc::new(policy);
    let quiet = RunQuiet::expecting(tasks.len());
    let settings = json!({ "workflow": WORKFLOW, "plan": diamond() });
    let mut loops = tokio::task::JoinSet::new();
    for (task, queue) in tasks.iter().zip(queues) {
        let cx = Context::builder(*task)
            .input(queue.clone())
            .journal(journal.clone())
            .settings(settings.clone())
            .build();
        let quiet = Some(quiet.clone());
        if *task == WORKFLOW {
            let start = StartRun::from_context(&cx).map_err(|e| e.to_string())?;
            let run = ConsumeLoop::consumer(Arc::new(start), cx, policy.clone()).quiet(quiet);
            loops.spawn(run.run());
        } else {
            let run = ConsumeLoop::consumer(Arc::new(Node), cx, policy.clone()).quiet(quiet);
            loops.spawn(run.run());
        }
    }
    while let Some(ended) = loops.join_next().await {
        ended
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Checks that the journal holds `n` runs, each succeeded with every node ended, and
/// measures them: runs/s from `started_ms` to the last run's end, latency p50 and p99.
async fn measure(n: u64, started_ms: i64, journal: &DurableJournal) -> Result<Sample, String> {
    let runs = journal
        .reader()
        .runs(None, usize::MAX)
        .await
        .map_err(|e| e.to_string())?;
    if runs.len() as u64 != n {
        return Err(format!("{} runs journaled, expected {n}", runs.len()));
    }
    let mut latencies = Vec::with_capacity(runs.len());
    let mut last_ms = started_ms;
    for run in &runs {
        let finished = run.finished_at.filter(|_| run.status == "succeeded");
        let Some(finished) = finished.filter(|_| run.nodes_done == NODES.len() as u64) else {
            return Err(format!(
                "run {} is {} with {} of {} nodes ended",
                run.run_id, run.status, run.nodes_done, run.nodes_total
            ));
        };
        latencies.push((finished - run.created_at) as f64);
        last_ms = last_ms.max(finished);
    }
    latencies.sort_by(f64::total_cmp);
    let elapsed_s = (last_ms - started_ms).max(1) as f64 / 1_000.0;
    let mut sample = Sample::new();
    sample.insert("runs".into(), n as f64);
    sample.insert("runs_per_s".into(), n as f64 / elapsed_s);
    sample.insert("run_p50_ms".into(), quantile(&latencies, 0.50));
    sample.insert("run_p99_ms".into(), quantile(&latencies, 0.99));
    sample.insert("run_max_ms".into(), quantile(&latencies, 1.0));
    Ok(sample)
}

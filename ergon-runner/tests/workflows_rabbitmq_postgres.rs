//! DAG runs across machines: a `[workflows.wf]` whose node tasks read RabbitMQ queues,
//! the journal in PostgreSQL, each run started by a transaction of a local queue. Three
//! `ergon-runner run` processes share the runs and one is killed with SIGKILL midway;
//! once the other two have finished, every run has succeeded in the journal, nothing is
//! left queued (no `queued` node, an empty outbox, empty broker queues), and every run's
//! result reached `on_complete`'s output.
//!
//! The outputs are the built-in `forward` tasks writing to files, one per runner process
//! (`out/results-N.jsonl`; two processes never append to one file). They are at least
//! once, and the kill shows it (a few percent of the results, in some runs of the test):
//! a runner killed after its `done` task wrote a result, but before the journal recorded
//! it, leaves the result to be written again by another runner; and a runner killed
//! after its relay dispatched a batch of the outbox, but before it deleted the batch,
//! leaves the batch to be dispatched again, so two copies of a result can be delivered
//! at once and both run (the journal settles a copy without running it only once the
//! first copy's completion is recorded). So the results are deduplicated by run id,
//! every copy of a run's result checked equal; the journal records each node once.
//!
//! Talks to the RabbitMQ and PostgreSQL on loopback (`ERGON_TEST_AMQP_URL`,
//! `ERGON_TEST_PG_URL`); the queues and the journal's schema are the test's own and are
//! removed at the end.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;

mod common;
#[path = "common/workflow.rs"]
mod workflow;

use workflow::{diamond, enqueue_docs, workflow_table};

/// The runs started.
const RUNS: usize = 300;
/// The runner processes sharing them; the first is killed.
const RUNNERS: usize = 3;
/// The languages each run's `fan` node is expanded over.
const LANGS: [&str; 3] = ["en", "fr", "de"];
/// How long the runs may take, all told.
const PATIENCE: Duration = Duration::from_secs(180);

fn amqp_url() -> String {
    std::env::var("ERGON_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

fn postgres_url() -> String {
    std::env::var("ERGON_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The test's broker queues (one per node task's input) and journal schema, on the real
/// services; removed when dropped.
struct Isolated {
    /// Drives the clients below, only while the test talks to the services.
    runtime: tokio::runtime::Runtime,
    db: tokio_postgres::Client,
    channel: Channel,
    /// `a`'s, `b`'s and `done`'s input queues.
    queues: [String; 3],
    schema: String,
}

impl Isolated {
    /// Connects to the services (panicking, naming them, when one is not reachable) and
    /// names the queues and schema after this process.
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (db, channel) = runtime.block_on(async {
            let (db, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|err| {
                    panic!("PostgreSQL is not reachable at {} ({err})", postgres_url())
                });
            tokio::spawn(connection);
            let broker = Connection::connect(&amqp_url(), ConnectionProperties::default())
                .await
                .unwrap_or_else(|err| {
                    panic!("RabbitMQ is not reachable at {} ({err})", amqp_url())
                });
            (db, broker.create_channel().await.unwrap())
        });
        let run = std::process::id();
        let isolated = Self {
            runtime,
            db,
            channel,
            queues: ["a", "b", "done"].map(|task| format!("ergon-test.wf.{task}.{run}")),
            schema: format!("wf_rabbitmq_{run}"),
        };
        isolated.remove();
        isolated
    }

    /// The rows of the journal's `table` that match `condition`.
    fn count(&self, table: &str, condition: &str) -> i64 {
        let sql = format!(
            "SELECT count(*) FROM {}.{table} WHERE {condition}",
            self.schema
        );
        self.runtime
            .block_on(self.db.query_one(&sql, &[]))
            .unwrap()
            .get(0)
    }

    /// The runs that have succeeded so far: none before a runner created the journal's
    /// tables.
    fn succeeded_runs(&self) -> i64 {
        let sql = format!(
            "SELECT count(*) FROM {}.ergon_run WHERE status = 'succeeded'",
            self.schema
        );
        match self.runtime.block_on(self.db.query_one(&sql, &[])) {
            Ok(row) => row.get(0),
            Err(err) => {
                let missing = [SqlState::INVALID_SCHEMA_NAME, SqlState::UNDEFINED_TABLE];
                assert!(missing.iter().any(|code| err.code() == Some(code)), "{err}");
                0
            }
        }
    }

    /// How many runs the journal holds in each status.
    fn runs_by_status(&self) -> BTreeMap<String, i64> {
        let sql = format!(
            "SELECT status, count(*) FROM {}.ergon_run GROUP BY status",
            self.schema
        );
        self.runtime
            .block_on(self.db.query(&sql, &[]))
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    }

    /// The messages ready in each broker queue.
    fn queue_depths(&self) -> Vec<u32> {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        self.queues
            .iter()
            .map(|queue| {
                let declare = self.channel.queue_declare(
                    ShortString::from(queue.as_str()),
                    passive,
                    FieldTable::default(),
                );
                self.runtime.block_on(declare).unwrap().message_count()
            })
            .collect()
    }

    /// Deletes the queues and the schema (those of an earlier process with this id too).
    fn remove(&self) {
        self.runtime.block_on(async {
            for queue in &self.queues {
                let delete = self.channel.queue_delete(
                    ShortString::from(queue.as_str()),
                    QueueDeleteOptions::default(),
                );
                delete.await.unwrap();
            }
            let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
            self.db.batch_execute(&drop).await.unwrap();
        });
    }

    /// `tasks.toml` in `dir`: the workflow `wf` over the test's queues and schema.
    fn write_config(&self, dir: &Path) -> PathBuf {
        let [a, b, done] = &self.queues;
        let toml = format!(
            r#"
# The documents, one run each (run id = the document's id). A runner killed with
# documents leased leaves them to the others once the lease runs out.
[connectors.docs]
type = "local"
path = "queue.db"
lease = "2s"

[connectors.a_in]
type = "rabbitmq"
url = "{amqp}"
queue = "{a}"

[connectors.b_in]
type = "rabbitmq"
url = "{amqp}"
queue = "{b}"

[connectors.done_in]
type = "rabbitmq"
url = "{amqp}"
queue = "{done}"

# One file per runner process (SINK), never appended to by two.
[connectors.nodes]
type = "file"
path = "out/nodes-${{SINK:-none}}.jsonl"

[connectors.results]
type = "file"
path = "out/results-${{SINK:-none}}.jsonl"

[tasks.a]
type = "forward"
input = "a_in"
output = "nodes"

[tasks.b]
type = "forward"
input = "b_in"
output = "nodes"

[tasks.done]
type = "forward"
input = "done_in"
output = "results"

[journal]
type = "postgres"
url = "{postgres}"
schema = "{schema}"

{workflow}
# Small batches: a leased document starts its run well within the lease.
[workflows.wf.policy.fetch]
batch_size = 10

{nodes}"#,
            amqp = amqp_url(),
            postgres = postgres_url(),
            schema = self.schema,
            workflow = workflow_table(""),
            nodes = diamond(true),
        );
        workflow::write_config(dir, &toml)
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The runner processes of the test, killed if it ends before they do; each logs to
/// `log-N.txt`.
struct Runners {
    dir: PathBuf,
    children: Vec<Option<Child>>,
}

impl Runners {
    /// `RUNNERS` processes of `ergon-runner run` (every task) on `config`.
    fn start(config: &Path) -> Self {
        let dir = config.parent().unwrap().to_path_buf();
        let children = (0..RUNNERS)
            .map(|n| {
                let log = File::create(dir.join(format!("log-{n}.txt"))).unwrap();
                let child = common::runner(config, &["run"])
                    .env("SINK", n.to_string())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                Some(child)
            })
            .collect();
        Self { dir, children }
    }

    /// What runner `n` printed.
    fn log(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("log-{n}.txt"))).unwrap_or_default()
    }

    /// Asserts that runner `n` is still running.
    fn assert_running(&mut self, n: usize) {
        let child = self.children[n].as_mut().unwrap();
        let exited = child.try_wait().unwrap();
        assert!(exited.is_none(), "runner {n} ended early: {}", self.log(n));
    }

    /// Kills runner `n` with SIGKILL: no drain, no flush, no ack.
    fn kill(&mut self, n: usize) {
        let mut child = self.children[n].take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits for the runners still running to end (until `deadline`), asserting that
    /// each ended cleanly.
    fn wait_all(&mut self, deadline: Instant) {
        for n in 0..RUNNERS {
            let Some(child) = self.children[n].as_mut() else {
                continue;
            };
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "runner {n} still running: {}",
                    self.log(n)
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            self.children[n] = None;
            assert!(status.success(), "runner {n}: {status}: {}", self.log(n));
        }
    }
}

impl Drop for Runners {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Document `dN` for each run, to be expanded over [`LANGS`].
fn docs() -> Vec<Value> {
    (0..RUNS)
        .map(|n| json!({ "id": format!("d{n}"), "doc": format!("doc {n}"), "langs": LANGS }))
        .collect()
}

/// The lines of `out/{name}-N.jsonl` of every runner process, parsed. Only the killed
/// runner's (`killed`) may end in a line cut short, which is left out.
fn written(dir: &Path, name: &str, killed: usize) -> Vec<Value> {
    let mut values = Vec::new();
    for n in 0..RUNNERS {
        let path = dir.join(format!("out/{name}-{n}.jsonl"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            match serde_json::from_str(line) {
                Ok(value) => values.push(value),
                Err(err) => assert!(
                    n == killed && index + 1 == lines.len(),
                    "{}: line {index}: {err}: {line}",
                    path.display()
                ),
            }
        }
    }
    values
}

/// The result `on_complete` receives for run `run_id`: every node succeeded, the `fan`
/// items by their keys (the `forward` tasks have no output of their own).
fn expected_result(run_id: &str) -> Value {
    let fan: serde_json::Map<String, Value> = LANGS
        .iter()
        .map(|lang| ((*lang).to_owned(), Value::Null))
        .collect();
    json!({
        "run_id": run_id,
        "workflow": "wf",
        "status": "succeeded",
        "results": { "first": null, "second": null, "fan": fan, "last": null },
        "failed": [],
        "skipped": [],
        "cancelled": [],
    })
}

#[test]
fn three_runners_share_dag_runs_one_is_killed_and_every_run_succeeds_once() {
    let isolated = Isolated::new();
    let dir = tempfile::tempdir().unwrap();
    let config = isolated.write_config(dir.path());
    enqueue_docs(&config, &docs());

    let started = Instant::now();
    let mut runners = Runners::start(&config);
    let at = i64::try_from(RUNS / 5).unwrap();
    while isolated.succeeded_runs() < at {
        runners.assert_running(0);
        assert!(started.elapsed() < PATIENCE, "no progress before the kill");
        std::thread::sleep(Duration::from_millis(20));
    }
    runners.kill(0);
    let before = isolated.succeeded_runs();
    assert!(before < RUNS as i64, "killed midway: {before} runs done");

    runners.wait_all(started + PATIENCE);

    // The journal: every run succeeded, each of its four nodes; nothing queued.
    let all = BTreeMap::from([("succeeded".to_owned(), RUNS as i64)]);
    assert_eq!(isolated.runs_by_status(), all);
    let incomplete = "nodes_total <> 4 OR nodes_done <> 4 OR nodes_failed <> 0";
    assert_eq!(isolated.count("ergon_run", incomplete), 0);
    assert_eq!(isolated.count("ergon_node", "status = 'queued'"), 0);
    assert_eq!(isolated.count("ergon_node", "status <> 'succeeded'"), 0);
    // Each document's start, its first, second and last nodes, the three items of `fan`,
    // and its result: once each.
    assert_eq!(isolated.count("ergon_node", "true"), RUNS as i64 * 8);
    assert_eq!(isolated.count("ergon_outbox", "true"), 0);
    assert_eq!(isolated.queue_depths(), [0, 0, 0], "the broker queues");

    // The results: each run's, as many times as it was written, all copies equal.
    let mut results: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for result in written(dir.path(), "results", 0) {
        let run_id = result["run_id"].as_str().unwrap().to_owned();
        results.entry(run_id).or_default().push(result);
    }
    let mut run_ids: Vec<String> = (0..RUNS).map(|n| format!("d{n}")).collect();
    run_ids.sort();
    assert_eq!(
        results.keys().cloned().collect::<Vec<_>>(),
        run_ids,
        "a result of every run"
    );
    for (run_id, copies) in &results {
        let expected = expected_result(run_id);
        assert!(
            copies.iter().all(|copy| *copy == expected),
            "{run_id}: {copies:?}"
        );
    }
    let copies: usize = results.values().map(Vec::len).sum();
    eprintln!(
        "{RUNS} runs, {before} done at the kill; {} results written twice",
        copies - RUNS
    );

    // Each run's `last` node ran after `second` and the `fan` items, with their results.
    let fan: serde_json::Map<String, Value> = LANGS
        .iter()
        .map(|lang| ((*lang).to_owned(), Value::Null))
        .collect();
    let mut last: Vec<String> = written(dir.path(), "nodes", 0)
        .into_iter()
        .filter(|input| input["node"] == "last")
        .inspect(|input| {
            assert_eq!(input["results"], json!({ "second": null, "fan": fan }));
        })
        .map(|input| input["run_id"].as_str().unwrap().to_owned())
        .collect();
    last.sort();
    last.dedup();
    assert_eq!(last, run_ids, "every run's last node ran");
}

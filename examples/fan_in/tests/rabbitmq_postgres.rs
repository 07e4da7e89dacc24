//! The fan_in example across machines (`tasks-rabbitmq-postgres.toml`): items, batches
//! and batch sums on RabbitMQ, the journal in PostgreSQL, whose relay hands each batch to
//! its consumer's queue after the commit that cut it. One runner runs the example's
//! 1,003 items end to end; then one runner splits an order of 2,000, three runners share
//! the rest and one of them is killed with SIGKILL midway: every item completes once,
//! each batch is cut and completed once, and the total is written once with every square.
//!
//! Talks to the RabbitMQ and PostgreSQL on loopback (`.ci/run` checks they are up, and
//! so does each test, loudly); the queues and the journal's schema are each test's own
//! and are removed at the end.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use example_support::Example;

mod common;

const RABBITMQ: &str = "127.0.0.1:5672";
const POSTGRES: &str = "127.0.0.1:5432";
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A test's queues and schema, removed when dropped.
struct Isolated {
    queues: [String; 3],
    schema: String,
}

impl Isolated {
    /// The queues and schema of test `test` in this run; panics when the broker or the
    /// database is not listening.
    fn new(test: &str) -> Self {
        for (service, at) in [("RabbitMQ", RABBITMQ), ("PostgreSQL", POSTGRES)] {
            let addr: SocketAddr = at.parse().unwrap();
            if let Err(err) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
                panic!("{service} is not reachable at {at} ({err}): this test needs it");
            }
        }
        let run = std::process::id();
        Self {
            queues: ["items", "aggregations", "totals_in"]
                .map(|q| format!("fan_in.{q}.{test}.{run}")),
            schema: format!("fan_in_{test}_{run}"),
        }
    }

    fn example(&self, files: &[&str]) -> Example {
        let [items, aggregations, totals_in] = &self.queues;
        Example::copy_config(
            env!("CARGO_BIN_EXE_fan_in"),
            env!("CARGO_MANIFEST_DIR"),
            "tasks-rabbitmq-postgres.toml",
            files,
        )
        .env("ERGON__CONNECTORS__ITEMS__QUEUE", items)
        .env("ERGON__CONNECTORS__AGGREGATIONS__QUEUE", aggregations)
        .env("ERGON__CONNECTORS__TOTALS_IN__QUEUE", totals_in)
        .env("ERGON__JOURNAL__SCHEMA", &*self.schema)
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        for queue in &self.queues {
            let _ = std::process::Command::new("rabbitmqctl")
                .args(["delete_queue", queue])
                .output();
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let schema = self.schema.clone();
        runtime.block_on(async move {
            if let Ok((client, connection)) =
                tokio_postgres::connect(POSTGRES_URL, tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await;
            }
        });
    }
}

#[test]
fn a_thousand_and_three_items_make_a_hundred_and_one_batches_and_one_total() {
    let isolated = Isolated::new("e2e");
    let example = isolated.example(&["batches.jsonl"]);
    let summary = example.run(&[]);
    common::one_run_did_it_all(&summary, 1_003);
    common::every_item_once_and_one_total(&example, 1_003, "complete");
}

const ITEMS: u64 = 2_000;

/// The runners of a test, killed if it ends before they do.
struct Runners(Vec<Child>);

impl Drop for Runners {
    fn drop(&mut self) {
        for runner in &mut self.0 {
            let _ = runner.kill();
            let _ = runner.wait();
        }
    }
}

fn runner(example: &Example) -> Child {
    example
        .command(&["run", "work", "aggregate", "total"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn three_runners_share_a_fan_in_one_is_killed_and_each_batch_is_cut_once() {
    let isolated = Isolated::new("crash");
    let example = isolated.example(&[]);
    common::write_order(&example, ITEMS);
    let split = example.run(&["run", "split"]);
    assert!(
        split.contains("task split: processed=1 succeeded=1"),
        "{split}"
    );

    let mut runners = Runners((0..3).map(|_| runner(&example)).collect());
    let deadline = Instant::now() + Duration::from_secs(120);
    let at = usize::try_from(ITEMS / 5).unwrap();
    while common::items_journaled(&example, "succeeded", ITEMS) < at {
        if Instant::now() > deadline {
            let outputs: Vec<String> = std::mem::take(&mut runners.0)
                .into_iter()
                .map(|mut r| {
                    let _ = r.kill();
                    let out = r.wait_with_output().unwrap();
                    String::from_utf8_lossy(&out.stderr).into_owned()
                })
                .collect();
            panic!("the fan-out never got going: {outputs:#?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    runners.0[0].kill().unwrap();
    runners.0[0].wait().unwrap();
    let done_before = common::items_journaled(&example, "succeeded", ITEMS);
    assert!(
        done_before < ITEMS as usize,
        "killed midway: {done_before} done"
    );

    for runner in runners.0.drain(1..) {
        let out = runner.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // 2,000 items make 200 full batches; `total`'s group is complete with the 200th sum.
    common::every_item_once_and_one_total(&example, ITEMS, "complete");

    // The commands read the PostgreSQL journal as they read the embedded one.
    let trace = example.run(&["trace", "order-1"]);
    assert!(
        trace.starts_with("order-1 [split] succeeded") && trace.contains("children=2000"),
        "{trace}"
    );
    let purged = example.run(&["journal", "purge", "--older-than", "0s"]);
    assert!(
        purged.starts_with("purged 2202 journal records"),
        "the split, 2,000 squares, 200 batch sums and the total: {purged}"
    );
    let gone = example.command(&["get", "order-1"]).output().unwrap();
    assert_eq!(gone.status.code(), Some(1), "purged");
}

//! The fan_out example across machines (`tasks-rabbitmq-postgres.toml`): children and the
//! fan-in's continuation on RabbitMQ, the journal in PostgreSQL. One runner splits a
//! batch of 10,000; three runners share the children and one of them is killed with
//! SIGKILL midway. Every child completes once in the journal, the fan-in fires once with
//! every output, and nothing is left queued; `trace` and `journal purge` work on it.
//!
//! Talks to the RabbitMQ and PostgreSQL on loopback (`.ci/run` checks they are up); the
//! queues and the journal's schema are this run's own and are removed at the end.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use example_support::Example;

mod common;

const CHILDREN: usize = 10_000;

/// This run's queues and schema, removed when dropped.
struct Isolated {
    items: String,
    sums: String,
    schema: String,
}

impl Isolated {
    fn new() -> Self {
        let run = std::process::id();
        Self {
            items: format!("fan_out.items.{run}"),
            sums: format!("fan_out.sums.{run}"),
            schema: format!("fan_out_{run}"),
        }
    }

    fn example(&self) -> Example {
        Example::copy_config(
            env!("CARGO_BIN_EXE_fan_out"),
            env!("CARGO_MANIFEST_DIR"),
            "tasks-rabbitmq-postgres.toml",
            &[],
        )
        .env("ERGON__CONNECTORS__ITEMS__QUEUE", &*self.items)
        .env("ERGON__CONNECTORS__SUMS__QUEUE", &*self.sums)
        .env("ERGON__JOURNAL__SCHEMA", &*self.schema)
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        for queue in [&self.items, &self.sums] {
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
            let url = "postgres://postgres@127.0.0.1:5432/test";
            if let Ok((client, connection)) =
                tokio_postgres::connect(url, tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await;
            }
        });
    }
}

fn runner(example: &Example) -> Child {
    example
        .command(&["run", "square", "sum"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn three_runners_share_a_fan_out_one_is_killed_and_the_fan_in_fires_once() {
    let isolated = Isolated::new();
    let example = isolated.example();
    let batch = format!("{{\"id\":\"batch-1\",\"items\":{CHILDREN}}}\n");
    std::fs::write(example.path("batches.jsonl"), batch).unwrap();
    let split = example.run(&["run", "split"]);
    assert!(
        split.contains("task split: processed=1 succeeded=1"),
        "{split}"
    );

    let mut runners: Vec<Child> = (0..3).map(|_| runner(&example)).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while common::journaled(&example, "succeeded", CHILDREN) < CHILDREN / 5 {
        if Instant::now() > deadline {
            for runner in &mut runners {
                let _ = runner.kill();
            }
            let outputs: Vec<String> = runners
                .into_iter()
                .map(|r| {
                    let out = r.wait_with_output().unwrap();
                    String::from_utf8_lossy(&out.stderr).into_owned()
                })
                .collect();
            panic!("the fan-out never got going: {outputs:#?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    runners[0].kill().unwrap();
    runners[0].wait().unwrap();
    let done_before = common::journaled(&example, "succeeded", CHILDREN);
    assert!(done_before < CHILDREN, "killed midway: {done_before} done");

    for runner in runners.drain(1..) {
        let out = runner.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    common::every_child_once_and_one_fan_in(&example, CHILDREN);

    // The commands read the PostgreSQL journal as they read the embedded one.
    let trace = example.run(&["trace", "batch-1"]);
    assert!(
        trace.starts_with("batch-1 [split] succeeded") && trace.contains("children=10000"),
        "{trace}"
    );
    assert!(
        trace.contains("└─ ⤷ batch-1/split/then/sum [sum] succeeded"),
        "{trace}"
    );
    let purged = example.run(&["journal", "purge", "--older-than", "0s"]);
    assert!(
        purged.starts_with("purged 10002 journal records"),
        "the split, 10,000 squares and the sum: {purged}"
    );
    let gone = example.command(&["get", "batch-1"]).output().unwrap();
    assert_eq!(gone.status.code(), Some(1), "purged");
}

//! A consumer task driven by ergon-core's engine over file connectors: accepted lines
//! dispatched to an output file, rejected ones in the dead-letter file with their bytes.
#![cfg(feature = "file")]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use ergon_connectors::file::FileKind;
use ergon_core::config::{ConfigEnv, ConnectorKind};
use ergon_core::runner::{ConsumeLoop, LoopEnd};
use ergon_core::{Consumer, ConsumerPolicy, Context, TaskError, Transaction};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reading {
    n: u64,
}

/// Accepts readings whose `n` is not a multiple of 3 and forwards them to its output.
struct Screen;

impl Consumer for Screen {
    type Output = u64;

    async fn process_transaction(&self, _cx: &Context, tx: &Transaction) -> Result<u64, TaskError> {
        let reading: Reading = tx.json()?;
        if reading.n % 3 == 0 {
            return Err(TaskError::business(format!(
                "reading {} is a multiple of 3",
                reading.n
            )));
        }
        Ok(reading.n)
    }

    async fn handle_process_success(
        &self,
        cx: &Context,
        tx: &Transaction,
        _n: &u64,
    ) -> Result<(), TaskError> {
        cx.output()?.dispatch(std::slice::from_ref(tx)).await
    }
}

fn env(dir: &Path, name: &str) -> ConfigEnv {
    ConfigEnv {
        name: name.into(),
        base_dir: dir.to_path_buf(),
    }
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_over_file_connectors_settles_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let broken = r#"{"n": 1000, "note": "truncated"#;
    let mut content: String = (1..=30).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    content.push_str(&format!("\n{broken}\n"));
    std::fs::write(dir.path().join("readings.jsonl"), &content).unwrap();

    let input = FileKind
        .configure(
            serde_json::json!({ "path": "readings.jsonl", "dead_letter": "out/rejected.jsonl" }),
            &env(dir.path(), "readings"),
        )
        .unwrap();
    let output = FileKind
        .configure(
            serde_json::json!({ "path": "out/accepted.jsonl" }),
            &env(dir.path(), "accepted"),
        )
        .unwrap();

    let mut policy = ConsumerPolicy::default();
    policy.fetch.batch_size = 4;
    policy.r#loop.concurrency = 3;
    let policy = Arc::new(policy);
    let task = Arc::new(Screen);

    let mut workers = Vec::new();
    for worker in 0..2 {
        let (source, sink) = (
            input.connect(worker).await.unwrap(),
            output.connect(worker).await.unwrap(),
        );
        let cx = Context::builder("screen")
            .worker(worker)
            .input(source.clone())
            .output(sink.clone())
            .build();
        let run = ConsumeLoop::consumer(task.clone(), cx, policy.clone());
        workers.push(tokio::spawn(async move {
            let end = run.run().await;
            for connector in [source, sink] {
                connector.close().await.unwrap();
            }
            end
        }));
    }
    for worker in workers {
        assert_eq!(worker.await.unwrap().unwrap(), LoopEnd::Exhausted);
    }

    let accepted = json_lines(&dir.path().join("out/accepted.jsonl"));
    let accepted: BTreeSet<u64> = accepted.iter().map(|a| a["n"].as_u64().unwrap()).collect();
    let expected: BTreeSet<u64> = (1..=30).filter(|n| n % 3 != 0).collect();
    assert_eq!(accepted, expected);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/accepted.jsonl"))
            .unwrap()
            .lines()
            .count(),
        20,
        "each accepted line dispatched once"
    );

    let rejected = json_lines(&dir.path().join("out/rejected.jsonl"));
    assert_eq!(rejected.len(), 11, "10 multiples of 3 and the broken line");
    for letter in &rejected {
        assert_eq!(letter["task"], "screen");
        assert_eq!(letter["step"], "process");
        assert_eq!(letter["category"], "business");
        assert_eq!(letter["attempts"], 1, "business errors are not retried");
    }
    let multiples: BTreeSet<u64> = rejected
        .iter()
        .filter(|r| r["payload_encoding"] == "json")
        .map(|r| {
            let n = r["payload"]["n"].as_u64().unwrap();
            assert_eq!(r["error"], format!("reading {n} is a multiple of 3"));
            assert_eq!(r["id"], format!("readings.jsonl:{n}"));
            n
        })
        .collect();
    assert_eq!(multiples, (1..=30).filter(|n| n % 3 == 0).collect());

    let broken_letter = rejected
        .iter()
        .find(|r| r["payload_encoding"] == "text")
        .expect("the broken line is dead-lettered");
    assert_eq!(broken_letter["payload"], broken, "its original bytes");
    assert_eq!(broken_letter["id"], "readings.jsonl:32");
    assert_eq!(broken_letter["metadata"]["file.line"], "32");
    assert!(
        broken_letter["error"]
            .as_str()
            .unwrap()
            .contains("is not a valid"),
        "{broken_letter}"
    );
}

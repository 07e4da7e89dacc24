//! A finite run over RabbitMQ survives a broker restart: the local broker's application
//! is stopped mid-run (`rabbitmqctl stop_app`) and started again, and the run still ends
//! only once every message was processed and the queue is empty. In a test binary of its
//! own, so no other test's connection sees the broker go away.
#![cfg(feature = "rabbitmq")]

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ergon_connectors::rabbitmq::{RabbitConfig, RabbitConnector};
use ergon_core::runner::{ConsumeLoop, LoopEnd, WorkerStats};
use ergon_core::{Connector, Consumer, ConsumerPolicy, Context, TaskError, Transaction};
use support::{URL, delete, depth, raw};

/// Runs `rabbitmqctl` with `args`, failing the test clearly when it cannot.
fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("rabbitmqctl (from the rabbitmq-server package) is needed for this test");
    assert!(status.success(), "rabbitmqctl {args:?} failed: {status}");
}

/// Starts the broker's application again when dropped, even if the test fails midway.
struct Stopped;

impl Stopped {
    fn broker() -> Self {
        rabbitmqctl(&["stop_app"]);
        Stopped
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    }
}

/// Records every `n` it processes.
#[derive(Default)]
struct Record {
    done: Mutex<BTreeSet<u64>>,
}

impl Consumer for Record {
    type Output = ();

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let n = tx.json::<serde_json::Value>()?["n"].as_u64().unwrap();
        self.done.lock().unwrap().insert(n);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finite_run_ends_only_after_every_message_despite_a_broker_restart() {
    let queue = format!("ergon-test-restart-{}", std::process::id());
    let config = Arc::new(RabbitConfig {
        url: URL.into(),
        queue: Some(queue.clone()),
        prefetch: 64,
        fetch_wait: Duration::from_millis(100),
        ..RabbitConfig::default()
    });
    let feeder = RabbitConnector::connect(config.clone(), "feeder".into())
        .await
        .unwrap_or_else(|err| panic!("RabbitMQ at {URL}: {err}"));
    let count = 4000;
    let orders: Vec<Transaction> = (0..count)
        .map(|n| Transaction::new(format!("t-{n}"), format!("{{\"n\":{n}}}")))
        .collect();
    feeder.dispatch(&orders).await.unwrap();
    feeder.close().await.unwrap();

    let mut reconnecting = (*config).clone();
    reconnecting.reconnect.backoff = Duration::from_millis(100);
    reconnecting.reconnect.backoff_cap = Duration::from_millis(500);
    let input = Arc::new(
        RabbitConnector::connect(Arc::new(reconnecting), "restart".into())
            .await
            .unwrap(),
    );
    let task = Arc::new(Record::default());
    let stats = Arc::new(WorkerStats::default());
    let cx = Context::builder("record").input(input.clone()).build();
    let mut policy = ConsumerPolicy::default();
    policy.r#loop.concurrency = 32;
    let run = ConsumeLoop::consumer(task.clone(), cx, Arc::new(policy)).stats(stats.clone());
    let running = tokio::spawn(run.run());

    while stats.snapshot().succeeded < 500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopped = Stopped::broker();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(stopped);

    let end = tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .expect("the run ends once the queue is drained")
        .unwrap();
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    input.close().await.unwrap();
    assert_eq!(
        task.done.lock().unwrap().len() as u64,
        count,
        "every message processed ({:?})",
        stats.snapshot()
    );

    let channel = raw().await;
    let left = depth(&channel, &queue).await;
    delete(&channel, &[&queue]).await;
    assert_eq!(left, 0, "nothing left in the queue");
}

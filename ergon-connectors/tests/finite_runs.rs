//! A finite (`streaming = false`) run ends only when its input is drained, on every
//! connector: slow transactions, retried ones and requeued ones are all processed before
//! the loop reports `Exhausted`, and nothing is left in the input. RabbitMQ runs against
//! the local broker (`amqp://guest:guest@127.0.0.1:5672`), with a connection killed
//! mid-run: the run still ends with everything processed, and every dead letter counted
//! is one the broker holds (settlements on the lost channel are counted apart).
#![cfg(all(feature = "file", feature = "local", feature = "rabbitmq"))]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ergon_connectors::file::FileConnector;
use ergon_connectors::local::{LocalConfig, LocalConnector};
use ergon_connectors::rabbitmq::{DeadLetterConfig, QueueKind, RabbitConfig, RabbitConnector};
use ergon_core::memory::MemoryConnector;
use ergon_core::policy::FailureAction;
use ergon_core::runner::{ConsumeLoop, LoopEnd, StatsSnapshot, WorkerStats};
use ergon_core::{Connector, Consumer, ConsumerPolicy, Context, TaskError, Transaction};
use support::{URL, delete, depth, kill_connections, raw, unique};

/// Slow, and failing at first: every third transaction (by its payload's `n`) fails its
/// first delivery with a business error (requeued by policy), every other one fails its
/// first attempt with a system error (retried after the retry backoff).
#[derive(Default)]
struct Flaky {
    slow: Duration,
    calls: Mutex<HashMap<u64, u32>>,
    done: Mutex<BTreeSet<u64>>,
}

impl Consumer for Flaky {
    type Output = ();

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
        tokio::time::sleep(self.slow).await;
        let n = tx.json::<serde_json::Value>()?["n"].as_u64().unwrap();
        let call = {
            let mut calls = self.calls.lock().unwrap();
            let call = calls.entry(n).or_default();
            *call += 1;
            *call
        };
        match (n % 3, call) {
            (0, 1) => Err(TaskError::business("first delivery refused")),
            (_, 1) => Err(TaskError::system("first attempt failed")),
            _ => {
                self.done.lock().unwrap().insert(n);
                Ok(())
            }
        }
    }
}

fn payloads(count: u64) -> Vec<Transaction> {
    (0..count)
        .map(|n| Transaction::new(format!("t-{n}"), format!("{{\"n\":{n}}}")))
        .collect()
}

fn policy(concurrency: usize, batch_size: usize, retry_after: Duration) -> Arc<ConsumerPolicy> {
    let mut policy = ConsumerPolicy::default();
    policy.r#loop.concurrency = concurrency;
    policy.fetch.batch_size = batch_size;
    policy.process.retry.max_attempts = 2;
    policy.process.retry.backoff = retry_after;
    policy.process.retry.jitter = 0.0;
    policy.on_failure = FailureAction::Requeue;
    Arc::new(policy)
}

/// Runs one finite loop per input (the task's workers) to its end, closing each input;
/// a run that does not end within a minute fails the test rather than hanging it.
async fn run_finite(
    task: &Arc<Flaky>,
    inputs: Vec<Arc<dyn Connector>>,
    policy: &Arc<ConsumerPolicy>,
) -> StatsSnapshot {
    let mut workers = Vec::new();
    let mut all = Vec::new();
    for (worker, input) in inputs.into_iter().enumerate() {
        let stats = Arc::new(WorkerStats::default());
        all.push(stats.clone());
        let cx = Context::builder("flaky")
            .worker(worker)
            .input(input.clone())
            .build();
        let run = ConsumeLoop::consumer(task.clone(), cx, policy.clone()).stats(stats);
        workers.push(tokio::spawn(async move {
            let end = run.run().await;
            input.close().await.unwrap();
            end
        }));
    }
    for worker in workers {
        let end = tokio::time::timeout(Duration::from_secs(60), worker)
            .await
            .expect("a finite run must end once its input is drained")
            .unwrap();
        assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    }
    let mut total = StatsSnapshot::default();
    for stats in all {
        total += stats.snapshot();
    }
    total
}

fn assert_all_processed(task: &Flaky, stats: &StatsSnapshot, count: u64) {
    let done = task.done.lock().unwrap();
    assert_eq!(done.len() as u64, count, "every transaction processed");
    assert_eq!(stats.succeeded, count, "{stats:?}");
    let requeued = count.div_ceil(3);
    assert!(stats.requeued >= requeued, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_finite_run_processes_slow_retried_and_requeued_transactions() {
    let task = Arc::new(Flaky {
        slow: Duration::from_millis(20),
        ..Flaky::default()
    });
    let queue = Arc::new(MemoryConnector::with(payloads(90)));
    let inputs: Vec<Arc<dyn Connector>> = vec![queue.clone(), queue.clone()];
    let stats = run_finite(&task, inputs, &policy(8, 4, Duration::from_millis(50))).await;
    assert_all_processed(&task, &stats, 90);
    assert!(queue.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_a_finite_run_processes_slow_retried_and_requeued_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    let lines: String = (0..90).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    std::fs::write(&path, lines).unwrap();
    let task = Arc::new(Flaky {
        slow: Duration::from_millis(20),
        ..Flaky::default()
    });
    let file = FileConnector::new(&path);
    let inputs: Vec<Arc<dyn Connector>> = vec![Arc::new(file.clone()), Arc::new(file.clone())];
    let stats = run_finite(&task, inputs, &policy(8, 4, Duration::from_millis(50))).await;
    assert_all_processed(&task, &stats, 90);
    assert_eq!(file.requeued(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_a_finite_run_processes_slow_retried_and_requeued_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let config = LocalConfig {
        ack_interval: Duration::from_millis(50),
        ..LocalConfig::default()
    };
    let open = || LocalConnector::open(dir.path().join("queue.db"), "orders".into(), &config);
    let feeder = open().await.unwrap();
    feeder.dispatch(&payloads(90)).await.unwrap();
    let task = Arc::new(Flaky {
        slow: Duration::from_millis(20),
        ..Flaky::default()
    });
    let inputs: Vec<Arc<dyn Connector>> = vec![
        Arc::new(open().await.unwrap()),
        Arc::new(open().await.unwrap()),
    ];
    let stats = run_finite(&task, inputs, &policy(8, 4, Duration::from_millis(50))).await;
    assert_all_processed(&task, &stats, 90);
    let depths = feeder.depths().await.unwrap();
    assert_eq!(
        (depths.ready, depths.in_flight, depths.expired, depths.dead),
        (0, 0, 0, 0)
    );
}

fn rabbit_config(queue: &str, prefetch: u16) -> RabbitConfig {
    RabbitConfig {
        url: URL.into(),
        queue: Some(queue.to_owned()),
        prefetch,
        fetch_wait: Duration::from_millis(100),
        ..RabbitConfig::default()
    }
}

async fn rabbit(config: &RabbitConfig, name: &str) -> Arc<RabbitConnector> {
    Arc::new(
        RabbitConnector::connect(Arc::new(config.clone()), name.to_owned())
            .await
            .unwrap_or_else(|err| panic!("RabbitMQ at {URL}: {err}")),
    )
}

/// Messages ready in each of `queues`, which are then deleted.
async fn depths_then_delete(queues: &[&str]) -> Vec<u32> {
    let channel = raw().await;
    let mut depths = Vec::new();
    for queue in queues {
        depths.push(depth(&channel, queue).await);
    }
    delete(&channel, queues).await;
    depths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_a_finite_run_waits_for_retries_beyond_the_prefetch() {
    // The prefetch is full of first attempts waiting for their retry, so fetches come back
    // empty long before the queue is drained: the run must not end there.
    let queue = unique("finite");
    let config = rabbit_config(&queue, 32);
    let feeder = rabbit(&config, "feeder").await;
    feeder.dispatch(&payloads(400)).await.unwrap();
    feeder.close().await.unwrap();

    let task = Arc::new(Flaky::default());
    let input = rabbit(&config, &unique("finite-worker")).await;
    let stats = run_finite(
        &task,
        vec![input],
        &policy(32, 32, Duration::from_millis(300)),
    )
    .await;
    assert_all_processed(&task, &stats, 400);
    assert_eq!(stats.settle_stale, 0);
    assert_eq!(depths_then_delete(&[&queue]).await, [0]);
}

/// Dead-letters everything. From the 200th transaction on, each waits until the test has
/// killed the connection, so dozens are in flight when the channel goes.
#[derive(Default)]
struct Refuse {
    started: AtomicU64,
    killed: AtomicBool,
}

impl Consumer for Refuse {
    type Output = ();

    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        if self.started.fetch_add(1, Relaxed) >= 200 {
            while !self.killed.load(Relaxed) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Err(TaskError::business("refused"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_dead_letters_counted_are_the_ones_the_broker_holds_after_a_lost_channel() {
    let queue = unique("stale");
    let dead = unique("stale-dead");
    let mut config = rabbit_config(&queue, 64);
    config.dead_letter = Some(DeadLetterConfig {
        queue: dead.clone(),
    });
    config.reconnect.backoff = Duration::from_millis(50);
    let feeder = rabbit(&config, "feeder").await;
    feeder.dispatch(&payloads(1000)).await.unwrap();
    feeder.close().await.unwrap();

    let name = unique("stale-worker");
    let input = rabbit(&config, &name).await;
    let stats = Arc::new(WorkerStats::default());
    let cx = Context::builder("refuse").input(input.clone()).build();
    let mut policy = ConsumerPolicy::default();
    policy.r#loop.concurrency = 64;
    policy.fetch.batch_size = 64;
    let task = Arc::new(Refuse::default());
    let run = ConsumeLoop::consumer(task.clone(), cx, Arc::new(policy)).stats(stats.clone());
    let running = tokio::spawn(run.run());

    // Kill the connection while dozens of transactions wait in flight.
    while stats.snapshot().in_flight < 32 || task.started.load(Relaxed) < 232 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        kill_connections(&name) > 0,
        "found no connection named {name}"
    );
    task.killed.store(true, Relaxed);
    let end = tokio::time::timeout(Duration::from_secs(90), running)
        .await
        .expect("the run ends once the queue is drained")
        .unwrap();
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    input.close().await.unwrap();

    let stats = stats.snapshot();
    let [left, held] = depths_then_delete(&[&queue, &dead]).await[..] else {
        unreachable!()
    };
    assert_eq!(left, 0, "the input is drained");
    // Each dead letter counted is one the broker confirmed. A stale one may be there too:
    // its publish reached the broker but the confirm was lost with the channel, and the
    // message, redelivered, was dead-lettered again (at least once).
    let held = u64::from(held);
    assert!(
        stats.dead_lettered <= held && held <= stats.dead_lettered + stats.settle_stale,
        "{held} dead letters held; counted {stats:?}"
    );
    assert!(held >= 1000, "every message dead-lettered at least once");
    assert!(
        stats.settle_stale > 0,
        "settlements on the lost channels are counted apart ({stats:?})"
    );
}

/// Refuses everything: with `on_failure = "requeue"` a message would cycle forever.
#[derive(Default)]
struct AlwaysRefuse {
    calls: AtomicU64,
}

impl Consumer for AlwaysRefuse {
    type Output = ();

    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        self.calls.fetch_add(1, Relaxed);
        Err(TaskError::business("refused"))
    }
}

/// Runs one always-refused message from `input` with `max_deliveries = 3`: three
/// deliveries run and are requeued, the fourth is dead-lettered without running.
async fn poison_ends_in_the_dead_letters(input: Arc<dyn Connector>) {
    let task = Arc::new(AlwaysRefuse::default());
    let cx = Context::builder("poison").input(input.clone()).build();
    let mut policy = ConsumerPolicy {
        on_failure: FailureAction::Requeue,
        ..ConsumerPolicy::default()
    };
    policy.transaction.max_deliveries = 3;
    let stats = Arc::new(WorkerStats::default());
    let run = ConsumeLoop::consumer(task.clone(), cx, Arc::new(policy)).stats(stats.clone());
    let end = tokio::time::timeout(Duration::from_secs(60), run.run())
        .await
        .expect("the poison message must not cycle forever");
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    input.close().await.unwrap();
    let stats = stats.snapshot();
    assert_eq!(task.calls.load(Relaxed), 3, "{stats:?}");
    assert_eq!((stats.requeued, stats.dead_lettered), (3, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_a_message_requeued_forever_is_dead_lettered_after_max_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let config = LocalConfig::default();
    let open = || LocalConnector::open(dir.path().join("q.db"), "q".into(), &config);
    let feeder = open().await.unwrap();
    feeder.dispatch(&payloads(1)).await.unwrap();
    poison_ends_in_the_dead_letters(Arc::new(open().await.unwrap())).await;
    let depths = feeder.depths().await.unwrap();
    assert_eq!((depths.ready, depths.in_flight, depths.dead), (0, 0, 1));
}

/// The same on RabbitMQ, on a queue of `kind` with a dead-letter queue.
async fn rabbitmq_poison(kind: QueueKind) {
    let queue = unique("poison");
    let dead = unique("poison-dead");
    let mut config = rabbit_config(&queue, 16);
    config.declare.kind = kind;
    config.dead_letter = Some(DeadLetterConfig {
        queue: dead.clone(),
    });
    let feeder = rabbit(&config, "feeder").await;
    feeder.dispatch(&payloads(1)).await.unwrap();
    feeder.close().await.unwrap();
    poison_ends_in_the_dead_letters(rabbit(&config, &unique("poison-worker")).await).await;
    assert_eq!(
        depths_then_delete(&[&queue, &dead]).await,
        [0, 1],
        "{kind:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_classic_a_message_requeued_forever_is_dead_lettered_after_max_deliveries() {
    rabbitmq_poison(QueueKind::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_quorum_a_message_requeued_forever_is_dead_lettered_after_max_deliveries() {
    rabbitmq_poison(QueueKind::Quorum).await;
}

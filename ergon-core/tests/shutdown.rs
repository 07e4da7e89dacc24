//! Stopping a consume loop: on shutdown or at the loop timeout it stops fetching, requeues
//! what has not started, lets in-flight work finish until the drain timeout, then cancels
//! and requeues the rest; every transaction is settled exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ergon_core::runner::{ConsumeLoop, LoopEnd, StatsSnapshot, WorkerStats};
use ergon_core::test_util::ScriptedConnector;
use ergon_core::{Consumer, ConsumerPolicy, Context, Settlement, TaskError, Transaction};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Takes `{"ms": …}` milliseconds per transaction.
struct Sleeps;

impl Consumer for Sleeps {
    type Output = ();

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
        let ms = tx.json::<serde_json::Value>()?["ms"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }
}

fn sleeping(durations_ms: &[u64]) -> Arc<ScriptedConnector> {
    Arc::new(ScriptedConnector::new(durations_ms.iter().enumerate().map(
        |(i, ms)| Transaction::new(format!("tx-{i}"), format!("{{\"ms\":{ms}}}")),
    )))
}

fn policy(concurrency: usize) -> ConsumerPolicy {
    let mut policy = ConsumerPolicy::default();
    policy.r#loop.concurrency = concurrency;
    policy.r#loop.drain_timeout = Duration::from_secs(1);
    policy.fetch.batch_size = 10;
    policy.process.retry.timeout = Duration::from_secs(60);
    policy
}

/// Each id's settlements, in order.
fn settled(input: &ScriptedConnector) -> HashMap<String, Vec<&'static str>> {
    let mut by_id: HashMap<String, Vec<&'static str>> = HashMap::new();
    for (id, settlement) in input.settlements() {
        by_id.entry(id).or_default().push(settlement.as_str());
    }
    by_id
}

async fn run_until(
    input: &Arc<ScriptedConnector>,
    policy: ConsumerPolicy,
    stop_after: Option<Duration>,
) -> (LoopEnd, StatsSnapshot) {
    let shutdown = CancellationToken::new();
    let stats = Arc::new(WorkerStats::default());
    let cx = Context::builder("drain").input(input.clone()).build();
    let running = tokio::spawn(
        ConsumeLoop::consumer(Arc::new(Sleeps), cx, Arc::new(policy))
            .stats(stats.clone())
            .shutdown(shutdown.clone())
            .run(),
    );
    if let Some(after) = stop_after {
        tokio::time::sleep(after).await;
        shutdown.cancel();
    }
    let end = running.await.unwrap().unwrap();
    (end, stats.snapshot())
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_in_flight_work_then_requeues_the_rest() {
    // Four in flight: two finish during the drain, two outlast it; six wait in the buffer.
    let input = sleeping(&[100, 100, 10_000, 10_000, 5, 5, 5, 5, 5, 5]);
    let started = Instant::now();
    let (end, stats) = run_until(&input, policy(4), Some(Duration::from_millis(50))).await;
    assert_eq!(end, LoopEnd::ShutDown);
    // Stopped at 50 ms; the drain timeout of 1 s cut the two long ones off at 1.05 s.
    assert_eq!(started.elapsed(), Duration::from_millis(1050));
    assert_eq!(input.acked(), ["tx-0", "tx-1"]);
    let mut requeued = input.requeued();
    requeued.sort();
    assert_eq!(
        requeued,
        [
            "tx-2", "tx-3", "tx-4", "tx-5", "tx-6", "tx-7", "tx-8", "tx-9"
        ]
    );
    assert_eq!(
        (stats.succeeded, stats.requeued, stats.abandoned),
        (2, 8, 2)
    );
    assert_eq!(stats.in_flight, 0);
    let settled = settled(&input);
    assert_eq!(settled.len(), 10);
    assert!(settled.values().all(|s| s.len() == 1), "{settled:?}");
    // Requeued transactions are back on the input, nothing lost.
    assert_eq!(input.queue().len(), 8);
}

#[tokio::test(start_paused = true)]
async fn a_drain_that_finishes_in_time_requeues_nothing_in_flight() {
    let input = sleeping(&[300, 300, 5, 5]);
    let started = Instant::now();
    let (end, stats) = run_until(&input, policy(2), Some(Duration::from_millis(10))).await;
    assert_eq!(end, LoopEnd::ShutDown);
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(input.acked(), ["tx-0", "tx-1"]);
    assert_eq!((stats.requeued, stats.abandoned), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn the_loop_timeout_stops_fetching_and_drains() {
    let input = sleeping(&[100; 50]);
    let mut timed = policy(2);
    timed.r#loop.timeout = Some(Duration::from_millis(450));
    let started = Instant::now();
    let (end, stats) = run_until(&input, timed, None).await;
    assert_eq!(end, LoopEnd::TimedOut);
    // Pairs finish at 100, 200, 300, 400; the pair started at 400 finishes during the drain.
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    assert_eq!(stats.succeeded, 10);
    assert_eq!(stats.abandoned, 0);
    assert_eq!(
        input.acked().len() + input.queue().len(),
        50,
        "nothing lost"
    );
    assert!(settled(&input).values().all(|s| s.len() == 1));
    assert!(
        input
            .settlements()
            .iter()
            .all(|(_, s)| matches!(s, Settlement::Ack | Settlement::Requeue))
    );
}

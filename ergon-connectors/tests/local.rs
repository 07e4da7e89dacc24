//! The local queue against real SQLite files in a temporary directory: round trip,
//! lease expiry, dead letters and their requeue, requeue, and workers competing.

#![cfg(feature = "local")]

use std::collections::BTreeSet;
use std::time::Duration;

use ergon_connectors::local::{LocalConfig, LocalConnector, Store};
use ergon_core::{Category, Connector, Failure, Settlement, Transaction};

fn config(lease_ms: u64) -> LocalConfig {
    LocalConfig {
        lease: Duration::from_millis(lease_ms),
        ..LocalConfig::default()
    }
}

async fn open(dir: &tempfile::TempDir, lease_ms: u64) -> LocalConnector {
    LocalConnector::open(
        dir.path().join("queue.db"),
        "orders".into(),
        &config(lease_ms),
    )
    .await
    .unwrap()
}

fn transactions(n: usize) -> Vec<Transaction> {
    (0..n)
        .map(|i| {
            Transaction::builder(format!("t-{i}"))
                .payload(format!("{{\"n\":{i}}}"))
                .meta(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )
                .build()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatched_transactions_come_back_in_order_and_acks_delete_them() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir, 30_000).await;
    queue.dispatch(&transactions(5)).await.unwrap();
    assert_eq!(queue.depths().await.unwrap().ready, 5);

    let fetched = queue.fetch(10).await.unwrap();
    let ids: Vec<&str> = fetched.iter().map(|d| d.id()).collect();
    assert_eq!(ids, ["t-0", "t-1", "t-2", "t-3", "t-4"]);
    assert_eq!(fetched[2].payload().as_ref(), b"{\"n\":2}");
    assert_eq!(
        fetched[2].meta("traceparent"),
        transactions(1)[0].meta("traceparent")
    );
    assert_eq!(fetched[2].deliveries(), 1);
    assert!(
        fetched[2]
            .metadata()
            .keys()
            .all(|k| !k.starts_with("local.")),
        "no queue state in metadata"
    );
    let depths = queue.depths().await.unwrap();
    assert_eq!((depths.ready, depths.in_flight), (0, 5));

    for tx in &fetched {
        queue.settle(tx, &Settlement::Ack).await.unwrap();
    }
    queue.close().await.unwrap();
    let depths = open(&dir, 30_000).await.depths().await.unwrap();
    assert_eq!((depths.ready, depths.in_flight, depths.dead), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_delivers_the_transaction_again_with_its_count() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir, 200).await;
    queue.dispatch(&transactions(1)).await.unwrap();
    let first = queue.fetch(10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        queue.fetch(10).await.unwrap().is_empty(),
        "leased: invisible"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(queue.depths().await.unwrap().expired, 1);

    let again = queue.fetch(10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id(), "t-0");
    assert_eq!(again[0].deliveries(), 2);
    // The first lease is over: its late ack touches nothing, the second one deletes.
    queue.settle(&first[0], &Settlement::Ack).await.unwrap();
    queue.close().await.unwrap();
    assert_eq!(open(&dir, 200).await.depths().await.unwrap().in_flight, 1);
    let queue = open(&dir, 200).await;
    queue.settle(&again[0], &Settlement::Ack).await.unwrap();
    queue.close().await.unwrap();
    let depths = open(&dir, 200).await.depths().await.unwrap();
    assert_eq!((depths.ready, depths.in_flight, depths.expired), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_their_failure_and_can_be_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(&dir, 30_000).await;
    queue.dispatch(&transactions(2)).await.unwrap();
    let fetched = queue.fetch(10).await.unwrap();
    let failure = Failure {
        task: "orders".into(),
        step: "process",
        category: Category::Business,
        message: "total is negative".into(),
        attempts: 1,
    };
    queue
        .settle(&fetched[0], &Settlement::DeadLetter(failure))
        .await
        .unwrap();
    queue
        .settle(&fetched[1], &Settlement::Requeue)
        .await
        .unwrap();
    let depths = queue.depths().await.unwrap();
    assert_eq!((depths.ready, depths.in_flight, depths.dead), (1, 0, 1));

    let mut store = Store::open(&dir.path().join("queue.db")).unwrap();
    let dead = store.dead_letters("orders", 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, "t-0");
    let why: serde_json::Value = serde_json::from_str(&dead[0].failure).unwrap();
    assert_eq!(why["category"], "business");
    assert_eq!(why["error"], "total is negative");
    assert_eq!(why["task"], "orders");

    assert_eq!(store.requeue_dead("orders").unwrap(), 1);
    let back: BTreeSet<String> = queue
        .fetch(10)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id().to_owned())
        .collect();
    assert_eq!(back, BTreeSet::from(["t-0".to_owned(), "t-1".to_owned()]));
    assert_eq!(queue.depths().await.unwrap().dead, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_workers_each_get_every_transaction_once() {
    let dir = tempfile::tempdir().unwrap();
    let feeder = open(&dir, 30_000).await;
    feeder.dispatch(&transactions(1_000)).await.unwrap();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let path = dir.path().join("queue.db");
            tokio::spawn(async move {
                let queue = LocalConnector::open(path, "orders".into(), &config(30_000))
                    .await
                    .unwrap();
                let mut seen = Vec::new();
                loop {
                    let batch = queue.fetch(7).await.unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    for tx in batch {
                        queue.settle(&tx, &Settlement::Ack).await.unwrap();
                        seen.push(tx.id().to_owned());
                    }
                }
                queue.close().await.unwrap();
                seen
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    assert_eq!(
        all.len(),
        1_000,
        "no transaction delivered twice while its lease held"
    );
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 1_000);
    assert_eq!(feeder.depths().await.unwrap(), Default::default());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    std::fs::write(
        &path,
        b"this is not sqlite, just text that is long enough to have a header",
    )
    .unwrap();
    let err = match LocalConnector::open(path, "orders".into(), &config(1_000)).await {
        Ok(_) => panic!("opened a text file as a queue"),
        Err(err) => err,
    };
    assert!(!err.is_retryable());
    let text = err.chain().to_string();
    assert!(
        text.contains("queue.db") && text.contains("cannot open"),
        "{text}"
    );
}

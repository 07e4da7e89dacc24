//! The `postgres` connector against the local PostgreSQL (`ERGON_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`): round trips, leases, dead letters, competing
//! consumers and the LISTEN/NOTIFY wake-up.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use ergon_connectors::postgres::PostgresKind;
use ergon_core::config::{ConfigEnv, ConnectorKind, MakeConnector};
use ergon_core::{Category, Connector, Failure, SettleOutcome, Settlement, Transaction};
use serde_json::json;

fn url() -> String {
    std::env::var("ERGON_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A queue name no other test (or run) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos(),
        NEXT.fetch_add(1, Relaxed)
    )
}

/// A number that differs between runs.
fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_007
}

/// The connector kind configured on a unique queue with `extra` keys.
fn make(queue: &str, extra: serde_json::Value) -> Arc<dyn MakeConnector> {
    let mut table = json!({ "url": url(), "schema": "ergon_test", "queue": queue });
    for (key, value) in extra.as_object().unwrap() {
        table[key] = value.clone();
    }
    let env = ConfigEnv {
        name: "orders".into(),
        base_dir: ".".into(),
    };
    PostgresKind.configure(table, &env).unwrap()
}

async fn connect(make: &Arc<dyn MakeConnector>) -> Arc<dyn Connector> {
    make.connect(0).await.unwrap_or_else(|err| {
        panic!(
            "PostgreSQL is not reachable at {} ({}); these tests need the local server",
            url(),
            err.chain()
        )
    })
}

fn failure() -> Failure {
    Failure {
        task: "orders".into(),
        step: "process",
        category: Category::Business,
        message: "no such customer".into(),
        attempts: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatched_rows_come_back_byte_for_byte_and_acks_delete_them() {
    let make = make(&unique("roundtrip"), json!({}));
    let queue = connect(&make).await;
    let odd = vec![0u8, 0xff, b'\r', b'\n', 0xef, 0xbb, 0xbf, b'"'];
    let sent = vec![
        Transaction::builder("o-1")
            .payload(odd.clone())
            .meta("source", "test")
            .meta("ünïcode", "ok \"quoted\"")
            .build(),
        Transaction::new("o-2", r#"{"n": 1.50}"#),
    ];
    queue.dispatch(&sent).await.unwrap();
    let got = queue.fetch(10).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id(), "o-1");
    assert_eq!(&got[0].payload()[..], &odd[..]);
    assert_eq!(got[0].metadata(), sent[0].metadata());
    assert_eq!(&got[1].payload()[..], br#"{"n": 1.50}"#);
    assert_eq!(got[0].deliveries(), 1);
    for delivery in &got {
        let outcome = queue.settle(delivery, &Settlement::Ack).await.unwrap();
        assert_eq!(outcome, SettleOutcome::Performed);
    }
    queue.close().await.unwrap();
    let stats = make.admin().await.unwrap().unwrap().stats().await.unwrap();
    assert_eq!(
        stats.counts,
        [("ready", 0), ("in_flight", 0), ("done", 0), ("dead", 0)]
    );
    assert!(queue.drained().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_done_keeps_the_row_out_of_later_claims() {
    let make = make(&unique("done"), json!({ "on_ack": "mark_done" }));
    let queue = connect(&make).await;
    queue
        .dispatch(&[Transaction::new("d-1", "x")])
        .await
        .unwrap();
    let got = queue.fetch(10).await.unwrap();
    queue.settle(&got[0], &Settlement::Ack).await.unwrap();
    queue.close().await.unwrap();
    let stats = make.admin().await.unwrap().unwrap().stats().await.unwrap();
    assert_eq!(
        stats.counts,
        [("ready", 0), ("in_flight", 0), ("done", 1), ("dead", 0)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeue_delivers_again_with_a_higher_count() {
    let make = make(&unique("requeue"), json!({}));
    let queue = connect(&make).await;
    queue
        .dispatch(&[Transaction::new("r-1", "x")])
        .await
        .unwrap();
    let first = queue.fetch(10).await.unwrap();
    assert_eq!(first[0].deliveries(), 1);
    let outcome = queue.settle(&first[0], &Settlement::Requeue).await.unwrap();
    assert_eq!(outcome, SettleOutcome::Performed);
    let second = queue.fetch(10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id(), "r-1");
    assert_eq!(second[0].deliveries(), 2);
    // The first delivery's lease is gone: settling by it again is stale.
    let stale = queue.settle(&first[0], &Settlement::Requeue).await.unwrap();
    assert_eq!(stale, SettleOutcome::Stale);
    queue.settle(&second[0], &Settlement::Ack).await.unwrap();
    queue.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_the_failure_and_admin_requeues_them() {
    let make = make(&unique("dead"), json!({}));
    let queue = connect(&make).await;
    queue
        .dispatch(&[Transaction::new("x-1", &b"\x00bad"[..])])
        .await
        .unwrap();
    let got = queue.fetch(10).await.unwrap();
    let outcome = queue
        .settle(&got[0], &Settlement::DeadLetter(failure()))
        .await
        .unwrap();
    assert_eq!(outcome, SettleOutcome::Performed);
    let admin = make.admin().await.unwrap().unwrap();
    let dead = admin.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, "x-1");
    assert_eq!(dead[0].deliveries, 1);
    assert_eq!(dead[0].payload, b"\x00bad");
    assert_eq!(dead[0].failure.as_ref(), Some(&failure().to_json()));
    assert!(dead[0].failed_at_ms.is_some_and(|ms| ms > 0));
    let stats = admin.stats().await.unwrap();
    assert!(stats.to_string().ends_with(" dead=1"), "{stats}");

    assert_eq!(admin.requeue_dead().await.unwrap(), 1);
    assert!(admin.dead_letters(10).await.unwrap().is_empty());
    let again = queue.fetch(10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(&again[0].payload()[..], b"\x00bad");
    assert_eq!(again[0].deliveries(), 1, "the count starts over");
    queue.settle(&again[0], &Settlement::Ack).await.unwrap();
    queue.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_delivers_the_row_again() {
    let make = make(
        &unique("lease"),
        json!({ "lease": "300ms", "fetch_wait": "10ms" }),
    );
    let queue = connect(&make).await;
    queue
        .dispatch(&[Transaction::new("l-1", "x")])
        .await
        .unwrap();
    let first = queue.fetch(10).await.unwrap();
    assert_eq!(first.len(), 1);
    // A killed runner never settles: under the lease nobody else gets the row...
    let other = connect(&make).await;
    assert!(other.fetch(10).await.unwrap().is_empty());
    assert!(
        !other.drained().await.unwrap(),
        "a leased row is not drained"
    );
    // ...and after it, the next claim does, with the delivery counted.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = other.fetch(10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id(), "l-1");
    assert_eq!(second[0].deliveries(), 2);
    // The first claim's ack (its lease ran out) is stale, the second one's is not.
    let stale = queue.settle(&first[0], &Settlement::Ack).await.unwrap();
    assert_eq!(stale, SettleOutcome::Stale);
    let done = other.settle(&second[0], &Settlement::Ack).await.unwrap();
    assert_eq!(done, SettleOutcome::Performed);
    other.close().await.unwrap();
    queue.close().await.unwrap();
    assert!(other.drained().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_on_one_queue_never_get_the_same_row() {
    let make = make(&unique("compete"), json!({ "fetch_wait": "20ms" }));
    let a = connect(&make).await;
    let b = connect(&make).await;
    let sent: Vec<Transaction> = (0..500)
        .map(|i| Transaction::new(format!("c-{i}"), "x"))
        .collect();
    a.dispatch(&sent).await.unwrap();
    let consume = |queue: Arc<dyn Connector>| async move {
        let mut seen = Vec::new();
        loop {
            let got = queue.fetch(7).await.unwrap();
            if got.is_empty() && queue.drained().await.unwrap() {
                break;
            }
            for delivery in got {
                seen.push(delivery.id().to_owned());
                queue.settle(&delivery, &Settlement::Ack).await.unwrap();
            }
        }
        queue.close().await.unwrap();
        seen
    };
    let (seen_a, seen_b) = tokio::join!(
        tokio::spawn(consume(a.clone())),
        tokio::spawn(consume(b.clone()))
    );
    let (seen_a, seen_b) = (seen_a.unwrap(), seen_b.unwrap());
    assert!(!seen_a.is_empty() && !seen_b.is_empty(), "both consumed");
    let all: BTreeSet<&String> = seen_a.iter().chain(&seen_b).collect();
    assert_eq!(seen_a.len() + seen_b.len(), 500, "no row twice");
    assert_eq!(all.len(), 500, "every row once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_fetch_wakes_on_a_dispatch_from_another_connection() {
    // A fetch that finds nothing waits up to `fetch_wait` (a minute here) for a
    // notification; the dispatch's NOTIFY ends the wait with the row.
    let make = make(&unique("notify"), json!({ "fetch_wait": "60s" }));
    let consumer = connect(&make).await;
    let producer = connect(&make).await;
    let waiting = tokio::spawn({
        let consumer = consumer.clone();
        async move { consumer.fetch(10).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    producer
        .dispatch(&[Transaction::new("n-1", "wake")])
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the fetch returned long before fetch_wait")
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id(), "n-1");
    consumer.settle(&got[0], &Settlement::Ack).await.unwrap();
    consumer.close().await.unwrap();
    producer.close().await.unwrap();
}

#[test]
fn bad_config_names_the_key() {
    let env = ConfigEnv {
        name: "orders".into(),
        base_dir: ".".into(),
    };
    let issue = |table| PostgresKind.configure(table, &env).err().unwrap().path;
    assert_eq!(issue(json!({})), "url");
    assert_eq!(
        issue(json!({ "url": url(), "schema": "Bad-Name" })),
        "schema"
    );
    assert_eq!(issue(json!({ "url": url(), "lease": "0s" })), "lease");
    assert_eq!(issue(json!({ "url": url(), "on_ack": "keep" })), "on_ack");
    assert_eq!(issue(json!({ "url": url(), "leese": "1s" })), "leese");
    assert_eq!(issue(json!({ "url": url(), "pool_size": 0 })), "pool_size");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_an_error_naming_it() {
    let env = ConfigEnv {
        name: "orders".into(),
        base_dir: ".".into(),
    };
    let make = PostgresKind
        .configure(
            json!({ "url": "postgres://app:s3cr3t@127.0.0.1:1/nowhere?connect_timeout=2" }),
            &env,
        )
        .unwrap();
    let err = make.connect(0).await.err().unwrap().to_string();
    assert!(err.contains("127.0.0.1:1/nowhere"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
}

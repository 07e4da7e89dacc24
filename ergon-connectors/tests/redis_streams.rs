//! The `redis_streams` connector against the local Redis (`127.0.0.1:6379`, or
//! `ERGON_TEST_REDIS_URL`): every test uses streams of its own and deletes them.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use ergon_connectors::redis_streams::RedisStreamsKind;
use ergon_core::config::{ConfigEnv, ConnectorKind, MakeConnector};
use ergon_core::queue_admin::QueueAdmin;
use ergon_core::{Category, Connector, Delivery, Failure, SettleOutcome, Settlement, Transaction};
use redis::aio::MultiplexedConnection;

fn url() -> String {
    std::env::var("ERGON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A stream name no other test (or run) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "ergon-test-{prefix}-{}-{}-{}",
        std::process::id(),
        nanos_suffix(),
        NEXT.fetch_add(1, Relaxed)
    )
}

fn nanos_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000
}

/// A raw connection for inspecting; fails the test clearly without a server.
async fn raw() -> MultiplexedConnection {
    let client = redis::Client::open(url()).unwrap();
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|err| {
            panic!(
                "Redis is not reachable at {} ({err}); these tests need the local server \
                 (Debian: `systemctl start redis-server`)",
                url()
            )
        })
}

/// A stream, its connector's configuration and clean-up.
struct Stream {
    name: String,
    make: Arc<dyn MakeConnector>,
    raw: MultiplexedConnection,
}

impl Stream {
    /// A fresh stream, configured with `extra` keys besides `url` and `stream`.
    async fn new(prefix: &str, extra: serde_json::Value) -> Self {
        let name = unique(prefix);
        let mut table = serde_json::json!({ "url": url(), "stream": name });
        for (key, value) in extra.as_object().unwrap() {
            table[key] = value.clone();
        }
        let env = ConfigEnv {
            name: "orders".into(),
            base_dir: ".".into(),
        };
        let make = RedisStreamsKind.configure(table, &env).unwrap();
        Self {
            name,
            make,
            raw: raw().await,
        }
    }

    async fn worker(&self, worker: usize) -> Arc<dyn Connector> {
        self.make.connect(worker).await.unwrap()
    }

    async fn admin(&self) -> Arc<dyn QueueAdmin> {
        self.make.admin().await.unwrap().expect("an admin")
    }

    async fn len(&self, stream: &str) -> u64 {
        redis::cmd("XLEN")
            .arg(stream)
            .query_async(&mut self.raw.clone())
            .await
            .unwrap()
    }

    fn dead(&self) -> String {
        format!("{}:dead", self.name)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let (name, dead) = (self.name.clone(), self.dead());
        let client = redis::Client::open(url()).unwrap();
        if let Ok(mut conn) = client.get_connection() {
            let _: Result<(), _> = redis::cmd("DEL").arg(&name).arg(&dead).query(&mut conn);
        }
    }
}

/// Fetches until `n` deliveries came (or the deadline passes).
async fn fetch_n(connector: &dyn Connector, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < n && tokio::time::Instant::now() < deadline {
        got.extend(connector.fetch(n - got.len()).await.unwrap());
    }
    got
}

async fn ack_all(connector: &dyn Connector, deliveries: &[Delivery]) {
    for delivery in deliveries {
        let outcome = connector.settle(delivery, &Settlement::Ack).await.unwrap();
        assert_eq!(outcome, SettleOutcome::Performed);
    }
}

fn failure() -> Failure {
    Failure {
        task: "billing".into(),
        step: "process",
        category: Category::Business,
        message: "no such customer".into(),
        attempts: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatched_transactions_come_back_byte_exact_and_acks_delete_them() {
    let stream = Stream::new("roundtrip", serde_json::json!({})).await;
    let connector = stream.worker(0).await;
    let payloads: [&[u8]; 3] = [b"{\"n\": 1.50}", b"\xff\x00\r\n\xef\xbb\xbf", b""];
    let sent: Vec<Transaction> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Transaction::builder(format!("o-{i}"))
                .payload(p.to_vec())
                .meta("traceparent", format!("00-{i}"))
                .build()
        })
        .collect();
    connector.dispatch(&sent).await.unwrap();
    assert_eq!(stream.len(&stream.name).await, 3);

    let got = fetch_n(&*connector, 3).await;
    assert_eq!(got.len(), 3);
    for (delivery, tx) in got.iter().zip(&sent) {
        assert_eq!(delivery.id(), tx.id());
        assert_eq!(delivery.payload(), tx.payload(), "byte for byte");
        assert_eq!(delivery.metadata(), tx.metadata());
        assert_eq!(delivery.deliveries(), 1);
    }
    assert!(!connector.drained().await.unwrap(), "three entries pending");
    ack_all(&*connector, &got).await;
    // drained() sends the acks first.
    assert!(connector.drained().await.unwrap());
    assert_eq!(
        stream.len(&stream.name).await,
        0,
        "acked entries are deleted"
    );
    connector.health().await.unwrap();
    connector.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_without_a_payload_is_delivered_anyway() {
    let stream = Stream::new("malformed", serde_json::json!({})).await;
    let mut raw = stream.raw.clone();
    let _: String = redis::cmd("XADD")
        .arg(&stream.name)
        .arg("*")
        .arg("something")
        .arg("else")
        .query_async(&mut raw)
        .await
        .unwrap();
    let connector = stream.worker(0).await;
    let got = fetch_n(&*connector, 1).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].payload().is_empty());
    assert!(got[0].id().contains('-'), "the entry id: {}", got[0].id());
    ack_all(&*connector, &got).await;
    connector.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_entries_are_reclaimed_with_their_delivery_count() {
    let stream = Stream::new("reclaim", serde_json::json!({ "claim_idle": "300ms" })).await;
    let dead = stream.worker(0).await;
    dead.dispatch(&[Transaction::new("a", "1"), Transaction::new("b", "2")])
        .await
        .unwrap();
    let taken = fetch_n(&*dead, 2).await;
    assert_eq!(taken.len(), 2);
    // The worker dies: its deliveries are never settled.
    drop(taken);
    drop(dead);

    let survivor = stream.worker(1).await;
    assert!(
        survivor.fetch(10).await.unwrap().is_empty(),
        "not idle long enough yet"
    );
    assert!(
        !survivor.drained().await.unwrap(),
        "entries pending with the dead consumer"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    let reclaimed = fetch_n(&*survivor, 2).await;
    let mut ids: Vec<&str> = reclaimed.iter().map(|d| d.id()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["a", "b"]);
    assert!(
        reclaimed.iter().all(|d| d.deliveries() == 2),
        "{reclaimed:?}"
    );
    assert_eq!(reclaimed[0].payload().as_ref(), b"1");
    ack_all(&*survivor, &reclaimed).await;
    assert!(survivor.drained().await.unwrap());
    survivor.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_the_failure_and_the_admin_requeues_them() {
    let stream = Stream::new("dead", serde_json::json!({})).await;
    let connector = stream.worker(0).await;
    let payload = b"\x00not json\xff".to_vec();
    connector
        .dispatch(&[Transaction::builder("bad-1")
            .payload(payload.clone())
            .meta("k", "v")
            .build()])
        .await
        .unwrap();
    let got = fetch_n(&*connector, 1).await;
    let outcome = connector
        .settle(&got[0], &Settlement::DeadLetter(failure()))
        .await
        .unwrap();
    assert_eq!(outcome, SettleOutcome::Performed);
    assert_eq!(stream.len(&stream.name).await, 0);
    assert_eq!(stream.len(&stream.dead()).await, 1);

    let admin = stream.admin().await;
    let stats = admin.stats().await.unwrap();
    assert_eq!(
        stats.to_string(),
        format!("queue={} length=0 pending=0 lag=0 dead=1", stream.name)
    );
    let dead = admin.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, "bad-1");
    assert_eq!(dead[0].payload, payload);
    assert_eq!(dead[0].deliveries, 1);
    assert_eq!(dead[0].failure, Some(failure().to_json()));
    assert!(
        dead[0]
            .failed_at_ms
            .is_some_and(|ms| ms > 1_700_000_000_000)
    );

    assert_eq!(admin.requeue_dead().await.unwrap(), 1);
    assert_eq!(stream.len(&stream.dead()).await, 0);
    let back = fetch_n(&*connector, 1).await;
    assert_eq!(back[0].id(), "bad-1");
    assert_eq!(back[0].payload().as_ref(), &payload[..]);
    assert_eq!(back[0].meta("k"), Some("v"));
    assert_eq!(back[0].deliveries(), 1, "requeued dead letters start again");
    ack_all(&*connector, &back).await;
    connector.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeue_goes_to_the_tail_with_its_delivery_count() {
    let stream = Stream::new("requeue", serde_json::json!({})).await;
    let connector = stream.worker(0).await;
    connector
        .dispatch(&[Transaction::new("a", "1"), Transaction::new("b", "2")])
        .await
        .unwrap();
    let first = fetch_n(&*connector, 1).await;
    assert_eq!(first[0].id(), "a");
    let outcome = connector
        .settle(&first[0], &Settlement::Requeue)
        .await
        .unwrap();
    assert_eq!(outcome, SettleOutcome::Performed);
    let rest = fetch_n(&*connector, 2).await;
    let seen: Vec<(&str, u32)> = rest.iter().map(|d| (d.id(), d.deliveries())).collect();
    assert_eq!(seen, [("b", 1), ("a", 2)]);
    ack_all(&*connector, &rest).await;
    assert!(connector.drained().await.unwrap());
    connector.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_an_entry_acknowledged_elsewhere_is_stale() {
    let stream = Stream::new("stale", serde_json::json!({})).await;
    let connector = stream.worker(0).await;
    connector
        .dispatch(&[Transaction::new("a", "1")])
        .await
        .unwrap();
    let got = fetch_n(&*connector, 1).await;
    // Another consumer that claimed it finished it.
    let pending: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(&stream.name)
        .arg("orders")
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut stream.raw.clone())
        .await
        .unwrap();
    let _: u64 = redis::cmd("XACK")
        .arg(&stream.name)
        .arg("orders")
        .arg(&pending.ids[0].id)
        .query_async(&mut stream.raw.clone())
        .await
        .unwrap();
    let outcome = connector
        .settle(&got[0], &Settlement::DeadLetter(failure()))
        .await
        .unwrap();
    assert_eq!(outcome, SettleOutcome::Stale);
    assert_eq!(stream.len(&stream.dead()).await, 0, "nothing added");
    connector.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_of_a_group_never_get_the_same_entry() {
    let stream = Stream::new("share", serde_json::json!({ "block": "20ms" })).await;
    let (a, b) = (stream.worker(0).await, stream.worker(1).await);
    let n = 500;
    let txs: Vec<Transaction> = (0..n)
        .map(|i| Transaction::new(i.to_string(), "x"))
        .collect();
    a.dispatch(&txs).await.unwrap();
    let consume = |connector: Arc<dyn Connector>| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let batch = connector.fetch(7).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                ack_all(&*connector, &batch).await;
                ids.extend(batch.iter().map(|d| d.id().to_owned()));
                tokio::task::yield_now().await;
            }
            connector.close().await.unwrap();
            ids
        })
    };
    let (ids_a, ids_b) = tokio::join!(consume(a), consume(b));
    let (ids_a, ids_b) = (ids_a.unwrap(), ids_b.unwrap());
    assert!(!ids_a.is_empty() && !ids_b.is_empty(), "both consumed");
    let all: HashSet<&String> = ids_a.iter().chain(&ids_b).collect();
    assert_eq!(ids_a.len() + ids_b.len(), n, "no entry twice");
    assert_eq!(all.len(), n, "every entry once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxlen_caps_the_stream() {
    let stream = Stream::new("maxlen", serde_json::json!({ "maxlen": 10 })).await;
    let connector = stream.worker(0).await;
    let txs: Vec<Transaction> = (0..1000)
        .map(|i| Transaction::new(i.to_string(), "x"))
        .collect();
    connector.dispatch(&txs).await.unwrap();
    // `MAXLEN ~` trims whole nodes: about 10, never all 1000.
    assert!(stream.len(&stream.name).await < 1000);
    connector.close().await.unwrap();
}

#[test]
fn bad_config_names_the_key() {
    let env = ConfigEnv {
        name: "orders".into(),
        base_dir: ".".into(),
    };
    let path = |table: serde_json::Value| match RedisStreamsKind.configure(table, &env) {
        Ok(_) => panic!("accepted"),
        Err(issue) => issue.path,
    };
    assert_eq!(
        path(serde_json::json!({ "stream": "s", "blok": "1s" })),
        "blok"
    );
    assert_eq!(
        path(serde_json::json!({ "stream": "s", "block": "0ms" })),
        "block"
    );
    assert_eq!(
        path(serde_json::json!({ "stream": "s", "block": "1m" })),
        "block"
    );
    assert_eq!(path(serde_json::json!({})), "stream");
    assert_eq!(
        path(serde_json::json!({ "stream": "s", "url": "http://x" })),
        "url"
    );
    assert_eq!(
        path(serde_json::json!({ "stream": "s", "maxlen": 0 })),
        "maxlen"
    );
    assert_eq!(
        path(serde_json::json!({ "stream": "s", "dead_letter_stream": "s" })),
        "dead_letter_stream"
    );
    assert_eq!(
        path(serde_json::json!({ "stream": "s", "claim_idle": "fast" })),
        "claim_idle"
    );
}

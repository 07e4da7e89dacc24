//! Tagged fan-in (`produces` / `consumes`) on both journals: completions through the
//! `Journal` trait, and the batches the consumer's input receives — on SQLite, the local
//! queues in the journal's own file (a batch enters them in the commit that cuts it); on
//! PostgreSQL (feature `postgres`, a schema of its own per test), in-process `memory`
//! queues the relay dispatches the outbox to.
//!
//! With exact counts: a producer of 25 children gives batches of 10, 10 and 5 (full,
//! full, complete, the last one last); a duplicate completion adds nothing; a timeout
//! cuts a partial batch; failures left out still count towards completeness; spawned
//! children are expected, and cancelled ones delivered as cancelled; a fan-in of the
//! consumer's results expects one item per batch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ergon_core::journal::{Batch, Completion, CutReason, Journal, now_ms};
use ergon_core::{Category, Connector, Settlement, Transaction};
use ergon_journal::{Consumes, DurableJournal, GroupBy, Record, Routes, Settings};
use serde_json::json;

use backends::{Backend, Tables, TestJournal, on_both_backends};

#[path = "common/backends.rs"]
mod backends;

/// The producer's task: it produces the tag `items`.
const PRODUCER: &str = "split";
/// The task whose terminal transactions are collected.
const WORKER: &str = "work";
/// The fan-in consumer.
const CONSUMER: &str = "aggregate";
/// A fan-in of the consumer's results (the batches it completed).
const DIGEST: &str = "digest";
/// The tag collected.
const TAG: &str = "items";
/// The tasks the journal hands transactions to.
const TASKS: [&str; 3] = [CONSUMER, WORKER, DIGEST];

on_both_backends!(
    a_producer_of_25_children_gives_batches_of_10_10_and_5,
    a_duplicate_completion_adds_nothing,
    a_timeout_cuts_a_partial_batch,
    failures_left_out_still_count_towards_completeness,
    spawned_children_are_expected_and_cancelled_ones_delivered_as_cancelled,
    a_fan_in_of_batch_results_expects_one_item_per_batch,
);

/// `consumes = { tags = ["items"], from = ["work"], batch_size = ... }`, grouped by parent.
fn consumes(batch_size: u32) -> Consumes {
    Consumes {
        tags: vec![TAG.to_owned()],
        from: vec![WORKER.to_owned()],
        batch_size,
        timeout: None,
        group_by: GroupBy::Parent,
        include_failed: true,
    }
}

/// A journal with the fan-in `consumes` for the consumer, and the inputs of the tasks it
/// hands transactions to.
struct Fan {
    journal: Arc<DurableJournal>,
    tables: Tables,
    /// The inputs of the tasks, where the consumers' batches arrive.
    inputs: BTreeMap<String, Arc<dyn Connector>>,
}

impl Fan {
    async fn open(backend: Backend, test: &str, consumes: Consumes) -> Self {
        Self::with_routes(backend, test, consumes, |routes| routes).await
    }

    /// A journal whose routes are those of [`Fan::open`] and `more`: on SQLite in a fresh
    /// file, on PostgreSQL in a fresh schema named after `test`.
    async fn with_routes(
        backend: Backend,
        test: &str,
        consumes: Consumes,
        more: impl FnOnce(Routes) -> Routes,
    ) -> Self {
        let settings = |routes: Routes| Settings {
            record: Record::All,
            routes: more(
                routes
                    .produces(PRODUCER, vec![TAG.to_owned()])
                    .consumes(CONSUMER, consumes),
            ),
            running: vec![CONSUMER.to_owned()],
            ..Settings::default()
        };
        let TestJournal {
            journal,
            inputs,
            tables,
        } = TestJournal::open(backend, test, &TASKS, settings).await;
        Self {
            journal,
            tables,
            inputs,
        }
    }

    /// Records [`completion`].
    async fn complete(&self, task: &str, tx: &Transaction, settlement: Settlement, children: u32) {
        let completion = completion(task, tx, settlement, children);
        self.journal.complete(completion).await.unwrap();
    }

    /// The batches the consumer received: exactly `n` (waiting up to 10 s for them, then
    /// checking that nothing more comes once everything is handed over), in their group's
    /// order.
    async fn batches(&self, n: usize) -> Vec<Transaction> {
        self.batches_of(CONSUMER, n).await
    }

    /// The batches `consumer` received, as [`Fan::batches`].
    async fn batches_of(&self, consumer: &str, n: usize) -> Vec<Transaction> {
        let input = &self.inputs[consumer];
        let mut got = Vec::new();
        let started = Instant::now();
        while got.len() < n && started.elapsed() < Duration::from_secs(10) {
            let fetched = input.fetch(100).await.unwrap();
            if fetched.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            got.extend(fetched.iter().map(|d| d.transaction().clone()));
        }
        assert_eq!(got.len(), n, "batches delivered in 10 s");
        self.tables.handed_over().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let more = input.fetch(100).await.unwrap();
        assert!(more.is_empty(), "{} batches more than {n}", more.len());
        got.sort_by_key(|tx| tx.batch().unwrap().seq);
        got
    }

    /// The rows of `table` that match `condition` ([`Tables::count`]).
    async fn count(&self, table: &str, condition: &str) -> i64 {
        self.tables.count(table, condition).await
    }

    /// The stored counters of the consumer's group of `parent`: arrived, unbatched,
    /// expected, closed, next batch.
    async fn group(&self, parent: &str) -> (i64, i64, Option<i64>, bool, i64) {
        self.group_of(CONSUMER, parent).await
    }

    /// The stored counters of `consumer`'s group of `parent`, as [`Fan::group`].
    async fn group_of(&self, consumer: &str, parent: &str) -> (i64, i64, Option<i64>, bool, i64) {
        const GROUP: &str = "SELECT arrived, unbatched, expected, closed, next_seq
             FROM {schema}ergon_fanin_group WHERE consumer = $1 AND tag = $2 AND group_key = $3";
        match &self.tables {
            Tables::Sqlite { path, .. } => {
                let sql = GROUP.replace("{schema}", "").replace('$', "?");
                backends::read(path)
                    .query_row(&sql, [consumer, TAG, parent], |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                        ))
                    })
                    .unwrap()
            }
            #[cfg(feature = "postgres")]
            Tables::Postgres { admin, schema } => {
                let sql = GROUP.replace("{schema}", &format!("{schema}."));
                let row = admin
                    .query_one(&sql, &[&consumer, &TAG, &parent])
                    .await
                    .unwrap();
                (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
            }
        }
    }
}

/// `tx` ended in `task` with `settlement`, confirming `children` outbound transactions,
/// with the output `{"id": ID}`.
fn completion(task: &str, tx: &Transaction, settlement: Settlement, children: u32) -> Completion {
    Completion {
        task: task.into(),
        transaction: tx.clone(),
        settlement,
        attempts: 1,
        children,
        output: Some(json!({ "id": tx.id() }).to_string()),
        started_at_ms: now_ms(),
        finished_at_ms: now_ms(),
    }
}

/// Child `k` of `parent`, tagged as `produces` tags it.
fn child(parent: &Transaction, k: usize) -> Transaction {
    parent
        .child(
            format!("{}/{k}", parent.id()),
            json!({ "k": k }).to_string(),
        )
        .tag(TAG)
        .build()
}

/// A failure of `work`.
fn failed() -> Settlement {
    let failure =
        ergon_core::journal::failure(WORKER, "process", Category::Business, "no".into(), 1);
    Settlement::DeadLetter(failure)
}

/// What a batch says of itself: (seq, size, reason, last).
fn shape(batch: &Transaction) -> (u64, u64, CutReason, bool) {
    let Batch {
        seq,
        size,
        reason,
        last,
        ..
    } = batch.batch().expect("a batch transaction");
    (seq, size, reason, last)
}

/// The ids of the results a batch holds, and their statuses.
fn results(batch: &Transaction) -> Vec<(String, String)> {
    batch
        .consumed_results()
        .unwrap()
        .into_iter()
        .map(|result| (result.id, result.status))
        .collect()
}

async fn a_producer_of_25_children_gives_batches_of_10_10_and_5(backend: Backend) {
    let fan = Fan::open(backend, "fanin_full", consumes(10)).await;
    let producer = Transaction::new("p-full", "{}");
    fan.complete(PRODUCER, &producer, Settlement::Ack, 25).await;
    // The children complete concurrently: a commit may take several of them.
    let mut completing = tokio::task::JoinSet::new();
    for k in 0..25 {
        let journal = fan.journal.clone();
        let completion = completion(WORKER, &child(&producer, k), Settlement::Ack, 0);
        completing.spawn(async move { journal.complete(completion).await.unwrap() });
    }
    completing.join_all().await;

    let batches = fan.batches(3).await;
    let shapes: Vec<_> = batches.iter().map(shape).collect();
    assert_eq!(
        shapes,
        [
            (0, 10, CutReason::Full, false),
            (1, 10, CutReason::Full, false),
            (2, 5, CutReason::Complete, true),
        ]
    );
    let mut delivered = Vec::new();
    for (seq, batch) in batches.iter().enumerate() {
        assert_eq!(batch.id(), format!("p-full/{CONSUMER}/batch/{TAG}/{seq}"));
        assert_eq!(batch.parent_id(), Some("p-full"));
        assert_eq!(batch.root_id(), "p-full");
        let info = batch.batch().unwrap();
        assert_eq!((info.tag.as_str(), info.group.as_str()), (TAG, "p-full"));
        let results = batch.consumed_results().unwrap();
        assert_eq!(results.len() as u64, info.size);
        for result in results {
            assert_eq!(
                (result.task.as_str(), result.status.as_str()),
                (WORKER, "succeeded")
            );
            assert_eq!(result.output.unwrap()["id"], result.id.as_str());
            delivered.push(result.id);
        }
    }
    delivered.sort();
    let mut expected: Vec<String> = (0..25).map(|k| format!("p-full/{k}")).collect();
    expected.sort();
    assert_eq!(delivered, expected, "every child once");

    assert_eq!(fan.group("p-full").await, (25, 0, Some(25), true, 3));
    assert_eq!(
        fan.count(
            "ergon_fanin_batch",
            "first_position = 0 AND end_position = 10 OR first_position = 10 AND end_position = 20 \
             OR first_position = 20 AND end_position = 25"
        )
        .await,
        3,
        "each batch took the next range of positions"
    );
    let edges = fan
        .count(
            "ergon_node",
            &format!("task = '{CONSUMER}' AND edge = 'batch'"),
        )
        .await;
    assert_eq!(edges, 3, "each batch is a node reached by a `batch` edge");
    let metrics = fan.journal.metrics();
    assert_eq!(metrics.batches(CutReason::Full), 2);
    assert_eq!(metrics.batches(CutReason::Complete), 1);
    assert_eq!(metrics.batches(CutReason::Timeout), 0);
}

async fn a_duplicate_completion_adds_nothing(backend: Backend) {
    let fan = Fan::open(backend, "fanin_duplicate", consumes(2)).await;
    let producer = Transaction::new("p-dup", "{}");
    let (first, second) = (child(&producer, 0), child(&producer, 1));
    for _ in 0..3 {
        fan.complete(WORKER, &first, Settlement::Ack, 0).await;
    }
    assert_eq!(fan.count("ergon_fanin_item", "true").await, 1);
    assert_eq!(fan.group("p-dup").await, (1, 1, None, false, 0));
    for _ in 0..2 {
        fan.complete(PRODUCER, &producer, Settlement::Ack, 2).await;
    }
    assert_eq!(fan.group("p-dup").await, (1, 1, Some(2), false, 0));

    // The second child fills the batch, and completes the group: a full batch that is its
    // last.
    fan.complete(WORKER, &second, Settlement::Ack, 0).await;
    fan.complete(WORKER, &second, Settlement::Ack, 0).await;
    fan.complete(WORKER, &first, Settlement::Ack, 0).await;
    let batches = fan.batches(1).await;
    assert_eq!(shape(&batches[0]), (0, 2, CutReason::Full, true));
    assert_eq!(
        results(&batches[0]),
        [
            ("p-dup/0".to_owned(), "succeeded".to_owned()),
            ("p-dup/1".to_owned(), "succeeded".to_owned()),
        ]
    );
    assert_eq!(fan.count("ergon_fanin_item", "true").await, 2);
    assert_eq!(fan.group("p-dup").await, (2, 0, Some(2), true, 1));
}

async fn a_timeout_cuts_a_partial_batch(backend: Backend) {
    let timeout = Duration::from_millis(200);
    let fan = Fan::open(
        backend,
        "fanin_timeout",
        Consumes {
            timeout: Some(timeout),
            ..consumes(10)
        },
    )
    .await;
    let producer = Transaction::new("p-time", "{}");
    let started = Instant::now();
    for k in 0..3 {
        fan.complete(WORKER, &child(&producer, k), Settlement::Ack, 0)
            .await;
    }
    // The open group is owed to the consumer until its timeout cuts it.
    assert!(fan.journal.owes().await.unwrap());
    let batches = fan.batches(1).await;
    assert!(
        started.elapsed() >= timeout,
        "cut after {:?}",
        started.elapsed()
    );
    assert_eq!(shape(&batches[0]), (0, 3, CutReason::Timeout, false));
    let ids: Vec<String> = results(&batches[0]).into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids,
        ["p-time/0", "p-time/1", "p-time/2"],
        "in the order they arrived"
    );
    assert_eq!(fan.group("p-time").await, (3, 0, None, false, 1));
    // Once the batch is done, nothing is owed.
    fan.complete(CONSUMER, &batches[0], Settlement::Ack, 0)
        .await;
    assert!(!fan.journal.owes().await.unwrap());

    // A later result waits its own timeout.
    fan.complete(WORKER, &child(&producer, 3), Settlement::Ack, 0)
        .await;
    let batches = fan.batches(1).await;
    assert_eq!(shape(&batches[0]), (1, 1, CutReason::Timeout, false));
    assert_eq!(fan.journal.metrics().batches(CutReason::Timeout), 2);
}

async fn failures_left_out_still_count_towards_completeness(backend: Backend) {
    let fan = Fan::open(
        backend,
        "fanin_failures",
        Consumes {
            include_failed: false,
            ..consumes(10)
        },
    )
    .await;
    let producer = Transaction::new("p-fail", "{}");
    fan.complete(PRODUCER, &producer, Settlement::Ack, 4).await;
    fan.complete(WORKER, &child(&producer, 0), failed(), 0)
        .await;
    fan.complete(WORKER, &child(&producer, 1), Settlement::Ack, 0)
        .await;
    fan.complete(WORKER, &child(&producer, 2), failed(), 0)
        .await;
    fan.complete(WORKER, &child(&producer, 3), Settlement::Ack, 0)
        .await;
    let batches = fan.batches(1).await;
    assert_eq!(shape(&batches[0]), (0, 2, CutReason::Complete, true));
    assert_eq!(
        results(&batches[0]),
        [
            ("p-fail/1".to_owned(), "succeeded".to_owned()),
            ("p-fail/3".to_owned(), "succeeded".to_owned()),
        ]
    );
    assert_eq!(fan.group("p-fail").await, (4, 0, Some(4), true, 1));
    assert_eq!(fan.count("ergon_fanin_item", "NOT included").await, 2);
}

async fn spawned_children_are_expected_and_cancelled_ones_delivered_as_cancelled(backend: Backend) {
    let fan = Fan::open(backend, "fanin_spawned", consumes(10)).await;
    let producer = Transaction::new("p-spawn", "{}");
    let children: Vec<Transaction> = (0..3).map(|k| child(&producer, k)).collect();
    let new = fan
        .journal
        .spawn(PRODUCER, WORKER, children.clone())
        .await
        .unwrap();
    assert_eq!(new, 3);
    fan.complete(WORKER, &children[0], Settlement::Ack, 0).await;
    // The other two never run: cancelled, they are results too.
    assert_eq!(fan.journal.cancel_children("p-spawn").await.unwrap(), 2);
    assert_eq!(fan.group("p-spawn").await, (3, 3, None, false, 0));
    // The producer confirmed no outbound transaction: its three spawned children are
    // what its group expects.
    fan.complete(PRODUCER, &producer, Settlement::Ack, 0).await;
    let batches = fan.batches(1).await;
    assert_eq!(shape(&batches[0]), (0, 3, CutReason::Complete, true));
    assert_eq!(
        results(&batches[0]),
        [
            ("p-spawn/0".to_owned(), "succeeded".to_owned()),
            ("p-spawn/1".to_owned(), "cancelled".to_owned()),
            ("p-spawn/2".to_owned(), "cancelled".to_owned()),
        ]
    );
    // A cancelled child delivered anyway is in already: it adds nothing.
    fan.complete(WORKER, &children[1], Settlement::Ack, 0).await;
    assert_eq!(fan.group("p-spawn").await, (3, 0, Some(3), true, 1));
    assert_eq!(fan.count("ergon_fanin_item", "true").await, 3);
    assert!(fan.batches(0).await.is_empty());
}

async fn a_fan_in_of_batch_results_expects_one_item_per_batch(backend: Backend) {
    let digest = Consumes {
        from: vec![CONSUMER.to_owned()],
        ..consumes(10)
    };
    let fan = Fan::with_routes(backend, "fanin_digest", consumes(10), |routes| {
        routes.consumes(DIGEST, digest)
    })
    .await;
    let producer = Transaction::new("p-digest", "{}");
    fan.complete(PRODUCER, &producer, Settlement::Ack, 25).await;
    for k in 0..20 {
        fan.complete(WORKER, &child(&producer, k), Settlement::Ack, 0)
            .await;
    }
    let full = fan.batches(2).await;
    // The consumer completes its first batches while the last results come in: a commit
    // may close the first group and bring the second its items at once.
    let mut completing = tokio::task::JoinSet::new();
    let ends = full
        .iter()
        .map(|batch| completion(CONSUMER, batch, Settlement::Ack, 0))
        .chain((20..25).map(|k| completion(WORKER, &child(&producer, k), Settlement::Ack, 0)));
    for completion in ends {
        let journal = fan.journal.clone();
        completing.spawn(async move { journal.complete(completion).await.unwrap() });
    }
    completing.join_all().await;
    let last = fan.batches(1).await;
    assert_eq!(shape(&last[0]), (2, 5, CutReason::Complete, true));
    assert_eq!(fan.group("p-digest").await, (25, 0, Some(25), true, 3));
    // The consumer's group closed at 3 batches: the digest expects 3, has 2.
    assert_eq!(
        fan.group_of(DIGEST, "p-digest").await,
        (2, 2, Some(3), false, 0)
    );
    assert!(fan.batches_of(DIGEST, 0).await.is_empty());

    fan.complete(CONSUMER, &last[0], Settlement::Ack, 0).await;
    let digested = fan.batches_of(DIGEST, 1).await;
    assert_eq!(shape(&digested[0]), (0, 3, CutReason::Complete, true));
    assert_eq!(
        digested[0].id(),
        format!("p-digest/{DIGEST}/batch/{TAG}/0"),
        "a child of the same parent"
    );
    let mut ids: Vec<String> = results(&digested[0])
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    let batch = |seq| format!("p-digest/{CONSUMER}/batch/{TAG}/{seq}");
    assert_eq!(ids, [batch(0), batch(1), batch(2)]);
    assert_eq!(
        fan.group_of(DIGEST, "p-digest").await,
        (3, 0, Some(3), true, 1)
    );
}

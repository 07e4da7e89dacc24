//! The engine with an SQLite journal: completions are journaled (lineage, status,
//! settlement, error) before they are settled; a transaction redelivered after its
//! completion was journaled is settled as recorded without running again; `record`
//! modes; a journal that cannot commit makes the engine requeue rather than settle; a
//! decided transaction gives its slot back while its completion is journaled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ergon_core::journal::{Completion, Journal};
use ergon_core::memory::MemoryConnector;
use ergon_core::runner::{ConsumeLoop, LoopEnd, StatsSnapshot, WorkerStats};
use ergon_core::{
    Connector, Consumer, ConsumerPolicy, Context, Delivery, SettleOutcome, Settlement, TaskError,
    Transaction,
};
use ergon_journal::{DurableJournal, Filter, Record, Settings, Status};

/// Fails `bad-*` transactions with a business error; counts runs per id.
#[derive(Default)]
struct Counting {
    runs: Mutex<HashMap<String, u32>>,
}

impl Consumer for Counting {
    type Output = ();

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
        *self
            .runs
            .lock()
            .unwrap()
            .entry(tx.id().to_owned())
            .or_default() += 1;
        if tx.id().starts_with("bad") {
            return Err(TaskError::business(format!("{} is malformed", tx.id())));
        }
        Ok(())
    }
}

/// A queue whose first settlement of each transaction is lost, as when the process dies
/// between the journal's commit and the transport's ack: the transport delivers it again.
#[derive(Default)]
struct LosesFirstAck {
    queue: MemoryConnector,
    lost: Mutex<Vec<String>>,
}

#[async_trait]
impl Connector for LosesFirstAck {
    async fn fetch(&self, max: usize) -> Result<Vec<Delivery>, TaskError> {
        self.queue.fetch(max).await
    }

    async fn settle(&self, d: &Delivery, s: &Settlement) -> Result<SettleOutcome, TaskError> {
        let first = {
            let mut lost = self.lost.lock().unwrap();
            let first = !lost.iter().any(|id| id == d.id());
            if first {
                lost.push(d.id().to_owned());
            }
            first
        };
        if first {
            self.queue.settle(d, &Settlement::Requeue).await?;
            return Ok(SettleOutcome::Stale);
        }
        self.queue.settle(d, s).await
    }
}

fn transactions() -> Vec<Transaction> {
    let root = Transaction::builder("order-1").tag("nightly").build();
    let child = root.child("order-1/line-1", "{}").build();
    vec![
        root,
        child,
        Transaction::new("plain-1", "{}"),
        Transaction::new("bad-1", "{}"),
    ]
}

async fn run(
    input: Arc<dyn Connector>,
    journal: Arc<dyn Journal>,
    task: &Arc<Counting>,
) -> StatsSnapshot {
    let stats = Arc::new(WorkerStats::default());
    let cx = Context::builder("orders")
        .input(input)
        .journal(journal)
        .build();
    let mut policy = ConsumerPolicy::default();
    policy.fetch.empty.backoff = Duration::from_millis(1);
    let end = ConsumeLoop::consumer(task.clone(), cx, Arc::new(policy))
        .stats(stats.clone())
        .run()
        .await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    stats.snapshot()
}

fn open(dir: &tempfile::TempDir, record: Record) -> Arc<DurableJournal> {
    let path = dir.path().join("journal.db");
    let settings = Settings {
        record,
        ..Settings::default()
    };
    Arc::new(DurableJournal::sqlite(&path, settings).unwrap())
}

#[tokio::test]
async fn completions_are_journaled_with_lineage_status_and_error() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir, Record::All);
    let input = Arc::new(MemoryConnector::default());
    input.extend(transactions());
    let task = Arc::new(Counting::default());
    let stats = run(input.clone(), journal.clone(), &task).await;
    assert_eq!((stats.succeeded, stats.dead_lettered), (3, 1));

    let reader = journal.reader();
    let child = &reader.get("order-1/line-1").await.unwrap()[0];
    assert_eq!(child.task, "orders");
    assert_eq!(child.parent_id.as_deref(), Some("order-1"));
    assert_eq!(child.root_id, "order-1");
    assert_eq!(child.tags, ["nightly"]);
    assert_eq!(
        (child.status, child.settlement.as_str()),
        (Status::Succeeded, "ack")
    );
    assert_eq!((child.attempts, child.deliveries), (1, 1));
    assert!(child.error.is_none());
    assert!(child.started_at_ms <= child.finished_at_ms);

    let bad = &reader.get("bad-1").await.unwrap()[0];
    assert_eq!(
        (bad.status, bad.settlement.as_str()),
        (Status::Failed, "dead_letter")
    );
    let error = bad.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_str(), error.category.as_str()),
        ("process", "business")
    );
    assert_eq!(error.message, "bad-1 is malformed");

    let lineage = reader
        .list(&Filter {
            root: Some("order-1".into()),
            limit: 10,
            ..Filter::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = lineage.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.contains(&"order-1") && ids.contains(&"order-1/line-1"),
        "{ids:?}"
    );
    let children = reader
        .list(&Filter {
            parent: Some("order-1".into()),
            limit: 10,
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(children.len(), 1);
    let failed = reader
        .list(&Filter {
            status: Some(Status::Failed),
            limit: 10,
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, "bad-1");
}

#[tokio::test]
async fn a_redelivery_after_the_journal_commit_is_settled_as_recorded_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir, Record::All);
    let input = Arc::new(LosesFirstAck::default());
    input.queue.extend(transactions());
    let task = Arc::new(Counting::default());
    let stats = run(input.clone(), journal.clone(), &task).await;

    let runs = task.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 4);
    assert!(
        runs.values().all(|&n| n == 1),
        "user code ran once per transaction: {runs:?}"
    );
    assert_eq!(
        input.lost.lock().unwrap().len(),
        4,
        "every first ack was lost"
    );
    assert!(input.queue.is_empty());
    let letters = input.queue.dead_letters();
    assert_eq!(
        letters.len(),
        1,
        "the failure settled as recorded on its redelivery"
    );
    assert_eq!(letters[0].0.id(), "bad-1");
    assert_eq!(letters[0].1.message, "bad-1 is malformed");
    assert_eq!(letters[0].1.step, "process");
    assert_eq!(stats.processed, 8, "each delivered twice: {stats:?}");
    let bad = &journal.reader().get("bad-1").await.unwrap()[0];
    assert_eq!(bad.deliveries, 1, "the first record stands");
}

#[tokio::test]
async fn record_workflow_keeps_lineage_and_failures_only() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir, Record::Workflow);
    let input = Arc::new(MemoryConnector::default());
    input.extend(transactions());
    run(input, journal.clone(), &Arc::new(Counting::default())).await;
    let reader = journal.reader();
    let all = reader
        .list(&Filter {
            limit: 100,
            ..Filter::default()
        })
        .await
        .unwrap();
    let mut ids: Vec<_> = all.iter().map(|n| n.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["bad-1", "order-1", "order-1/line-1"],
        "plain-1 has no lineage"
    );
    assert_eq!(reader.purge_before(i64::MAX).await.unwrap(), 3);
    assert!(reader.get("order-1").await.unwrap().is_empty());
}

/// A journal whose commits always fail (a full disk, a database gone).
struct Broken;

#[async_trait]
impl Journal for Broken {
    async fn recorded(&self, _: &str, _: &str) -> Result<Option<Settlement>, TaskError> {
        Ok(None)
    }

    async fn complete(&self, _: Completion) -> Result<(), TaskError> {
        Err(TaskError::system("disk full").non_retryable())
    }
}

#[tokio::test]
async fn a_completion_that_cannot_be_journaled_is_requeued_not_settled() {
    let input = Arc::new(MemoryConnector::default());
    input.extend([Transaction::new("a-1", "{}")]);
    let task = Arc::new(Counting::default());
    let stats = Arc::new(WorkerStats::default());
    let cx = Context::builder("orders")
        .input(input.clone())
        .journal(Arc::new(Broken))
        .build();
    let mut policy = ConsumerPolicy::default();
    policy.r#loop.limit = Some(3);
    ConsumeLoop::consumer(task.clone(), cx, Arc::new(policy))
        .stats(stats.clone())
        .run()
        .await
        .unwrap();
    let stats = stats.snapshot();
    assert_eq!(
        (stats.processed, stats.succeeded, stats.requeued),
        (3, 0, 3),
        "{stats:?}"
    );
    assert_eq!(
        input.len(),
        1,
        "still queued, delivered {} times",
        task.runs.lock().unwrap()["a-1"]
    );
}

/// A journal whose commits wait until it is opened: completions pile up undecided.
struct Held {
    open: tokio::sync::watch::Sender<bool>,
    committed: Mutex<Vec<String>>,
}

#[async_trait]
impl Journal for Held {
    async fn recorded(&self, _: &str, _: &str) -> Result<Option<Settlement>, TaskError> {
        Ok(None)
    }

    async fn complete(&self, completion: Completion) -> Result<(), TaskError> {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        let id = completion.transaction.id().to_owned();
        self.committed.lock().unwrap().push(id);
        Ok(())
    }
}

/// Counts the transactions it runs and the most that ran at once.
#[derive(Default)]
struct Overlap {
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    ran: std::sync::atomic::AtomicUsize,
}

impl Consumer for Overlap {
    type Output = ();

    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.running.fetch_sub(1, SeqCst);
        self.ran.fetch_add(1, SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_decided_transaction_gives_its_slot_back_while_its_completion_is_journaled() {
    use std::sync::atomic::Ordering::SeqCst;
    let ids: Vec<_> = (0..10)
        .map(|i| Transaction::new(format!("t-{i}"), "{}"))
        .collect();
    let input = Arc::new(MemoryConnector::with(ids));
    let journal = Arc::new(Held {
        open: tokio::sync::watch::channel(false).0,
        committed: Mutex::default(),
    });
    let task = Arc::new(Overlap::default());
    let cx = Context::builder("orders")
        .input(input.clone())
        .journal(journal.clone())
        .build();
    let mut policy = ConsumerPolicy::default();
    policy.r#loop.concurrency = 2;
    policy.fetch.batch_size = 16;
    let running = tokio::spawn(ConsumeLoop::consumer(task.clone(), cx, Arc::new(policy)).run());

    // Every transaction runs, two at a time, while no completion is committed yet.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while task.ran.load(SeqCst) < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} ran",
            task.ran.load(SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        task.most.load(SeqCst),
        2,
        "the concurrency still bounds the task"
    );
    assert!(journal.committed.lock().unwrap().is_empty());
    assert_eq!(
        input.acked(),
        0,
        "nothing is settled before its completion is journaled"
    );

    journal.open.send_replace(true);
    assert_eq!(running.await.unwrap().unwrap(), LoopEnd::Exhausted);
    let mut committed = journal.committed.lock().unwrap().clone();
    committed.sort_unstable();
    let mut expected: Vec<_> = (0..10).map(|i| format!("t-{i}")).collect();
    expected.sort_unstable();
    assert_eq!(committed, expected);
    assert_eq!(input.acked(), 10);
}

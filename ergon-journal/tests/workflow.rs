//! Spawn, parked waits, in-step waits, continuations and cancellation on the SQLite
//! journal, with real local queues in the journal's file and the real consume loop:
//! each wait fires exactly once, with what its members became; degenerate shapes first
//! (every child done before the wait, zero children, duplicate completions, a timeout
//! racing the last completion, a deadline that passes while nothing runs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ergon_connectors::local::{LocalConfig, LocalConnector};
use ergon_core::journal::{Completion, Counts, Journal, Member, Quorum, WaitOutcome, now_ms};
use ergon_core::runner::{ConsumeLoop, StatsSnapshot, WorkerStats};
use ergon_core::{
    Connector, Consumer, ConsumerPolicy, Context, Settlement, TaskError, Transaction,
};
use ergon_journal::{OnComplete, Record, Routes, Settings, SqliteJournal, When};
use serde_json::{Value, json};

/// A journal in `queue.db` whose tasks read the queues of the same name.
struct Flow {
    dir: tempfile::TempDir,
    journal: Arc<SqliteJournal>,
}

const TASKS: [&str; 5] = ["split", "item", "fan_in", "audit", "late"];

impl Flow {
    fn new() -> Self {
        Self::with_routes(|routes| routes)
    }

    fn with_routes(more: impl FnOnce(Routes) -> Routes) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(open(&dir, more));
        Self { dir, journal }
    }

    async fn queue(&self, name: &str) -> Arc<LocalConnector> {
        let path = self.dir.path().join("queue.db");
        let config = LocalConfig {
            ack_interval: Duration::from_millis(1),
            ..LocalConfig::default()
        };
        Arc::new(
            LocalConnector::open(path, name.to_owned(), &config)
                .await
                .unwrap(),
        )
    }

    /// Runs `task` over its queue until the queue is drained.
    async fn run<T: Consumer>(&self, name: &str, task: T) -> StatsSnapshot {
        let input = self.queue(name).await;
        let stats = Arc::new(WorkerStats::default());
        let cx = Context::builder(name)
            .input(input.clone())
            .journal(self.journal.clone())
            .build();
        let mut policy = ConsumerPolicy::default();
        policy.fetch.empty.backoff = Duration::from_millis(5);
        ConsumeLoop::consumer(Arc::new(task), cx, Arc::new(policy))
            .stats(stats.clone())
            .run()
            .await
            .unwrap();
        input.close().await.unwrap();
        stats.snapshot()
    }

    async fn enqueue(&self, queue: &str, ids: &[&str]) {
        let txs: Vec<Transaction> = ids.iter().map(|id| Transaction::new(*id, "{}")).collect();
        let queue = self.queue(queue).await;
        queue.dispatch(&txs).await.unwrap();
        queue.close().await.unwrap();
    }

    /// What a [`Collect`] run over `queue` receives: (id, payload).
    async fn collect(&self, queue: &str) -> Vec<(String, Value)> {
        let got = Arc::new(Mutex::default());
        self.run(queue, Collect(got.clone())).await;
        std::mem::take(&mut *got.lock().unwrap())
    }
}

fn open(dir: &tempfile::TempDir, more: impl FnOnce(Routes) -> Routes) -> SqliteJournal {
    let routes = TASKS
        .iter()
        .fold(Routes::new(), |r, task| r.queue(*task, *task));
    let settings = Settings {
        record: Record::All,
        routes: more(routes),
        ..Settings::default()
    };
    SqliteJournal::open(&dir.path().join("queue.db"), settings).unwrap()
}

/// Spawns `{"children": n}` (default 5) items `ID/0…`, parks `fan_in` on all of them.
struct Split {
    timeout: Option<Duration>,
}

impl Consumer for Split {
    type Output = ();

    async fn process_transaction(&self, cx: &Context, tx: &Transaction) -> Result<(), TaskError> {
        let n = tx.json::<Value>()?["children"].as_u64().unwrap_or(5);
        let children = (0..n).map(|k| {
            tx.child(format!("{}/{k}", tx.id()), json!({"k": k}).to_string())
                .build()
        });
        let members = cx.spawn_all("item", children.collect()).await?;
        let park = cx.when_all(tx, members);
        match self.timeout {
            Some(timeout) => park.timeout(timeout).then("fan_in").await,
            None => park.then("fan_in").await,
        }
    }
}

/// Doubles `k`; fails k = 3 when `fail_three`.
struct Item {
    fail_three: bool,
}

impl Consumer for Item {
    type Output = u64;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<u64, TaskError> {
        let k = tx.json::<Value>()?["k"].as_u64().unwrap_or(0);
        if self.fail_three && k == 3 {
            return Err(TaskError::business("three is unlucky"));
        }
        Ok(k * 2)
    }

    fn journal_output(&self, doubled: &u64) -> Option<Value> {
        Some(json!({ "doubled": doubled }))
    }
}

/// Records every transaction it gets.
struct Collect(Arc<Mutex<Vec<(String, Value)>>>);

impl Consumer for Collect {
    type Output = ();

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
        let payload = tx.json::<Value>().unwrap_or(Value::Null);
        self.0.lock().unwrap().push((tx.id().to_owned(), payload));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fan_out_fires_its_fan_in_once_with_every_output_and_a_rerun_spawns_nothing() {
    let flow = Flow::new();
    flow.enqueue("split", &["p-1"]).await;
    flow.run("split", Split { timeout: None }).await;
    let items = flow.run("item", Item { fail_three: true }).await;
    assert_eq!((items.succeeded, items.dead_lettered), (4, 1));

    let got = flow.collect("fan_in").await;
    assert_eq!(got.len(), 1, "{got:?}");
    let (id, payload) = &got[0];
    assert_eq!(id, "p-1/split/then/fan_in");
    assert_eq!(payload["previous_task_id"], "p-1");
    assert_eq!(payload["outcome"], "satisfied");
    let members = payload["members"].as_array().unwrap();
    assert_eq!(members.len(), 5);
    assert_eq!(
        members[2],
        json!({"task": "item", "id": "p-1/2", "status": "succeeded", "output": {"doubled": 4}})
    );
    assert_eq!(members[3]["status"], "failed");
    assert_eq!(members[3]["error"], "three is unlucky");

    // The parent runs again (a redelivery the journal did not see): nothing twice.
    flow.enqueue("split", &["p-1"]).await;
    flow.run("split", Split { timeout: None }).await;
    assert_eq!(
        flow.run("item", Item { fail_three: false }).await.processed,
        0
    );
    assert!(flow.collect("fan_in").await.is_empty());

    let metrics = flow.journal.metrics();
    assert_eq!(
        metrics.spawned(),
        [(("split".into(), "item".into()), 5)],
        "new ones only"
    );
    assert_eq!(metrics.decided(WaitOutcome::Satisfied), 1);
    let reader = flow.journal.reader();
    let child = &reader.get("p-1/4").unwrap()[0];
    assert_eq!(
        (child.parent_id.as_deref(), child.root_id.as_str()),
        (Some("p-1"), "p-1")
    );
    assert_eq!(child.output, Some(json!({"doubled": 8})));
    let continuation = &reader.get("p-1/split/then/fan_in").unwrap()[0];
    assert_eq!(continuation.status.as_str(), "succeeded");
    assert_eq!(continuation.parent_id.as_deref(), Some("p-1"));
}

/// Parks `fan_in` on members named in its payload (`{"members": [[task, id]…]}`),
/// with an optional quorum and status filter.
struct Late {
    quorum: Quorum,
    counts: Counts,
}

impl Consumer for Late {
    type Output = ();

    async fn process_transaction(&self, cx: &Context, tx: &Transaction) -> Result<(), TaskError> {
        let members: Vec<Member> = tx.json::<Value>()?["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Member::new(m[0].as_str().unwrap(), m[1].as_str().unwrap()))
            .collect();
        let park = match self.quorum {
            Quorum::All => cx.when_all(tx, members),
            Quorum::Any => cx.when_any(tx, members),
            Quorum::AtLeast(n) => cx.when_at_least(n, tx, members),
        };
        park.counting(self.counts).then("fan_in").await
    }
}

async fn park_late(
    flow: &Flow,
    id: &str,
    members: &[(&str, &str)],
    quorum: Quorum,
    counts: Counts,
) {
    let payload = json!({ "members": members });
    let queue = flow.queue("late").await;
    queue
        .dispatch(&[Transaction::new(id, payload.to_string())])
        .await
        .unwrap();
    queue.close().await.unwrap();
    flow.run("late", Late { quorum, counts }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn degenerate_waits_children_done_before_the_wait_and_zero_children() {
    let flow = Flow::new();
    // Children done before anyone waits for them: the wait fires as it is registered.
    let parent = Transaction::new("p-9", "{}");
    let children = (0..3).map(|k| {
        parent
            .child(format!("p-9/{k}"), json!({"k": k}).to_string())
            .build()
    });
    flow.journal
        .spawn("split", "item", children.collect())
        .await
        .unwrap();
    flow.run("item", Item { fail_three: false }).await;
    let members = [("item", "p-9/0"), ("item", "p-9/1"), ("item", "p-9/2")];
    park_late(&flow, "w-done", &members, Quorum::All, Counts::Terminal).await;
    // Zero members: decided at once.
    park_late(&flow, "w-empty", &[], Quorum::All, Counts::Terminal).await;

    let got = flow.collect("fan_in").await;
    assert_eq!(got.len(), 2, "{got:?}");
    let done = got
        .iter()
        .find(|(id, _)| id == "w-done/late/then/fan_in")
        .unwrap();
    assert_eq!(done.1["outcome"], "satisfied");
    assert_eq!(done.1["members"][1]["output"], json!({"doubled": 2}));
    let empty = got
        .iter()
        .find(|(id, _)| id == "w-empty/late/then/fan_in")
        .unwrap();
    assert_eq!(empty.1["members"], json!([]));
}

fn completion(task: &str, tx: &Transaction, settlement: Settlement) -> Completion {
    Completion {
        task: task.into(),
        transaction: tx.clone(),
        settlement,
        attempts: 1,
        children: 0,
        output: None,
        started_at_ms: now_ms(),
        finished_at_ms: now_ms(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_completions_flip_a_member_once_and_a_status_filter_can_give_up() {
    let flow = Flow::new();
    let (a, b) = (Transaction::new("a", "{}"), Transaction::new("b", "{}"));
    park_late(
        &flow,
        "w-two",
        &[("item", "a"), ("item", "b")],
        Quorum::AtLeast(2),
        Counts::Terminal,
    )
    .await;
    // `a` completes three times: still one of two.
    for _ in 0..3 {
        flow.journal
            .complete(completion("item", &a, Settlement::Ack))
            .await
            .unwrap();
    }
    assert!(
        flow.collect("fan_in").await.is_empty(),
        "a duplicate must not count twice"
    );
    flow.journal
        .complete(completion("item", &b, Settlement::Ack))
        .await
        .unwrap();
    let got = flow.collect("fan_in").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["outcome"], "satisfied");

    // Waiting for all to succeed: one failure decides it as unsatisfiable at once.
    let (c, d) = (Transaction::new("c", "{}"), Transaction::new("d", "{}"));
    park_late(
        &flow,
        "w-ok",
        &[("item", "c"), ("item", "d")],
        Quorum::All,
        Counts::Succeeded,
    )
    .await;
    let failure = ergon_core::journal::failure(
        "item",
        "process",
        ergon_core::Category::Business,
        "no".into(),
        1,
    );
    flow.journal
        .complete(completion("item", &c, Settlement::DeadLetter(failure)))
        .await
        .unwrap();
    let got = flow.collect("fan_in").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["outcome"], "unsatisfiable");
    assert_eq!(got[0].1["members"][1]["status"], "pending");
    flow.journal
        .complete(completion("item", &d, Settlement::Ack))
        .await
        .unwrap();
    assert!(flow.collect("fan_in").await.is_empty(), "fired once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_fires_once_with_what_completed_even_racing_the_last_completion() {
    let flow = Flow::new();
    let p = Transaction::new("p-t", r#"{"children": 2}"#);
    flow.queue("split").await.dispatch(&[p]).await.unwrap();
    flow.run(
        "split",
        Split {
            timeout: Some(Duration::from_millis(300)),
        },
    )
    .await;
    // One child completes before the deadline, the other never runs.
    let first = Transaction::new("p-t", "{}").child("p-t/0", "{}").build();
    flow.journal
        .complete(completion("item", &first, Settlement::Ack))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = flow.collect("fan_in").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1["outcome"], "timed_out");
    let statuses: Vec<&str> = got[0].1["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "pending"]);
    // The late child completes after the timeout: nothing fires again.
    let second = Transaction::new("p-t", "{}").child("p-t/1", "{}").build();
    flow.journal
        .complete(completion("item", &second, Settlement::Ack))
        .await
        .unwrap();
    assert!(flow.collect("fan_in").await.is_empty());

    // Racing: the last member completes right at the deadline, many times over; whichever
    // comes first decides, once.
    for round in 0..20 {
        let id = format!("r-{round}");
        let member = format!("{id}/m");
        let park = ergon_core::journal::Park {
            owner_task: "late".into(),
            owner: Transaction::new(id.clone(), "{}"),
            key: id.clone(),
            members: vec![Member::new("item", member.clone())],
            quorum: Quorum::All,
            counts: Counts::Terminal,
            deadline_ms: Some(now_ms() + 20),
            then: "fan_in".into(),
        };
        flow.journal.park(park).await.unwrap();
        tokio::time::sleep(Duration::from_millis(19 + round % 3)).await;
        let tx = Transaction::new(id.clone(), "{}")
            .child(member, "{}")
            .build();
        flow.journal
            .complete(completion("item", &tx, Settlement::Ack))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = flow.collect("fan_in").await;
    assert_eq!(
        got.len(),
        20,
        "each raced wait fired exactly once: {}",
        got.len()
    );
    let metrics = flow.journal.metrics();
    let decided = metrics.decided(WaitOutcome::Satisfied) + metrics.decided(WaitOutcome::TimedOut);
    assert_eq!(decided, 21);
    assert!(metrics.decided(WaitOutcome::TimedOut) >= 1);
    assert_eq!(metrics.wait_duration().count(), 21);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_that_passes_while_nothing_runs_fires_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = open(&dir, |r| r);
        let park = ergon_core::journal::Park {
            owner_task: "late".into(),
            owner: Transaction::new("w-down", "{}"),
            key: "w-down".into(),
            members: vec![Member::new("item", "never")],
            quorum: Quorum::All,
            counts: Counts::Terminal,
            deadline_ms: Some(now_ms() + 200),
            then: "fan_in".into(),
        };
        journal.park(park).await.unwrap();
    }
    // The journal is closed: no timer of this process is left to fire it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flow = Flow {
        journal: Arc::new(open(&dir, |r| r)),
        dir,
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = flow.collect("fan_in").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["outcome"], "timed_out");
}

#[tokio::test(flavor = "multi_thread")]
async fn continuations_carry_the_output_or_the_error_and_cancelled_children_never_run() {
    let flow = Flow::with_routes(|routes| {
        routes.on_complete(
            "item",
            OnComplete {
                task: "audit".into(),
                when: When::Always,
            },
        )
    });
    let parent = Transaction::new("p-c", "{}");
    let children: Vec<Transaction> = (2..5)
        .map(|k| {
            parent
                .child(format!("p-c/{k}"), json!({"k": k}).to_string())
                .build()
        })
        .collect();
    assert_eq!(
        flow.journal
            .spawn("split", "item", children.clone())
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        flow.journal.spawn("split", "item", children).await.unwrap(),
        0,
        "spawned once"
    );
    flow.run("item", Item { fail_three: true }).await;
    let mut got = flow.collect("audit").await;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].0, "p-c/2/item/then/audit");
    assert_eq!(
        got[0].1,
        json!({"previous_task_id": "p-c/2", "previous_task": "item", "status": "succeeded", "previous_input": {"k": 2}, "previous_output": {"doubled": 4}, "error": null})
    );
    assert_eq!(got[1].1["status"], "failed");
    assert_eq!(
        got[1].1["error"],
        json!({"step": "process", "category": "business", "message": "three is unlucky"})
    );

    // Cancelled before they run: withdrawn from the queue, their wait decided.
    let parent = Transaction::new("p-x", "{}");
    let children: Vec<Transaction> = (0..4)
        .map(|k| parent.child(format!("p-x/{k}"), "{}").build())
        .collect();
    let cx = Context::builder("split")
        .journal(flow.journal.clone())
        .build();
    let members = cx.spawn_all("item", children).await.unwrap();
    cx.when_all(&parent, members).then("fan_in").await.unwrap();
    assert_eq!(cx.cancel_children(&parent).await.unwrap(), 4);
    assert_eq!(
        flow.run("item", Item { fail_three: false }).await.processed,
        0,
        "none ran"
    );
    let got = flow.collect("fan_in").await;
    assert_eq!(got.len(), 1);
    assert!(
        got[0].1["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["status"] == "cancelled")
    );
    assert_eq!(
        flow.journal.reader().get("p-x/1").unwrap()[0]
            .status
            .as_str(),
        "cancelled"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn in_step_waits_return_results_or_time_out_and_unknown_targets_are_refused() {
    let flow = Flow::new();
    let cx = Context::builder("split")
        .journal(flow.journal.clone())
        .build();
    let parent = Transaction::new("p-s", "{}");
    // The item worker runs beside the waiting step.
    let items = {
        let input = flow.queue("item").await;
        let stats = Arc::new(WorkerStats::default());
        let icx = Context::builder("item")
            .input(input)
            .journal(flow.journal.clone())
            .build();
        let mut policy = ConsumerPolicy::default();
        policy.r#loop.streaming = true;
        policy.fetch.empty.backoff = Duration::from_millis(5);
        policy.fetch.empty.backoff_cap = Duration::from_millis(10);
        let worker =
            ConsumeLoop::consumer(Arc::new(Item { fail_three: false }), icx, Arc::new(policy))
                .stats(stats);
        in_background(worker)
    };
    let child = parent.child("p-s/7", json!({"k": 7}).to_string()).build();
    let done = cx
        .spawn_and_wait("item", child.clone(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (done.status.as_str(), done.output.clone()),
        ("succeeded", Some(json!({"doubled": 14})))
    );
    // Again (the parent ran again after a crash): the journaled result, at once.
    let again = cx
        .spawn_and_wait("item", child, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(again, done);
    items.abort();

    // Nobody runs this one: the wait times out and says what it saw.
    let lonely = parent.child("p-s/8", "{}").build();
    let member = cx.spawn("item", lonely).await.unwrap();
    let waited = cx
        .wait_for_all(&[member], Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(waited.outcome, WaitOutcome::TimedOut);
    assert_eq!(
        flow.journal.metrics().waiting_in_steps(),
        0,
        "slots given back"
    );
    assert_eq!(waited.members[0].status, "pending");

    let err = cx
        .spawn("nowhere", parent.child("p-s/9", "{}").build())
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.to_string()
            .contains("task `nowhere` does not read a queue the journal can hand transactions to"),
        "{err}"
    );
    let no_journal = Context::builder("split").build();
    let err = no_journal
        .spawn("item", Transaction::new("z", "{}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a `[journal]`"), "{err}");
}

/// Runs a streaming loop in the background; abort the handle to stop it.
fn in_background<L: ergon_core::lifecycle::Lifecycle>(
    worker: ConsumeLoop<L>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = worker.run().await;
    })
}

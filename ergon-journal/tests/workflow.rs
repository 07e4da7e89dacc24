//! Spawn, parked waits, in-step waits, continuations and cancellation on both journals —
//! SQLite with real local queues in its file, PostgreSQL relaying to the same queues
//! through its outbox — and the real consume loop:
//! each wait fires exactly once, with what its members became; degenerate shapes first
//! (every child done before the wait, zero children, duplicate completions, a timeout
//! racing the last completion, a deadline that passes while nothing runs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ergon_connectors::local::{LocalConfig, LocalConnector, LocalKind};
use ergon_core::config::{ConfigEnv, ConnectorKind, MakeConnector};
use ergon_core::journal::{Completion, Counts, Journal, Member, Quorum, WaitOutcome, now_ms};
use ergon_core::runner::{ConsumeLoop, StatsSnapshot, WorkerStats};
use ergon_core::{
    Connector, Consumer, ConsumerPolicy, Context, Settlement, TaskError, Transaction,
};
use ergon_journal::{
    DurableJournal, JournalMetrics, JournalReader, OnComplete, Record, Routes, Settings, When,
};
use serde_json::{Value, json};

mod common;

/// The backends every test runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    /// The journal in the local queues' file: what it hands over enters the queue in its
    /// commit.
    Sqlite,
    /// The journal in PostgreSQL (a schema of its own per test), relaying what it hands
    /// over to the same local queues through its outbox.
    Postgres,
}

/// Runs each named test on both backends: `NAME::sqlite` and `NAME::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await;
            }
        }
    )*};
}

on_both_backends!(
    a_fan_out_fires_its_fan_in_once_with_every_output_and_a_rerun_spawns_nothing,
    degenerate_waits_children_done_before_the_wait_and_zero_children,
    duplicate_completions_flip_a_member_once_and_a_status_filter_can_give_up,
    a_timeout_fires_once_with_what_completed_even_racing_the_last_completion,
    a_deadline_that_passes_while_nothing_runs_fires_at_the_next_start,
    continuations_carry_the_output_or_the_error_and_cancelled_children_never_run,
    in_step_waits_return_results_or_time_out_and_unknown_targets_are_refused,
);

/// A journal whose tasks read local queues of their own name in `queue.db`.
struct Flow {
    backend: Backend,
    dir: tempfile::TempDir,
    schema: String,
    journal: Arc<dyn Journal>,
    reader: Arc<dyn JournalReader>,
    metrics: Arc<JournalMetrics>,
    /// PostgreSQL: a connection that sees the outbox.
    admin: Option<tokio_postgres::Client>,
}

const TASKS: [&str; 5] = ["split", "item", "fan_in", "audit", "late"];

impl Flow {
    async fn new(backend: Backend, test: &str) -> Self {
        Self::with_routes(backend, test, |routes| routes).await
    }

    /// A flow with fresh queues and, on PostgreSQL, a fresh schema named after `test`.
    async fn with_routes(
        backend: Backend,
        test: &str,
        more: impl FnOnce(Routes) -> Routes,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let schema = format!("{test}_{}", std::process::id());
        if let Backend::Postgres = backend {
            common::drop_schemas(&common::connect().await, test).await;
        }
        Self::open(backend, dir, schema, more).await
    }

    async fn open(
        backend: Backend,
        dir: tempfile::TempDir,
        schema: String,
        more: impl FnOnce(Routes) -> Routes,
    ) -> Self {
        let settings = |routes: Routes| Settings {
            record: Record::All,
            routes: more(routes),
            ..Settings::default()
        };
        let path = dir.path().join("queue.db");
        match backend {
            Backend::Sqlite => {
                let routes = TASKS.iter().fold(Routes::new(), |r, t| r.queue(*t, *t));
                let journal = Arc::new(DurableJournal::sqlite(&path, settings(routes)).unwrap());
                Self {
                    backend,
                    schema,
                    metrics: journal.metrics().clone(),
                    reader: journal.reader().clone(),
                    journal,
                    dir,
                    admin: None,
                }
            }
            Backend::Postgres => {
                let routes = TASKS.iter().fold(Routes::new(), |r, t| r.relay(*t));
                let relays = TASKS
                    .iter()
                    .map(|task| (task.to_string(), queue_maker(dir.path(), task)))
                    .collect();
                let journal = DurableJournal::postgres(
                    &common::postgres_url(),
                    &schema,
                    settings(routes),
                    relays,
                )
                .await
                .unwrap();
                let journal = Arc::new(journal);
                let admin = common::connect().await;
                Self {
                    backend,
                    metrics: journal.metrics().clone(),
                    reader: journal.reader().clone(),
                    journal,
                    schema,
                    dir,
                    admin: Some(admin),
                }
            }
        }
    }

    /// The same queues and journal, opened again after `down` with nothing running.
    async fn reopened_after(self, down: Duration) -> Self {
        let Flow {
            backend,
            dir,
            schema,
            journal,
            reader,
            ..
        } = self;
        drop((journal, reader));
        tokio::time::sleep(down).await;
        Self::open(backend, dir, schema, |routes| routes).await
    }

    async fn queue(&self, name: &str) -> Arc<LocalConnector> {
        open_queue(&self.dir.path().join("queue.db"), name).await
    }

    /// Waits until what the journal committed is in the queues: at once on SQLite (the
    /// same commit), once the relay has emptied the outbox on PostgreSQL.
    async fn handed_over(&self) {
        let Some(admin) = &self.admin else { return };
        let count = format!("SELECT count(*) FROM {}.ergon_outbox", self.schema);
        for _ in 0..1_000 {
            let left: i64 = admin.query_one(&count, &[]).await.unwrap().get(0);
            if left == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{:?}: the relay did not empty the outbox in 10 s",
            self.backend
        );
    }

    /// Runs `task` over its queue until the queue is drained.
    async fn run<T: Consumer>(&self, name: &str, task: T) -> StatsSnapshot {
        self.handed_over().await;
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

    /// Collects `queue` until at least `n` transactions arrived (deadlines fired by the
    /// journal's sweeper, whose timing a loaded machine stretches), or `within` passed.
    async fn collect_at_least(
        &self,
        queue: &str,
        n: usize,
        within: Duration,
    ) -> Vec<(String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        let mut got = Vec::new();
        loop {
            got.extend(self.collect(queue).await);
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn open_queue(path: &std::path::Path, name: &str) -> Arc<LocalConnector> {
    let config = LocalConfig {
        ack_interval: Duration::from_millis(1),
        ..LocalConfig::default()
    };
    Arc::new(
        LocalConnector::open(path.to_path_buf(), name.to_owned(), &config)
            .await
            .unwrap(),
    )
}

/// How the relay opens `task`'s queue: as the runner does, from its `[connectors]` table.
fn queue_maker(dir: &std::path::Path, task: &str) -> Arc<dyn MakeConnector> {
    let table = json!({ "path": "queue.db", "queue": task, "ack_interval": "1ms" });
    let env = ConfigEnv {
        name: task.to_owned(),
        base_dir: dir.to_path_buf(),
    };
    let maker = LocalKind.configure(table, &env).unwrap();
    assert!(maker.takes_dispatches());
    maker
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

async fn a_fan_out_fires_its_fan_in_once_with_every_output_and_a_rerun_spawns_nothing(
    backend: Backend,
) {
    let flow = Flow::new(backend, "wf_fan_out").await;
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

    let metrics = &flow.metrics;
    assert_eq!(
        metrics.spawned(),
        [(("split".into(), "item".into()), 5)],
        "new ones only"
    );
    assert_eq!(metrics.decided(WaitOutcome::Satisfied), 1);
    let reader = &flow.reader;
    let child = &reader.get("p-1/4").await.unwrap()[0];
    assert_eq!(
        (child.parent_id.as_deref(), child.root_id.as_str()),
        (Some("p-1"), "p-1")
    );
    assert_eq!(child.output, Some(json!({"doubled": 8})));
    let continuation = &reader.get("p-1/split/then/fan_in").await.unwrap()[0];
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

async fn degenerate_waits_children_done_before_the_wait_and_zero_children(backend: Backend) {
    let flow = Flow::new(backend, "wf_degenerate").await;
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

async fn duplicate_completions_flip_a_member_once_and_a_status_filter_can_give_up(
    backend: Backend,
) {
    let flow = Flow::new(backend, "wf_duplicates").await;
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

async fn a_timeout_fires_once_with_what_completed_even_racing_the_last_completion(
    backend: Backend,
) {
    let flow = Flow::new(backend, "wf_timeout").await;
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
    let got = flow
        .collect_at_least("fan_in", 1, Duration::from_secs(20))
        .await;
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
    let got = flow
        .collect_at_least("fan_in", 20, Duration::from_secs(20))
        .await;
    assert_eq!(
        got.len(),
        20,
        "each raced wait fired exactly once: {}",
        got.len()
    );
    let metrics = &flow.metrics;
    let decided = metrics.decided(WaitOutcome::Satisfied) + metrics.decided(WaitOutcome::TimedOut);
    assert_eq!(decided, 21);
    assert!(metrics.decided(WaitOutcome::TimedOut) >= 1);
    assert_eq!(metrics.wait_duration().count(), 21);
}

async fn a_deadline_that_passes_while_nothing_runs_fires_at_the_next_start(backend: Backend) {
    let flow = Flow::new(backend, "wf_deadline").await;
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
    flow.journal.park(park).await.unwrap();
    // The journal is closed: no timer of this process is left to fire it.
    let flow = flow.reopened_after(Duration::from_millis(500)).await;
    let got = flow
        .collect_at_least("fan_in", 1, Duration::from_secs(20))
        .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["outcome"], "timed_out");
}

async fn continuations_carry_the_output_or_the_error_and_cancelled_children_never_run(
    backend: Backend,
) {
    let flow = Flow::with_routes(backend, "wf_continuations", |routes| {
        routes.on_complete(
            "item",
            OnComplete {
                task: "audit".into(),
                when: When::Always,
            },
        )
    })
    .await;
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
    // Withdrawn (SQLite), or delivered and settled as cancelled without running
    // (PostgreSQL: some were relayed before the cancellation).
    assert_eq!(
        flow.run("item", Item { fail_three: false }).await.succeeded,
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
        flow.reader.get("p-x/1").await.unwrap()[0].status.as_str(),
        "cancelled"
    );
}

async fn in_step_waits_return_results_or_time_out_and_unknown_targets_are_refused(
    backend: Backend,
) {
    let flow = Flow::new(backend, "wf_in_step").await;
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
    assert_eq!(flow.metrics.waiting_in_steps(), 0, "slots given back");
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

/// PostgreSQL: the database drops every connection of the journal (a restart, a network
/// cut). A commit on a connection not yet known dead fails, retryable and naming the
/// journal — at most once per connection that was open (the writer's and the pool's) —
/// and the engine's retry succeeds on a new one; the listener listens again; in-step
/// waits still read and wake.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_lost_connections_fail_a_few_commits_and_the_journal_recovers() {
    let flow = Flow::new(Backend::Postgres, "wf_lost").await;
    let first = Transaction::new("l-1", "{}");
    flow.journal
        .complete(completion("item", &first, Settlement::Ack))
        .await
        .unwrap();
    let admin = flow.admin.as_ref().unwrap();
    let terminated: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = $1",
            &[&format!("ergon-journal {}", flow.schema)],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        terminated >= 2,
        "the writer's and the listener's: {terminated}"
    );

    // As the engine's settle policy would: try again until the journal answers.
    let second = Transaction::new("l-2", "{}");
    let mut failures = 0;
    while let Err(err) = flow
        .journal
        .complete(completion("item", &second, Settlement::Ack))
        .await
    {
        assert!(err.is_retryable(), "{err}");
        assert!(
            err.to_string().contains(&flow.schema),
            "names the journal: {err}"
        );
        failures += 1;
        assert!(failures < 20, "the journal never came back: {err}");
    }
    assert!(
        failures <= terminated,
        "at most one failure per connection that was open: {failures} of {terminated}"
    );
    let recorded = flow.journal.recorded("item", "l-2").await.unwrap();
    assert!(matches!(recorded, Some(Settlement::Ack)), "{recorded:?}");

    // The listener is back (other processes' commits wake this one again).
    let listening = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ergon-journal {}'
             AND query LIKE 'LISTEN%'",
        flow.schema
    );
    let mut listeners = 0;
    for _ in 0..100 {
        listeners = admin
            .query_one(&listening, &[])
            .await
            .unwrap()
            .get::<_, i64>(0);
        if listeners == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listeners, 1, "the listener connected again");

    // An in-step wait reads through the pool again and wakes on the completion.
    let member = Member::new("item", "l-3");
    let waiting = {
        let journal = flow.journal.clone();
        tokio::spawn(async move {
            journal
                .wait(
                    &[member],
                    Quorum::All,
                    Counts::Terminal,
                    Duration::from_secs(30),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = Transaction::new("l-3", "{}");
    flow.journal
        .complete(completion("item", &third, Settlement::Ack))
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken well before the 30 s timeout")
        .unwrap()
        .unwrap();
    assert_eq!(waited.outcome, WaitOutcome::Satisfied);
}

/// Runs a streaming loop in the background; abort the handle to stop it.
fn in_background<L: ergon_core::lifecycle::Lifecycle>(
    worker: ConsumeLoop<L>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = worker.run().await;
    })
}

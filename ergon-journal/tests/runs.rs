//! DAG runs on both journals, through their public API only: a run is started with
//! `Journal::start_run`; its nodes are read from the inputs of their tasks as the runner's
//! workers read them — on SQLite, the local queues in the journal's own file; on
//! PostgreSQL (feature `postgres`, a schema of its own per test), in-process `memory`
//! queues the relay dispatches the outbox to — run by a deterministic closure, and
//! completed with `Journal::complete`; the run is read back with `JournalReader`, and its
//! result from the input of its `on_complete` task.
//!
//! With exact outcomes: a diamond runs every node once, each after its upstream nodes;
//! inputs are rendered templates; an expansion hands its items over one by one and a
//! node expanded over it keeps their keys; an empty expansion does not hang; a failure
//! skips its dependents; a duplicate completion advances nothing twice; a run id starts
//! once; a deadline withdraws what is still queued (on PostgreSQL, a node relayed
//! already is settled as cancelled when delivered, without running); a bad plan records
//! nothing; a running node extends its run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ergon_core::journal::dag::{
    AllowFailures, Expand, OutputMode, PlannedGroup, PlannedNode, RunPlan, RunStart,
};
use ergon_core::journal::{Completion, Journal, failure, now_ms};
use ergon_core::transaction::meta;
use ergon_core::{Category, Connector, Delivery, Settlement, TaskError, Transaction};
use ergon_journal::run::view::RunDetail;
use ergon_journal::run::{Expanders, Phase};
use ergon_journal::{DurableJournal, Record, RunSettings, Settings, Status};
use serde_json::{Value, json};

use backends::{Backend, Tables, TestJournal, on_both_backends};

#[path = "common/backends.rs"]
mod backends;

/// The task of the nodes that start the runs here (they read a document).
const EXTRACT: &str = "extract";
/// The task of the other nodes.
const WORK: &str = "work";
/// The task each run's result goes to (`on_complete`).
const REPORT: &str = "report";
/// The tasks the journal hands transactions to, each reading an input of its name.
const TASKS: [&str; 3] = [EXTRACT, WORK, REPORT];
/// The tasks that run nodes.
const WORKERS: [&str; 2] = [EXTRACT, WORK];
/// The workflow the runs are listed under.
const WORKFLOW: &str = "docs";
/// How long a test waits for a run to end.
const PATIENCE: Duration = Duration::from_secs(10);

on_both_backends!(
    a_diamond_runs_every_node_once_in_dependency_order,
    a_node_receives_its_rendered_input_template,
    an_expansion_hands_items_over_and_each_keeps_their_keys,
    an_empty_expansion_does_not_hang_the_run,
    a_failed_node_skips_its_dependents_and_fails_the_run,
    a_duplicate_completion_advances_nothing_twice,
    a_run_id_starts_once,
    a_run_past_its_deadline_times_out_and_withdraws_its_queued_nodes,
    a_plan_with_an_unknown_task_or_a_cycle_records_nothing,
    a_running_node_extends_its_run_with_a_node_that_then_runs,
    a_custom_expander_and_a_matrix_feed_a_group_that_takes_a_failure_in,
);

/// What a node's task makes of its transaction: its output, or the message it fails
/// with for good.
type Outcome = Result<Value, String>;

/// A journal on one backend, and the inputs its tasks read.
struct Runs {
    journal: Arc<DurableJournal>,
    /// Each task's input, by task.
    queues: BTreeMap<String, Arc<dyn Connector>>,
    tables: Tables,
}

impl Runs {
    /// A journal whose [`TASKS`] each read an input of their name: on SQLite in a fresh
    /// file, on PostgreSQL in a fresh schema named after `test`.
    async fn open(backend: Backend, test: &str) -> Self {
        Self::with_expanders(backend, test, Expanders::new()).await
    }

    /// [`Runs::open`], with `expanders` registered.
    async fn with_expanders(backend: Backend, test: &str, expanders: Expanders) -> Self {
        let settings = |routes| Settings {
            record: Record::All,
            routes,
            runs: RunSettings {
                expanders,
                ..RunSettings::default()
            },
            ..Settings::default()
        };
        let TestJournal {
            journal,
            inputs,
            tables,
        } = TestJournal::open(backend, test, &TASKS, settings).await;
        Self {
            journal,
            queues: inputs,
            tables,
        }
    }

    /// Starts run `run_id` of `plan`, reporting to [`REPORT`]: whether it is new.
    async fn start(&self, run_id: &str, plan: RunPlan) -> Result<bool, TaskError> {
        self.journal.start_run(run_start(run_id, plan)).await
    }

    /// What `task`'s input holds once everything committed is handed over, leased to the
    /// test.
    async fn fetch(&self, task: &str) -> Vec<Delivery> {
        self.tables.handed_over().await;
        self.queues[task].fetch(100).await.unwrap()
    }

    /// `delivery` of `task` ended as `outcome`: journaled, then settled in its queue, as
    /// the engine does.
    async fn finish(&self, task: &str, delivery: &Delivery, outcome: Outcome) {
        let completion = completion(task, delivery.transaction(), outcome);
        let settlement = completion.settlement.clone();
        self.journal.complete(completion).await.unwrap();
        self.queues[task]
            .settle(delivery, &settlement)
            .await
            .unwrap();
    }

    /// `delivery` of `task` handled as the engine does: one the journal looks up and
    /// finds terminal (on PostgreSQL, a node relayed before it was cancelled) is settled
    /// as recorded without running; any other is run by `work` and finished. Returns
    /// whether it ran.
    async fn deliver(
        &self,
        task: &str,
        delivery: &Delivery,
        work: impl Fn(&Transaction) -> Outcome,
    ) -> bool {
        let tx = delivery.transaction();
        if self.journal.looks_up(tx) {
            let recorded = self.journal.recorded(task, tx.id()).await.unwrap();
            if let Some(settlement) = recorded {
                self.queues[task]
                    .settle(delivery, &settlement)
                    .await
                    .unwrap();
                return false;
            }
        }
        self.finish(task, delivery, work(tx)).await;
        true
    }

    /// Runs run `run_id` until it ends: what the worker tasks' inputs hold is delivered
    /// ([`Runs::deliver`]), round after round. Returns the transactions run, in order.
    async fn drive(
        &self,
        run_id: &str,
        work: impl Fn(&Transaction) -> Outcome,
    ) -> Vec<Transaction> {
        let started = Instant::now();
        let mut ran = Vec::new();
        loop {
            let mut fetched = 0;
            for task in WORKERS {
                for delivery in self.fetch(task).await {
                    fetched += 1;
                    if self.deliver(task, &delivery, &work).await {
                        ran.push(delivery.into_transaction());
                    }
                }
            }
            if self.run(run_id).await.summary.status != "running" {
                return ran;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "run {run_id} still running after {PATIENCE:?}, having run {:?}",
                ids(&ran)
            );
            if fetched == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// Run `run_id` once it is no longer running (nothing is run meanwhile).
    async fn ended(&self, run_id: &str) -> RunDetail {
        let started = Instant::now();
        loop {
            let run = self.run(run_id).await;
            if run.summary.status != "running" {
                return run;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "run {run_id} still running after {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The status the journal recorded for transaction `id` (one record).
    async fn status_of(&self, id: &str) -> Status {
        let recorded = self.journal.reader().get(id).await.unwrap();
        assert_eq!(recorded.len(), 1, "records of {id}");
        recorded[0].status
    }

    /// Run `run_id` as the journal's reader shows it.
    async fn run(&self, run_id: &str) -> RunDetail {
        let run = self.journal.reader().run(run_id).await.unwrap();
        run.unwrap_or_else(|| panic!("run {run_id} is not recorded"))
    }

    /// The result of the run that ended: the one transaction its `on_complete` task
    /// received (handed over in the commit that ended it), checked to be
    /// `<run_id>/on_complete`, and finished.
    async fn result(&self, run_id: &str) -> Value {
        let received = self.fetch(REPORT).await;
        assert_eq!(deliveries(&received), [format!("{run_id}/on_complete")]);
        self.finish(REPORT, &received[0], Ok(Value::Null)).await;
        let result = received[0].transaction();
        assert_eq!(result.meta(meta::RUN_ID), Some(run_id));
        result.payload_value()
    }

    /// Asserts that nothing is left: no task's input holds anything ready or leased once
    /// everything committed is handed over and the test's acks are written (nothing was
    /// handed over twice), and the journal holds no queued node.
    async fn assert_queues_empty(&self) {
        for task in TASKS {
            let left = self.fetch(task).await;
            assert!(
                left.is_empty(),
                "queue {task} holds {:?}",
                deliveries(&left)
            );
            assert!(self.queues[task].drained().await.unwrap(), "queue {task}");
        }
        let queued = self.tables.count("ergon_node", "status = 'queued'").await;
        assert_eq!(queued, 0, "nodes queued in the journal");
    }
}

/// Run `run_id` of `plan` with the input `{"doc_id": 7}`, reporting to [`REPORT`],
/// started by a transaction of its own.
fn run_start(run_id: &str, plan: RunPlan) -> RunStart {
    RunStart {
        run_id: run_id.to_owned(),
        workflow: WORKFLOW.to_owned(),
        owner_task: "starter".to_owned(),
        owner: Transaction::new(owner_of(run_id), "{}"),
        plan,
        input: json!({ "doc_id": 7 }),
        deadline_ms: None,
        on_complete: Some(REPORT.to_owned()),
        max_parallel: None,
    }
}

/// The id of the transaction that starts run `run_id`.
fn owner_of(run_id: &str) -> String {
    format!("{run_id}-start")
}

/// `tx` ended in `task` as `outcome`: acked with its output, or dead-lettered.
fn completion(task: &str, tx: &Transaction, outcome: Outcome) -> Completion {
    let (settlement, output) = match outcome {
        Ok(output) => (Settlement::Ack, Some(output.to_string())),
        Err(message) => {
            let failed = failure(task, "process", Category::Business, message, 1);
            (Settlement::DeadLetter(failed), None)
        }
    };
    Completion {
        task: task.into(),
        transaction: tx.clone(),
        settlement,
        attempts: 1,
        children: 0,
        output,
        started_at_ms: now_ms(),
        finished_at_ms: now_ms(),
    }
}

/// The node `tx` is (`ergon.node`).
fn node_of(tx: &Transaction) -> &str {
    tx.meta(meta::NODE).expect("a node of a run")
}

/// The ids of `txs`, in order.
fn ids(txs: &[Transaction]) -> Vec<String> {
    txs.iter().map(|tx| tx.id().to_owned()).collect()
}

/// The ids of the transactions `delivered`, in order.
fn deliveries(delivered: &[Delivery]) -> Vec<&str> {
    delivered.iter().map(|d| d.transaction().id()).collect()
}

/// A node's output telling what it saw: its name and the upstream results its (default)
/// input held.
fn what_it_saw(tx: &Transaction) -> Outcome {
    let input = tx.payload_value();
    let upstream: Vec<&String> = input["results"].as_object().unwrap().keys().collect();
    Ok(json!({ "node": node_of(tx), "saw": upstream }))
}

/// The output of [`what_it_saw`] for `node`, having seen `upstream`.
fn saw(node: &str, upstream: &[&str]) -> Value {
    json!({ "node": node, "saw": upstream })
}

/// The nodes of `run` in its order: name, phase, output.
fn nodes(run: &RunDetail) -> Vec<(&str, Phase, Option<&Value>)> {
    run.nodes
        .iter()
        .map(|n| (n.name.as_str(), n.state.phase, n.state.output.as_ref()))
        .collect()
}

/// Node `name` of `run`.
fn node<'a>(run: &'a RunDetail, name: &str) -> &'a ergon_journal::run::view::RunNode {
    run.nodes.iter().find(|n| n.name == name).unwrap()
}

async fn a_diamond_runs_every_node_once_in_dependency_order(backend: Backend) {
    let runs = Runs::open(backend, "dag_diamond").await;
    let plan = RunPlan::new(vec![
        PlannedNode::new("a", EXTRACT),
        PlannedNode::new("b", WORK).after(["a"]),
        PlannedNode::new("c", WORK).after(["a"]),
        PlannedNode::new("d", WORK).after(["a"]),
        PlannedNode::new("e", WORK).after(["b", "c", "d"]),
        PlannedNode::new("f", WORK).after(["e"]),
    ]);
    assert!(runs.start("r1", plan).await.unwrap());

    let ran = runs.drive("r1", what_it_saw).await;
    assert_eq!(ids(&ran), ["r1/a", "r1/b", "r1/c", "r1/d", "r1/e", "r1/f"]);
    for tx in &ran {
        assert_eq!(tx.meta(meta::RUN_ID), Some("r1"));
        assert_eq!(tx.id(), format!("r1/{}", node_of(tx)));
        assert_eq!(tx.meta(meta::ITEM), None);
        assert_eq!(tx.parent_id(), Some(owner_of("r1").as_str()));
        assert_eq!(tx.payload_value()["input"], json!({ "doc_id": 7 }));
    }
    let outputs = BTreeMap::from([
        ("a", saw("a", &[])),
        ("b", saw("b", &["a"])),
        ("c", saw("c", &["a"])),
        ("d", saw("d", &["a"])),
        ("e", saw("e", &["b", "c", "d"])),
        ("f", saw("f", &["e"])),
    ]);
    // Each node saw exactly its upstream nodes' outputs: it ran after all of them.
    assert_eq!(
        ran[4].payload_value()["results"],
        json!({ "b": outputs["b"], "c": outputs["c"], "d": outputs["d"] })
    );

    let run = runs.run("r1").await;
    let expected: Vec<_> = outputs
        .iter()
        .map(|(name, output)| (*name, Phase::Succeeded, Some(output)))
        .collect();
    assert_eq!(nodes(&run), expected);
    let reader = runs.journal.reader();
    let listed = reader.runs(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(reader.runs(Some("running"), 10).await.unwrap().is_empty());
    assert_eq!(reader.runs(Some("succeeded"), 10).await.unwrap(), listed);
    let summary = &listed[0];
    assert_eq!(
        (
            summary.run_id.as_str(),
            summary.workflow.as_str(),
            summary.status.as_str()
        ),
        ("r1", WORKFLOW, "succeeded")
    );
    assert_eq!(
        (
            summary.nodes_total,
            summary.nodes_done,
            summary.nodes_failed
        ),
        (6, 6, 0)
    );
    assert!(summary.finished_at.is_some());

    assert_eq!(
        runs.result("r1").await,
        json!({
            "run_id": "r1",
            "workflow": WORKFLOW,
            "status": "succeeded",
            "results": outputs,
            "failed": [],
            "skipped": [],
            "cancelled": [],
        })
    );
    runs.assert_queues_empty().await;
}

async fn a_node_receives_its_rendered_input_template(backend: Backend) {
    let runs = Runs::open(backend, "dag_template").await;
    let text = "Grüße, \"world\" — {{ not a template }}\nline two";
    let plan = RunPlan::new(vec![
        PlannedNode::new("extract", EXTRACT),
        PlannedNode::new("summarize", WORK)
            .after(["extract"])
            .input(json!({
                "text": "{{ results.extract.text }}",
                "pages": "{{ results.extract.pages }}",
                "title": "Document {{ input.doc_id }}",
            })),
    ]);
    assert!(runs.start("r2", plan).await.unwrap());

    let ran = runs
        .drive("r2", |tx| match node_of(tx) {
            "extract" => Ok(json!({ "text": text, "pages": [1, 2, 3] })),
            _ => Ok(json!({ "summary": "short" })),
        })
        .await;
    assert_eq!(ids(&ran), ["r2/extract", "r2/summarize"]);
    assert_eq!(
        ran[1].payload_value(),
        json!({ "text": text, "pages": [1, 2, 3], "title": "Document 7" })
    );
    assert_eq!(runs.run("r2").await.summary.status, "succeeded");
}

async fn an_expansion_hands_items_over_and_each_keeps_their_keys(backend: Backend) {
    let runs = Runs::open(backend, "dag_expansion").await;
    let by_language = Expand {
        key: Some("{{ lang }}".to_owned()),
        ..Expand::over("{{ results.language.languages }}").named("lang")
    };
    let plan = RunPlan::new(vec![
        PlannedNode::new("language", EXTRACT),
        PlannedNode::new("summaries", WORK)
            .after(["language"])
            .expand(by_language)
            .output(OutputMode::Separate),
        PlannedNode::new("translations", WORK)
            .after(["summaries"])
            .expand(Expand::each("summaries"))
            .output(OutputMode::Separate),
    ]);
    assert!(runs.start("r3", plan).await.unwrap());

    let ran = runs
        .drive("r3", |tx| {
            let input = tx.payload_value();
            match node_of(tx) {
                "language" => Ok(json!({ "languages": ["en", "fr", "de"] })),
                "summaries" => {
                    Ok(json!({ "summary": format!("in {}", input["item"].as_str().unwrap()) }))
                }
                _ => {
                    let summary = input["item"]["summary"].as_str().unwrap();
                    Ok(json!({ "translated": summary.to_uppercase() }))
                }
            }
        })
        .await;
    let items: Vec<_> = ran
        .iter()
        .map(|tx| (tx.id(), tx.meta(meta::ITEM), tx.meta(meta::ITEM_KEY)))
        .collect();
    assert_eq!(
        items,
        [
            ("r3/language", None, None),
            ("r3/summaries/0", Some("0"), Some("en")),
            ("r3/summaries/1", Some("1"), Some("fr")),
            ("r3/summaries/2", Some("2"), Some("de")),
            // `each` goes through the entries of an object: by key.
            ("r3/translations/0", Some("0"), Some("de")),
            ("r3/translations/1", Some("1"), Some("en")),
            ("r3/translations/2", Some("2"), Some("fr")),
        ]
    );
    let item = ran[2].payload_value();
    assert_eq!(
        (&item["item"], &item["key"], &item["index"]),
        (&json!("fr"), &json!("fr"), &json!(1))
    );
    assert_eq!(
        ran[4].payload_value()["item"],
        json!({ "summary": "in de" })
    );

    let run = runs.run("r3").await;
    assert_eq!(run.summary.status, "succeeded");
    let summaries = node(&run, "summaries").state.output.clone().unwrap();
    assert_eq!(
        summaries,
        json!({
            "en": { "summary": "in en" },
            "fr": { "summary": "in fr" },
            "de": { "summary": "in de" },
        })
    );
    let translations = node(&run, "translations").state.output.clone().unwrap();
    assert_eq!(
        translations,
        json!({
            "en": { "translated": "IN EN" },
            "fr": { "translated": "IN FR" },
            "de": { "translated": "IN DE" },
        })
    );
    let keys = |output: &Value| {
        output
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&translations), keys(&summaries));
    for expanded in ["summaries", "translations"] {
        let items = node(&run, expanded).state.items.unwrap();
        assert_eq!((items.total, items.done, items.failed), (3, 3, 0));
    }
    assert_eq!(
        runs.result("r3").await["results"]["translations"],
        translations
    );
    runs.assert_queues_empty().await;
}

async fn an_empty_expansion_does_not_hang_the_run(backend: Backend) {
    let runs = Runs::open(backend, "dag_empty_expansion").await;
    let plan = RunPlan::new(vec![
        PlannedNode::new("language", EXTRACT),
        PlannedNode::new("summaries", WORK)
            .after(["language"])
            .expand(Expand::over("{{ results.language.languages }}")),
        PlannedNode::new("publish", WORK).after(["summaries"]),
    ]);
    assert!(runs.start("r4", plan).await.unwrap());

    let ran = runs
        .drive("r4", |tx| match node_of(tx) {
            "language" => Ok(json!({ "languages": [] })),
            _ => what_it_saw(tx),
        })
        .await;
    assert_eq!(ids(&ran), ["r4/language", "r4/publish"]);
    assert_eq!(
        ran[1].payload_value()["results"],
        json!({ "summaries": [] })
    );
    let run = runs.run("r4").await;
    assert_eq!(run.summary.status, "succeeded");
    let summaries = node(&run, "summaries");
    assert_eq!(summaries.state.phase, Phase::Succeeded);
    assert_eq!(summaries.state.output, Some(json!([])));
    assert_eq!(runs.result("r4").await["results"]["summaries"], json!([]));
}

async fn a_failed_node_skips_its_dependents_and_fails_the_run(backend: Backend) {
    let runs = Runs::open(backend, "dag_failure").await;
    let plan = RunPlan::new(vec![
        PlannedNode::new("a", EXTRACT),
        PlannedNode::new("b", WORK).after(["a"]),
        PlannedNode::new("c", WORK).after(["b"]),
        PlannedNode::new("d", WORK).after(["c"]),
        PlannedNode::new("e", WORK).after(["a"]),
    ]);
    assert!(runs.start("r5", plan).await.unwrap());

    let ran = runs
        .drive("r5", |tx| match node_of(tx) {
            "b" => Err("the model refused".to_owned()),
            _ => what_it_saw(tx),
        })
        .await;
    assert_eq!(ids(&ran), ["r5/a", "r5/b", "r5/e"]);

    let run = runs.run("r5").await;
    assert_eq!(run.summary.status, "failed");
    assert_eq!(
        (
            run.summary.nodes_total,
            run.summary.nodes_done,
            run.summary.nodes_failed
        ),
        (5, 5, 1)
    );
    let (a, e) = (saw("a", &[]), saw("e", &["a"]));
    assert_eq!(
        nodes(&run),
        [
            ("a", Phase::Succeeded, Some(&a)),
            ("b", Phase::Failed, None),
            ("e", Phase::Succeeded, Some(&e)),
            ("c", Phase::Skipped, None),
            ("d", Phase::Skipped, None),
        ]
    );
    let skipped = "trigger AllSucceeded can no longer be met";
    assert_eq!(node(&run, "c").state.error.as_deref(), Some(skipped));
    assert_eq!(node(&run, "d").state.error.as_deref(), Some(skipped));

    assert_eq!(
        runs.result("r5").await,
        json!({
            "run_id": "r5",
            "workflow": WORKFLOW,
            "status": "failed",
            "results": { "a": a, "e": e },
            "failed": [{ "node": "b", "error": "business: the model refused" }],
            "skipped": ["c", "d"],
            "cancelled": [],
        })
    );
    runs.assert_queues_empty().await;
}

async fn a_duplicate_completion_advances_nothing_twice(backend: Backend) {
    let runs = Runs::open(backend, "dag_duplicate").await;
    let plan = RunPlan::new(vec![
        PlannedNode::new("a", EXTRACT),
        PlannedNode::new("b", WORK).after(["a"]),
        PlannedNode::new("c", WORK).after(["a"]),
        PlannedNode::new("d", WORK).after(["b", "c"]),
    ]);
    assert!(runs.start("r6", plan).await.unwrap());

    let root = runs.fetch(EXTRACT).await;
    assert_eq!(root.len(), 1);
    let done = completion(
        EXTRACT,
        root[0].transaction(),
        what_it_saw(root[0].transaction()),
    );
    runs.journal.complete(done).await.unwrap();
    runs.finish(EXTRACT, &root[0], what_it_saw(root[0].transaction()))
        .await;
    let middle = runs.fetch(WORK).await;
    assert_eq!(deliveries(&middle), ["r6/b", "r6/c"]);

    // Each twice at once: the two may share a commit, or follow each other.
    for delivery in &middle {
        let tx = delivery.transaction();
        let done = completion(WORK, tx, what_it_saw(tx));
        let (first, ()) = tokio::join!(
            runs.journal.complete(done),
            runs.finish(WORK, delivery, what_it_saw(tx))
        );
        first.unwrap();
    }
    let ran = runs.drive("r6", what_it_saw).await;
    assert_eq!(ids(&ran), ["r6/d"]);
    assert_eq!(runs.run("r6").await.summary.status, "succeeded");
    assert_eq!(runs.result("r6").await["status"], "succeeded");
    runs.assert_queues_empty().await;
    assert_eq!(runs.status_of("r6/b").await, Status::Succeeded);
}

async fn a_run_id_starts_once(backend: Backend) {
    let runs = Runs::open(backend, "dag_start_once").await;
    let first = RunPlan::new(vec![PlannedNode::new("a", EXTRACT)]);
    let second = RunPlan::new(vec![PlannedNode::new("other", WORK)]);
    assert!(runs.start("r7", first).await.unwrap());
    assert!(!runs.start("r7", second).await.unwrap());

    let ran = runs.drive("r7", what_it_saw).await;
    assert_eq!(ids(&ran), ["r7/a"], "the second plan never ran");
    let listed = runs.journal.reader().runs(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].nodes_total, listed[0].nodes_done), (1, 1));
    assert_eq!(
        runs.result("r7").await["results"],
        json!({ "a": saw("a", &[]) })
    );
}

async fn a_run_past_its_deadline_times_out_and_withdraws_its_queued_nodes(backend: Backend) {
    let runs = Runs::open(backend, "dag_deadline").await;
    let plan = RunPlan::new(vec![
        PlannedNode::new("a", EXTRACT),
        PlannedNode::new("b", WORK).after(["a"]),
    ]);
    // Far enough for the relay to hand `a` over first on PostgreSQL.
    let deadline = now_ms() + 1_000;
    let start = RunStart {
        deadline_ms: Some(deadline),
        ..run_start("r8", plan)
    };
    assert!(runs.journal.start_run(start).await.unwrap());
    runs.tables.handed_over().await;
    assert_eq!(runs.status_of("r8/a").await, Status::Queued, "a is queued");

    let run = runs.ended("r8").await;
    assert_eq!(run.summary.status, "timed_out");
    assert!(run.summary.finished_at.unwrap() >= deadline);
    assert_eq!(run.summary.deadline_ms, Some(deadline));
    assert_eq!(
        nodes(&run),
        [("a", Phase::Cancelled, None), ("b", Phase::Cancelled, None)]
    );
    assert_eq!(
        node(&run, "a").state.error.as_deref(),
        Some("the run timed out")
    );
    assert_eq!(runs.status_of("r8/a").await, Status::Cancelled);

    let left = runs.fetch(EXTRACT).await;
    match backend {
        Backend::Sqlite => assert!(left.is_empty(), "a was withdrawn from its queue"),
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            // Relayed before the deadline, `a` is delivered still: the journal recorded it
            // dropped, and it is settled so, without running.
            assert_eq!(deliveries(&left), ["r8/a"]);
            let recorded = runs.journal.recorded(EXTRACT, "r8/a").await.unwrap();
            assert!(
                matches!(recorded, Some(Settlement::Drop(_))),
                "{recorded:?}"
            );
            let ran = runs
                .deliver(EXTRACT, &left[0], |tx| {
                    panic!("{} ran after the timeout", tx.id())
                })
                .await;
            assert!(!ran);
        }
    }
    assert_eq!(
        runs.result("r8").await,
        json!({
            "run_id": "r8",
            "workflow": WORKFLOW,
            "status": "timed_out",
            "results": {},
            "failed": [],
            "skipped": [],
            "cancelled": ["a", "b"],
        })
    );
    runs.assert_queues_empty().await;
}

async fn a_plan_with_an_unknown_task_or_a_cycle_records_nothing(backend: Backend) {
    let runs = Runs::open(backend, "dag_bad_plan").await;
    let unknown = RunPlan::new(vec![
        PlannedNode::new("a", EXTRACT),
        PlannedNode::new("b", "ghost_task").after(["a"]),
    ]);
    let err = runs.start("r9", unknown).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "run r9 of docs: node `b` runs task `ghost_task`, which is not a task this run may use"
    );
    assert!(!err.is_retryable());

    let cycle = RunPlan::new(vec![
        PlannedNode::new("a", WORK).after(["b"]),
        PlannedNode::new("b", WORK).after(["a"]),
    ]);
    let err = runs.start("r9", cycle).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "run r9 of docs: the plan has a cycle: a → b → a"
    );
    assert!(!err.is_retryable());

    let reader = runs.journal.reader();
    assert!(reader.runs(None, 10).await.unwrap().is_empty());
    assert!(reader.run("r9").await.unwrap().is_none());
    runs.assert_queues_empty().await;
}

async fn a_running_node_extends_its_run_with_a_node_that_then_runs(backend: Backend) {
    let runs = Runs::open(backend, "dag_extend").await;
    let plan = RunPlan::new(vec![PlannedNode::new("planner", EXTRACT)]);
    assert!(runs.start("r10", plan).await.unwrap());

    let planner = runs.fetch(EXTRACT).await;
    assert_eq!(planner.len(), 1);
    let followup = PlannedNode::new("followup", WORK)
        .after(["planner"])
        .input(json!({ "steps": "{{ results.planner.steps }}" }));
    runs.journal
        .extend_run(planner[0].transaction(), vec![followup])
        .await
        .unwrap();
    assert!(
        runs.fetch(WORK).await.is_empty(),
        "followup waits for planner"
    );
    let steps = json!({ "steps": ["fetch", "summarize"] });
    runs.finish(EXTRACT, &planner[0], Ok(steps.clone())).await;

    let ran = runs.drive("r10", |_| Ok(json!("done"))).await;
    assert_eq!(ids(&ran), ["r10/followup"]);
    assert_eq!(ran[0].payload_value(), steps);
    let run = runs.run("r10").await;
    assert_eq!(run.summary.status, "succeeded");
    assert_eq!(
        nodes(&run),
        [
            ("planner", Phase::Succeeded, Some(&steps)),
            ("followup", Phase::Succeeded, Some(&json!("done"))),
        ]
    );
    assert_eq!((run.summary.nodes_total, run.summary.nodes_done), (2, 2));
    assert_eq!(
        runs.result("r10").await["results"],
        json!({ "planner": steps, "followup": "done" })
    );

    // The run has ended: it takes no more nodes.
    let late = PlannedNode::new("late", WORK).after(["planner"]);
    let err = runs
        .journal
        .extend_run(planner[0].transaction(), vec![late])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "extend_run: transaction r10/planner is not a node of a running run"
    );
}

async fn a_custom_expander_and_a_matrix_feed_a_group_that_takes_a_failure_in(backend: Backend) {
    // One page per unit of the run's `doc_id` (7), at most 3: custom code in the binary.
    let pages = Expanders::new().with(
        "pages",
        Arc::new(|context: &Value| {
            let doc = context["input"]["doc_id"].as_u64().ok_or("no doc_id")?;
            Ok((1..=doc.min(3))
                .map(|page| json!({ "page": page }))
                .collect())
        }),
    );
    let runs = Runs::with_expanders(backend, "dag_custom_group", pages).await;
    let mut variants = BTreeMap::new();
    variants.insert("lang".to_owned(), json!(["en", "fr"]));
    variants.insert("size".to_owned(), json!("{{ ['s', 'l'] }}"));
    let plan = RunPlan::new(vec![
        PlannedNode::new("pages", WORK).expand(Expand::custom("pages")),
        PlannedNode::new("variants", WORK).expand(Expand::matrix(variants)),
        PlannedNode::new("flaky", WORK),
        PlannedNode::new("report", WORK).after(["group:analysis"]),
    ])
    .group(
        "analysis",
        PlannedGroup {
            nodes: vec!["pages".into(), "variants".into(), "flaky".into()],
            depends_on: Vec::new(),
            allow_failures: AllowFailures::Count(1),
        },
    );
    assert!(runs.start("r11", plan).await.unwrap());

    let ran = runs
        .drive("r11", |tx| {
            let item = &tx.payload_value()["item"];
            match node_of(tx) {
                "pages" => Ok(json!(item["page"].as_u64().unwrap() * 10)),
                "variants" => Ok(json!(format!(
                    "{}-{}",
                    item["lang"].as_str().unwrap(),
                    item["size"].as_str().unwrap()
                ))),
                "flaky" => Err("the service is down".to_owned()),
                _ => Ok(tx.payload_value()["results"].clone()),
            }
        })
        .await;
    let mut ran_ids = ids(&ran);
    ran_ids.sort();
    assert_eq!(
        ran_ids,
        [
            "r11/flaky",
            "r11/pages/0",
            "r11/pages/1",
            "r11/pages/2",
            "r11/report",
            "r11/variants/0",
            "r11/variants/1",
            "r11/variants/2",
            "r11/variants/3",
        ]
    );
    let run = runs.run("r11").await;
    let join = node(&run, "group:analysis");
    assert_eq!(join.state.phase, Phase::Succeeded, "one failure is allowed");
    let analysis = json!({
        "pages": [10, 20, 30],
        "variants": ["en-s", "en-l", "fr-s", "fr-l"],
    });
    assert_eq!(join.state.output, Some(analysis.clone()));
    assert_eq!(node(&run, "flaky").state.phase, Phase::Failed);
    // The report ran on the group's join, so the run took the failure in.
    assert_eq!(run.summary.status, "succeeded");
    let result = runs.result("r11").await;
    assert_eq!(
        result["results"]["report"],
        json!({ "group:analysis": analysis })
    );
    assert_eq!(result["failed"][0]["node"], "flaky");
    runs.assert_queues_empty().await;
}

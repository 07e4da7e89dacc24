//! Every role in both execution models, run through the runner (TOML → plan → TaskManager)
//! against scripted connectors that record what was acked, dispatched and dead-lettered:
//! consumers, producers (from an input and self-generating), hybrids with lineage, the
//! hybrid's ack-after-confirm, blocking timeouts, producer limits and retries, and the
//! connectors each role requires.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ergon_core::config::{ConfigEnv, ConfigIssue, ConnectorKind, MakeConnector};
use ergon_core::runner::LoopEnd;
use ergon_core::test_util::ScriptedConnector;
use ergon_core::{
    BlockingConsumer, BlockingHybrid, BlockingProducer, Connector, Consumer, Context, Delivery,
    Hybrid, Producer, Settlement, TaskError, Transaction,
};
use ergon_runner::manager::TaskReport;
use ergon_runner::plan::Plan;
use ergon_runner::{ConfigError, Registry, TaskManager};

// ---------------------------------------------------------------------------------------
// The harness: a connector kind handing out shared scripted connectors, and a runner.

/// `type = "scripted"`, `name = "..."`: every worker gets the same [`ScriptedConnector`],
/// which the test keeps to look at afterwards.
#[derive(Default)]
struct Scripted(Mutex<BTreeMap<String, Arc<ScriptedConnector>>>);

impl Scripted {
    fn with(self, name: &str, connector: ScriptedConnector) -> Self {
        self.0
            .lock()
            .unwrap()
            .insert(name.to_owned(), Arc::new(connector));
        self
    }

    fn get(&self, name: &str) -> Arc<ScriptedConnector> {
        self.0.lock().unwrap()[name].clone()
    }
}

struct Open(Arc<ScriptedConnector>);

#[async_trait::async_trait]
impl MakeConnector for Open {
    async fn connect(&self, _worker: usize) -> Result<Arc<dyn Connector>, TaskError> {
        Ok(self.0.clone())
    }
}

impl ConnectorKind for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn configure(
        &self,
        table: serde_json::Value,
        _env: &ConfigEnv,
    ) -> Result<Arc<dyn MakeConnector>, ConfigIssue> {
        let name = table["name"]
            .as_str()
            .ok_or_else(|| ConfigIssue::new("name", "missing"))?;
        let connectors = self.0.lock().unwrap();
        let connector = connectors
            .get(name)
            .ok_or_else(|| ConfigIssue::new("name", format!("no scripted connector {name}")))?;
        Ok(Arc::new(Open(connector.clone())))
    }
}

/// `n` inbound transactions `in-0`, `in-1`, … with payload `{"n":i}` and a trace context.
fn inbound(n: usize) -> ScriptedConnector {
    ScriptedConnector::new((0..n).map(|i| {
        Transaction::builder(format!("in-{i}"))
            .payload(format!("{{\"n\":{i}}}"))
            .meta("traceparent", format!("00-trace{i:026}-span{i:012}-01"))
            .build()
    }))
}

/// Connectors `in` (the inbound transactions) and `out` (empty) for one test.
fn connectors(n: usize) -> Arc<Scripted> {
    Arc::new(
        Scripted::default()
            .with("in", inbound(n))
            .with("out", ScriptedConnector::default()),
    )
}

/// The TOML of one task `t` of implementation `kind` with `in` and `out`, plus `extra`.
fn task_toml(kind: &str, input: bool, extra: &str) -> String {
    let input = if input { "input = \"in\"\n" } else { "" };
    format!(
        r#"
[connectors.in]
type = "scripted"
name = "in"

[connectors.out]
type = "scripted"
name = "out"

[tasks.t]
type = "{kind}"
{input}output = "out"
{extra}
"#
    )
}

/// Plans `toml` against `registry` (with the scripted connectors).
fn plan(toml: &str, registry: Registry, scripted: &Arc<Scripted>) -> Result<Plan, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tasks.toml");
    std::fs::write(&file, toml).unwrap();
    let loaded = ergon_runner::config::load(&file)?;
    Plan::build(&loaded, &registry.connector_kind(scripted.clone()))
}

/// The error that planning `toml` must end with.
fn rejected(toml: &str, scripted: &Arc<Scripted>) -> ConfigError {
    match plan(toml, registry(&Arc::default()), scripted) {
        Ok(_) => panic!("the plan accepted:\n{toml}"),
        Err(err) => err,
    }
}

/// Runs the single task of `toml` and returns its report.
async fn run(toml: &str, registry: Registry, scripted: &Arc<Scripted>) -> TaskReport {
    let plan = plan(toml, registry, scripted).unwrap_or_else(|e| panic!("{e}"));
    let mut report = TaskManager::new(plan.tasks.clone()).quiet().run().await;
    report.tasks.remove(0)
}

/// What the `out` connector received.
async fn dispatched(out: &ScriptedConnector) -> Vec<Transaction> {
    let fetched = out.queue().fetch(usize::MAX).await.unwrap();
    fetched
        .into_iter()
        .map(Delivery::into_transaction)
        .collect()
}

fn ended(report: &TaskReport) -> Vec<LoopEnd> {
    report
        .workers
        .iter()
        .map(|w| *w.as_ref().unwrap_or_else(|e| panic!("worker failed: {e}")))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tasks. Where both models are tested, one struct implements both role traits over one
// shared function, so the two models do exactly the same work.

/// Records on which thread, and whether inside the tokio runtime, its code ran.
#[derive(Default)]
struct Threads(Mutex<BTreeSet<(String, bool)>>);

impl Threads {
    fn record(&self) {
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        let in_runtime = tokio::runtime::Handle::try_current().is_ok();
        self.0.lock().unwrap().insert((name, in_runtime));
    }

    fn seen(&self) -> BTreeSet<(String, bool)> {
        self.0.lock().unwrap().clone()
    }
}

/// A consumer that only records where it ran.
struct Noop(Arc<Threads>);

impl Consumer for Noop {
    type Output = ();

    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        self.0.record();
        Ok(())
    }
}

impl BlockingConsumer for Noop {
    type Output = ();

    fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        self.0.record();
        Ok(())
    }
}

/// A blocking consumer that overruns any short deadline.
struct Sleepy(Arc<Threads>);

impl BlockingConsumer for Sleepy {
    type Output = ();

    fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        self.0.record();
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }
}

/// `{"prepared": <payload>}`: what the producers dispatch.
fn wrap(tx: &Transaction) -> Result<Transaction, TaskError> {
    let inner: serde_json::Value = tx.json()?;
    Transaction::from_json(
        format!("{}/prepared", tx.id()),
        &serde_json::json!({ "prepared": inner }),
    )
}

/// A producer: generates `total` transactions when it has no input (`None`: without end),
/// wraps each one, and fails the first prepare attempt of each when `flaky`.
#[derive(Default)]
struct Wrap {
    next: AtomicU64,
    total: Option<u64>,
    flaky: bool,
    failed_once: Mutex<BTreeSet<String>>,
}

impl Wrap {
    fn generate(&self, max: usize) -> Vec<Transaction> {
        let start = self.next.fetch_add(max as u64, Relaxed);
        let end = start.saturating_add(max as u64);
        let (start, end) = match self.total {
            Some(total) => (start.min(total), end.min(total)),
            None => (start, end),
        };
        (start..end)
            .map(|i| Transaction::new(format!("gen-{i}"), format!("{{\"n\":{i}}}")))
            .collect()
    }

    fn prepare(&self, tx: &Transaction) -> Result<Transaction, TaskError> {
        if self.flaky && self.failed_once.lock().unwrap().insert(tx.id().to_owned()) {
            return Err(TaskError::system("first attempt always fails"));
        }
        wrap(tx)
    }
}

impl Producer for Wrap {
    async fn generate_transactions(
        &self,
        _: &Context,
        max: usize,
    ) -> Result<Vec<Transaction>, TaskError> {
        Ok(self.generate(max))
    }

    async fn prepare_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Transaction, TaskError> {
        self.prepare(tx)
    }
}

impl BlockingProducer for Wrap {
    fn generate_transactions(
        &self,
        _: &Context,
        max: usize,
    ) -> Result<Vec<Transaction>, TaskError> {
        Ok(self.generate(max))
    }

    fn prepare_transaction(&self, _: &Context, tx: &Transaction) -> Result<Transaction, TaskError> {
        self.prepare(tx)
    }
}

/// Three children per inbound transaction, built from scratch (the engine adds lineage).
fn three(tx: &Transaction) -> Vec<Transaction> {
    (0..3)
        .map(|k| Transaction::new(format!("{}/{k}", tx.id()), tx.payload().clone()))
        .collect()
}

/// A hybrid fanning each inbound transaction out into three, recording where it ran.
struct Fan3(Arc<Threads>);

impl Hybrid for Fan3 {
    async fn process_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        self.0.record();
        Ok(three(tx))
    }
}

impl BlockingHybrid for Fan3 {
    fn process_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        self.0.record();
        Ok(three(tx))
    }
}

/// The six registrations used below, each task recording into `threads`.
fn registry(threads: &Arc<Threads>) -> Registry {
    let t = threads.clone();
    let (t1, t2, t3, t4) = (t.clone(), t.clone(), t.clone(), t.clone());
    Registry::new()
        .consumer("noop", move |_| Ok(Noop(t1.clone())))
        .blocking_consumer("blocking_noop", move |_| Ok(Noop(t2.clone())))
        .blocking_consumer("sleepy", move |_| Ok(Sleepy(t.clone())))
        .producer("wrap", |_| Ok(Wrap::default()))
        .blocking_producer("blocking_wrap", |_| Ok(Wrap::default()))
        .producer("generate30", |_| {
            Ok(Wrap {
                total: Some(30),
                ..Wrap::default()
            })
        })
        .blocking_producer("blocking_generate30", |_| {
            Ok(Wrap {
                total: Some(30),
                ..Wrap::default()
            })
        })
        .producer("endless", |_| Ok(Wrap::default()))
        .producer("flaky", |_| {
            Ok(Wrap {
                flaky: true,
                ..Wrap::default()
            })
        })
        .hybrid("fan3", move |_| Ok(Fan3(t3.clone())))
        .blocking_hybrid("blocking_fan3", move |_| Ok(Fan3(t4.clone())))
}

/// Pool threads are named `ergon-<task>-<worker>-<n>`; runtime threads are not.
fn assert_on_pool_only(threads: &Threads) {
    let seen = threads.seen();
    assert!(!seen.is_empty());
    for (name, in_runtime) in seen {
        assert!(name.starts_with("ergon-t-"), "ran on thread {name}");
        assert!(
            !in_runtime,
            "blocking code ran inside the tokio runtime ({name})"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_in_both_models_ack_everything() {
    for (kind, blocking) in [("noop", false), ("blocking_noop", true)] {
        let threads = Arc::new(Threads::default());
        let scripted = connectors(40);
        let toml = task_toml(kind, true, "[tasks.t.policy.loop]\nconcurrency = 4\n");
        let report = run(&toml, registry(&threads), &scripted).await;
        assert_eq!(report.stats.succeeded, 40, "{kind}");
        assert_eq!(scripted.get("in").acked().len(), 40, "{kind}");
        assert_eq!(ended(&report), [LoopEnd::Exhausted]);
        if blocking {
            assert_on_pool_only(&threads);
        } else {
            assert!(threads.seen().iter().all(|(_, in_runtime)| *in_runtime));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_in_both_models_prepare_and_dispatch_each_input_transaction() {
    for kind in ["wrap", "blocking_wrap"] {
        let scripted = connectors(25);
        let report = run(
            &task_toml(kind, true, ""),
            registry(&Arc::default()),
            &scripted,
        )
        .await;
        assert_eq!(
            (report.stats.succeeded, report.stats.dispatched),
            (25, 25),
            "{kind}"
        );
        assert_eq!(scripted.get("in").acked().len(), 25, "{kind}");
        let out = dispatched(&scripted.get("out")).await;
        let mut ns: Vec<u64> = out
            .iter()
            .map(|tx| {
                tx.json::<serde_json::Value>().unwrap()["prepared"]["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        ns.sort_unstable();
        assert_eq!(ns, (0..25).collect::<Vec<_>>(), "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_without_input_generate_until_their_source_is_empty() {
    for kind in ["generate30", "blocking_generate30"] {
        let scripted = connectors(0);
        let toml = task_toml(kind, false, "[tasks.t.policy.fetch]\nbatch_size = 7\n");
        let report = run(&toml, registry(&Arc::default()), &scripted).await;
        assert_eq!(report.stats.dispatched, 30, "{kind}");
        assert_eq!(dispatched(&scripted.get("out")).await.len(), 30, "{kind}");
        assert_eq!(ended(&report), [LoopEnd::Exhausted], "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrids_in_both_models_fan_out_with_lineage_and_ack_after_dispatch() {
    for (kind, blocking) in [("fan3", false), ("blocking_fan3", true)] {
        let threads = Arc::new(Threads::default());
        let scripted = connectors(20);
        let report = run(&task_toml(kind, true, ""), registry(&threads), &scripted).await;
        let input = scripted.get("in");
        assert_eq!(input.acked().len(), 20, "{kind}");
        assert_eq!(report.stats.dispatched, 60, "{kind}");
        let out = dispatched(&scripted.get("out")).await;
        assert_eq!(out.len(), 60, "{kind}");
        for child in &out {
            let parent = child.id().rsplit_once('/').unwrap().0;
            let n: usize = parent.strip_prefix("in-").unwrap().parse().unwrap();
            assert_eq!(child.parent_id(), Some(parent));
            assert_eq!(child.root_id(), parent);
            assert_eq!(
                child.meta("traceparent"),
                Some(format!("00-trace{n:026}-span{n:012}-01").as_str())
            );
        }
        if blocking {
            assert_on_pool_only(&threads);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dispatch_never_acks_the_inbound_transaction() {
    let retry = "[tasks.t.policy.dispatch.retry]\nmax_attempts = 3\nbackoff = \"1ms\"\n";
    for on_failure in ["dead_letter", "requeue"] {
        let scripted = Arc::new(Scripted::default().with("in", inbound(10)).with(
            "out",
            ScriptedConnector::default().failing_dispatches(u32::MAX),
        ));
        let policy = format!(
            "[tasks.t.policy]\non_failure = \"{on_failure}\"\n[tasks.t.policy.loop]\nlimit = 10\n{retry}"
        );
        let report = run(
            &task_toml("fan3", true, &policy),
            registry(&Arc::default()),
            &scripted,
        )
        .await;
        let input = scripted.get("in");
        assert!(
            input.acked().is_empty(),
            "{on_failure}: acked {:?}",
            input.acked()
        );
        assert_eq!(scripted.get("out").dispatch_attempts(), 30, "{on_failure}");
        assert_eq!(report.stats.dispatched, 0);
        assert_eq!(report.stats.failed_system, 10);
        if on_failure == "requeue" {
            assert_eq!(input.requeued().len(), 10);
        } else {
            let settlements = input.settlements();
            assert_eq!(settlements.len(), 10);
            for (id, settlement) in settlements {
                let Settlement::DeadLetter(failure) = settlement else {
                    panic!("{id} settled as {settlement:?}");
                };
                assert_eq!((failure.step, failure.attempts), ("dispatch", 3));
                assert!(
                    failure.message.contains("scripted dispatch failure"),
                    "{failure:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_attempt_past_its_deadline_is_a_timeout_and_is_counted() {
    let threads = Arc::new(Threads::default());
    let scripted = connectors(4);
    let policy = r#"
[tasks.t.policy.loop]
concurrency = 2
[tasks.t.policy.process.retry]
timeout = "50ms"
max_attempts = 2
backoff = "1ms"
"#;
    let report = run(
        &task_toml("sleepy", true, policy),
        registry(&threads),
        &scripted,
    )
    .await;
    let stats = report.stats;
    assert_eq!((stats.failed_timeout, stats.dead_lettered), (4, 4));
    assert_eq!(
        stats.abandoned_attempts, 8,
        "two abandoned attempts per transaction"
    );
    assert_eq!(stats.retries, 4);
    // The pool kept its two threads: abandoned work queues, it never adds threads.
    let names: BTreeSet<String> = threads.seen().into_iter().map(|(name, _)| name).collect();
    assert!(names.len() <= 2, "{names:?}");
    assert_on_pool_only(&threads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_stops_at_its_limit_across_workers() {
    let scripted = connectors(0);
    let toml = task_toml(
        "endless",
        false,
        "workers = 2\n[tasks.t.policy.loop]\nlimit = 25\n[tasks.t.policy.fetch]\nbatch_size = 4\n",
    );
    let report = run(&toml, registry(&Arc::default()), &scripted).await;
    assert_eq!(report.stats.dispatched, 25);
    assert_eq!(dispatched(&scripted.get("out")).await.len(), 25);
    assert_eq!(
        ended(&report),
        [LoopEnd::LimitReached, LoopEnd::LimitReached]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_retries_its_prepare_step() {
    let scripted = connectors(10);
    let toml = task_toml(
        "flaky",
        true,
        "[tasks.t.policy.prepare.retry]\nbackoff = \"1ms\"\n",
    );
    let report = run(&toml, registry(&Arc::default()), &scripted).await;
    assert_eq!(
        (
            report.stats.succeeded,
            report.stats.retries,
            report.stats.dispatched
        ),
        (10, 10, 10)
    );
    assert_eq!(scripted.get("in").acked().len(), 10);
}

#[test]
fn each_role_must_have_the_connectors_it_needs() {
    let scripted = connectors(0);
    let producer = task_toml("wrap", true, "").replace("output = \"out\"\n", "");
    let err = rejected(&producer, &scripted);
    assert_eq!(err.path, "tasks.t.output");
    assert!(
        err.message
            .starts_with("a producer task needs an output connector"),
        "{err}"
    );

    let hybrid = task_toml("fan3", false, "");
    let err = rejected(&hybrid, &scripted);
    assert_eq!(err.path, "tasks.t.input");
    assert!(
        err.message
            .starts_with("a hybrid task needs an input connector"),
        "{err}"
    );

    // A producer needs no input; a consumer does.
    plan(
        &task_toml("wrap", false, ""),
        registry(&Arc::default()),
        &scripted,
    )
    .unwrap();
    let err = rejected(&task_toml("noop", false, ""), &scripted);
    assert_eq!(err.path, "tasks.t.input");

    // A step that is not part of the role is an unknown key.
    let wrong = task_toml(
        "noop",
        true,
        "[tasks.t.policy.prepare.retry]\nmax_attempts = 2\n",
    );
    let err = rejected(&wrong, &scripted);
    assert_eq!(err.path, "tasks.t.policy.prepare");
}

#[test]
fn a_blocking_task_is_bounded_in_threads_over_its_workers() {
    let scripted = connectors(0);
    // 65,536 threads made the OS refuse one and aborted the run; now planning refuses.
    let err = rejected(
        &task_toml(
            "blocking_noop",
            true,
            "[tasks.t.policy.loop]\nconcurrency = 65536\n",
        ),
        &scripted,
    );
    assert_eq!(err.path, "tasks.t.policy.loop.concurrency");
    assert!(
        err.message
            .contains("(1 × 65536 = 65536 here); at most 1024"),
        "{err}"
    );
    let err = rejected(
        &task_toml(
            "blocking_noop",
            true,
            "workers = 4\n[tasks.t.policy.loop]\nconcurrency = 512\n",
        ),
        &scripted,
    );
    assert!(err.message.contains("(4 × 512 = 2048 here)"), "{err}");
    // At the bound it plans; an async task may have far more in flight.
    let at_bound = "workers = 2\n[tasks.t.policy.loop]\nconcurrency = 512\n";
    let registry = || registry(&Arc::default());
    plan(
        &task_toml("blocking_noop", true, at_bound),
        registry(),
        &scripted,
    )
    .unwrap();
    let many = "workers = 2\n[tasks.t.policy.loop]\nconcurrency = 65536\n";
    plan(&task_toml("noop", true, many), registry(), &scripted).unwrap();
}

#[test]
fn list_shows_each_task_role_and_model() {
    let scripted = connectors(0);
    let registry = registry(&Arc::default());
    let plan = plan(
        &task_toml("blocking_fan3", true, ""),
        registry.clone(),
        &scripted,
    )
    .unwrap();
    let listing = ergon_runner::commands::list::render(Some(&plan), &registry);
    assert!(
        listing.contains("type=blocking_fan3 role=hybrid model=blocking"),
        "{listing}"
    );
    assert!(
        listing.contains("wrap                 role=producer model=async"),
        "{listing}"
    );
}

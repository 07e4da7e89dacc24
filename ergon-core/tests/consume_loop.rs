//! The async consume loop end to end over a scripted input: outcomes and counters per error
//! category, success failures routed to the exception step, exception retries, failure
//! actions, exact limits, the concurrency bound, termination, streaming backoff, fetch
//! failures and the transaction budget. Time is paused, so every duration is exact.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ergon_core::policy::{FailureAction, RetryPolicy};
use ergon_core::runner::{ConsumeLoop, LimitBudget, LoopEnd, StatsSnapshot, WorkerStats};
use ergon_core::test_util::ScriptedConnector;
use ergon_core::{Category, Consumer, ConsumerPolicy, Context, Settlement, TaskError, Transaction};
use tokio::time::Instant;

/// The `n` of a `{"n": …}` payload.
fn n_of(tx: &Transaction) -> u64 {
    tx.json::<serde_json::Value>().unwrap()["n"]
        .as_u64()
        .unwrap()
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        timeout: Duration::from_millis(50),
        backoff: Duration::from_millis(1),
        backoff_multiplier: 1.0,
        backoff_cap: Duration::from_millis(1),
        jitter: 0.0,
    }
}

fn policy(concurrency: usize, batch_size: usize) -> ConsumerPolicy {
    let mut policy = ConsumerPolicy::default();
    policy.r#loop.concurrency = concurrency;
    policy.fetch.batch_size = batch_size;
    policy.process.retry = fast_retry(3);
    policy.success.retry = fast_retry(2);
    policy.exception.retry = fast_retry(3);
    policy
}

/// Runs one loop of `task` over `input` to its end.
async fn run<T: Consumer>(
    task: Arc<T>,
    input: &Arc<ScriptedConnector>,
    policy: ConsumerPolicy,
) -> (Result<LoopEnd, TaskError>, StatsSnapshot) {
    let stats = Arc::new(WorkerStats::default());
    let cx = Context::builder("test").input(input.clone()).build();
    let end = ConsumeLoop::consumer(task, cx, Arc::new(policy))
        .stats(stats.clone())
        .run()
        .await;
    (end, stats.snapshot())
}

/// Outcome by `n % 4`: ok, business error, system error (always), timeout (always).
struct ByRemainder {
    attempts: Mutex<HashMap<u64, u32>>,
}

impl Consumer for ByRemainder {
    type Output = ();

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
        let n = n_of(tx);
        *self.attempts.lock().unwrap().entry(n).or_default() += 1;
        match n % 4 {
            0 => Ok(()),
            1 => Err(TaskError::business(format!("bad record {n}"))),
            2 => Err(TaskError::system("database unreachable")),
            _ => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_counters_and_dead_letters_per_error_category() {
    let input = Arc::new(ScriptedConnector::with_count(40));
    let task = Arc::new(ByRemainder {
        attempts: Mutex::default(),
    });
    let attempts = {
        let (end, stats) = run(task.clone(), &input, policy(8, 16)).await;
        assert_eq!(end.unwrap(), LoopEnd::Exhausted);
        assert_eq!(stats.processed, 40);
        assert_eq!(stats.succeeded, 10);
        assert_eq!(
            (
                stats.failed_business,
                stats.failed_system,
                stats.failed_timeout
            ),
            (10, 10, 10)
        );
        assert_eq!(
            stats.retries,
            10 * 2 + 10 * 2,
            "system and timeout retried twice each"
        );
        assert_eq!(stats.dead_lettered, 30);
        task.attempts.lock().unwrap().clone()
    };
    for (n, made) in attempts {
        let expected = if n % 4 < 2 { 1 } else { 3 };
        assert_eq!(made, expected, "attempts of n={n}");
    }
    let letters = input.queue().dead_letters();
    assert_eq!(letters.len(), 30);
    for (tx, failure) in letters {
        let (category, attempts, message) = match n_of(&tx) % 4 {
            1 => (Category::Business, 1, format!("bad record {}", n_of(&tx))),
            2 => (Category::System, 3, "database unreachable".to_owned()),
            _ => (
                Category::Timeout,
                3,
                "attempt timed out after 50ms".to_owned(),
            ),
        };
        assert_eq!((failure.category, failure.attempts), (category, attempts));
        assert_eq!(failure.message, message);
        assert_eq!(failure.step, "process");
        assert_eq!(&*failure.task, "test");
    }
}

/// Records every exception handler call; its success handler and exception handler fail
/// as told.
#[derive(Default)]
struct Handlers {
    success_fails: bool,
    exception_failures: u32,
    exception_calls: Mutex<Vec<(String, String)>>,
    exception_attempts: AtomicUsize,
}

impl Consumer for Handlers {
    type Output = u64;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<u64, TaskError> {
        Ok(n_of(tx))
    }

    async fn handle_process_success(
        &self,
        _: &Context,
        _: &Transaction,
        _: &u64,
    ) -> Result<(), TaskError> {
        if self.success_fails {
            Err(TaskError::system("cannot store the result"))
        } else {
            Ok(())
        }
    }

    async fn handle_process_exception(
        &self,
        _: &Context,
        tx: &Transaction,
        error: &TaskError,
    ) -> Result<(), TaskError> {
        let attempt = self.exception_attempts.fetch_add(1, SeqCst) as u32 + 1;
        self.exception_calls
            .lock()
            .unwrap()
            .push((tx.id().to_owned(), error.to_string()));
        if attempt <= self.exception_failures {
            Err(TaskError::system("alerting service down"))
        } else {
            Ok(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_success_handler_falls_back_to_the_exception_step() {
    let input = Arc::new(ScriptedConnector::with_count(1));
    let task = Arc::new(Handlers {
        success_fails: true,
        ..Handlers::default()
    });
    let (end, stats) = run(task.clone(), &input, policy(1, 1)).await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!(
        *task.exception_calls.lock().unwrap(),
        [("tx-0".to_owned(), "cannot store the result".to_owned())]
    );
    assert_eq!(
        stats.retries, 1,
        "the success step (2 attempts) retried once"
    );
    assert_eq!(stats.failed_system, 1);
    let letters = input.queue().dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].1.step, letters[0].1.attempts), ("success", 2));
    assert_eq!(input.acked(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn the_exception_step_is_retried_and_its_final_failure_still_settles() {
    // Fails twice, then succeeds: three attempts, not counted as an exception failure.
    let input = Arc::new(ScriptedConnector::with_count(1));
    let task = Arc::new(Handlers {
        success_fails: true,
        exception_failures: 2,
        ..Handlers::default()
    });
    let (_, stats) = run(task.clone(), &input, policy(1, 1)).await;
    assert_eq!(task.exception_attempts.load(SeqCst), 3);
    assert_eq!(stats.exception_failed, 0);
    assert_eq!(stats.retries, 1 + 2);
    assert_eq!(input.dead_lettered(), ["tx-0"]);

    // Always fails: three attempts, counted, and the transaction is dead-lettered anyway.
    let input = Arc::new(ScriptedConnector::with_count(1));
    let task = Arc::new(Handlers {
        success_fails: true,
        exception_failures: u32::MAX,
        ..Handlers::default()
    });
    let (_, stats) = run(task.clone(), &input, policy(1, 1)).await;
    assert_eq!(task.exception_attempts.load(SeqCst), 3);
    assert_eq!(stats.exception_failed, 1);
    assert_eq!(stats.dead_lettered, 1);
    assert_eq!(input.dead_lettered(), ["tx-0"]);
}

/// Rejects every transaction the first time it sees it, accepts it the second time;
/// each attempt takes `delay`.
#[derive(Default)]
struct SecondTimeLucky {
    seen: Mutex<Vec<String>>,
    delay: Duration,
}

impl Consumer for SecondTimeLucky {
    type Output = ();

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
        tokio::time::sleep(self.delay).await;
        let mut seen = self.seen.lock().unwrap();
        if seen.iter().any(|id| id == tx.id()) {
            Ok(())
        } else {
            seen.push(tx.id().to_owned());
            Err(TaskError::business("first delivery"))
        }
    }
}

#[tokio::test(start_paused = true)]
async fn failure_actions_requeue_and_drop() {
    let input = Arc::new(ScriptedConnector::with_count(5));
    let mut requeue = policy(2, 2);
    requeue.on_failure = FailureAction::Requeue;
    let (end, stats) = run(Arc::new(SecondTimeLucky::default()), &input, requeue).await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!(stats.requeued, 5);
    assert_eq!(
        stats.succeeded, 5,
        "each requeued transaction came back and succeeded"
    );
    assert_eq!(input.requeued().len(), 5);
    assert_eq!(input.acked().len(), 5);

    let input = Arc::new(ScriptedConnector::with_count(5));
    let mut drop = policy(2, 2);
    drop.on_failure = FailureAction::Drop;
    let (_, stats) = run(Arc::new(SecondTimeLucky::default()), &input, drop).await;
    assert_eq!(
        (stats.dropped, stats.succeeded, stats.dead_lettered),
        (5, 0, 0)
    );
    assert_eq!(input.queue().dropped(), 5);
    assert!(input.queue().is_empty());
}

/// Succeeds after `delay`, tracking how many run at once.
#[derive(Default)]
struct Tracked {
    delay: Duration,
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Consumer for Tracked {
    type Output = ();

    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(now, SeqCst);
        tokio::time::sleep(self.delay).await;
        self.now.fetch_sub(1, SeqCst);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_limit_is_exact_across_batch_boundaries() {
    let input = Arc::new(ScriptedConnector::with_count(1000));
    let mut limited = policy(4, 7);
    limited.r#loop.limit = Some(250);
    let (end, stats) = run(Arc::new(Tracked::default()), &input, limited).await;
    assert_eq!(end.unwrap(), LoopEnd::LimitReached);
    assert_eq!(stats.succeeded, 250);
    assert_eq!(
        input.queue().len(),
        750,
        "nothing beyond the limit was fetched"
    );
    let fetched: usize = input
        .fetches()
        .iter()
        .map(|(_, _, returned)| returned)
        .sum();
    assert_eq!(fetched, 250);
    assert!(input.fetches().iter().all(|(_, asked, _)| *asked <= 7));
}

#[tokio::test(start_paused = true)]
async fn workers_sharing_a_budget_process_exactly_the_limit_together() {
    let input = Arc::new(ScriptedConnector::with_count(1000));
    let budget = Arc::new(LimitBudget::new(101));
    let task = Arc::new(Tracked {
        delay: Duration::from_millis(3),
        ..Tracked::default()
    });
    let worker = |index: usize| {
        let cx = Context::builder("test")
            .worker(index)
            .input(input.clone())
            .build();
        ConsumeLoop::consumer(task.clone(), cx, Arc::new(policy(8, 10)))
            .limit(Some(budget.clone()))
            .run()
    };
    let (a, b) = tokio::join!(worker(0), worker(1));
    assert_eq!(
        (a.unwrap(), b.unwrap()),
        (LoopEnd::LimitReached, LoopEnd::LimitReached)
    );
    assert_eq!(input.acked().len(), 101);
    assert_eq!(input.queue().len(), 899);
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_reached_but_never_exceeded_even_with_small_batches() {
    for (concurrency, batch_size) in [(1, 5), (4, 5), (20, 5), (64, 256)] {
        let input = Arc::new(ScriptedConnector::with_count(300));
        let task = Arc::new(Tracked {
            delay: Duration::from_millis(10),
            ..Tracked::default()
        });
        let stats = {
            let (end, stats) = run(task.clone(), &input, policy(concurrency, batch_size)).await;
            assert_eq!(end.unwrap(), LoopEnd::Exhausted);
            stats
        };
        assert_eq!(stats.succeeded, 300);
        assert_eq!(
            task.max.load(SeqCst),
            concurrency,
            "max in flight with concurrency {concurrency}, batch {batch_size}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn non_streaming_ends_once_drained_without_stalling() {
    let input = Arc::new(ScriptedConnector::with_count(25));
    let started = Instant::now();
    let task = Arc::new(Tracked {
        delay: Duration::from_millis(40),
        ..Tracked::default()
    });
    let (end, stats) = run(task, &input, policy(5, 10)).await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!(stats.succeeded, 25);
    // 25 transactions, 5 at a time, 40 ms each: no stall at batch boundaries.
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    let fetches = input.fetches();
    assert_eq!(fetches.last().unwrap().2, 0, "the last fetch found nothing");
    assert_eq!(
        input.drained_checks(),
        1,
        "the connector is asked only once nothing is in flight"
    );
}

#[tokio::test(start_paused = true)]
async fn a_finite_run_ends_without_a_backoff_when_its_last_transactions_end_during_a_fetch() {
    // Fetches take 30 ms, transactions 10 ms: the second fetch starts beside the batch
    // and comes back empty after it ended. Nothing is in flight to cut a backoff short,
    // so the loop looks again at once (this time for the end) instead of sleeping the
    // empty-fetch backoff (100 ms) first.
    let input = Arc::new(ScriptedConnector::with_count(4).fetch_delay(Duration::from_millis(30)));
    let started = Instant::now();
    let task = Arc::new(Tracked {
        delay: Duration::from_millis(10),
        ..Tracked::default()
    });
    let (end, stats) = run(task, &input, policy(4, 4)).await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!(stats.succeeded, 4);
    let at: Vec<(u128, usize)> = input
        .fetches()
        .iter()
        .map(|(when, _, returned)| ((*when - started).as_millis(), *returned))
        .collect();
    assert_eq!(at, [(30, 4), (60, 0), (90, 0)]);
    assert_eq!(started.elapsed(), Duration::from_millis(90));
    assert_eq!(input.drained_checks(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_finite_run_delivers_again_what_slow_transactions_requeued() {
    let input = Arc::new(ScriptedConnector::with_count(20));
    let mut requeue = policy(4, 4);
    requeue.on_failure = FailureAction::Requeue;
    let task = Arc::new(SecondTimeLucky {
        delay: Duration::from_millis(50),
        ..SecondTimeLucky::default()
    });
    let (end, stats) = run(task, &input, requeue).await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!((stats.requeued, stats.succeeded), (20, 20));
    assert!(input.queue().is_empty(), "nothing left behind");
}

#[tokio::test(start_paused = true)]
async fn a_finite_run_waits_until_the_connector_reports_drained() {
    // The transport says "more to come" twice; the messages arrive at 250 ms.
    let input = Arc::new(ScriptedConnector::new([]).undrained_checks(2));
    let late = input.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        late.queue()
            .extend((0..5).map(|n| Transaction::new(format!("late-{n}"), "{}")));
    });
    let (end, stats) = run(Arc::new(Tracked::default()), &input, policy(2, 10)).await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!(stats.succeeded, 5, "the late messages were processed");
    assert_eq!(input.drained_checks(), 3);
}

#[tokio::test(start_paused = true)]
async fn stale_settlements_are_counted_apart() {
    let input = Arc::new(ScriptedConnector::with_count(10).stale_settles(3));
    let (end, stats) = run(Arc::new(Tracked::default()), &input, policy(2, 10)).await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!(stats.processed, 10);
    assert_eq!(
        (stats.succeeded, stats.settle_stale, stats.settle_failed),
        (7, 3, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn streaming_backs_off_on_empty_fetches_and_resets_after_work() {
    let input = Arc::new(ScriptedConnector::new([]));
    let mut streaming = policy(2, 10);
    streaming.r#loop.streaming = true;
    streaming.fetch.empty.backoff = Duration::from_millis(100);
    streaming.fetch.empty.backoff_multiplier = 2.0;
    streaming.fetch.empty.backoff_cap = Duration::from_secs(1);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let cx = Context::builder("test").input(input.clone()).build();
    let running = tokio::spawn(
        ConsumeLoop::consumer(Arc::new(Tracked::default()), cx, Arc::new(streaming))
            .shutdown(shutdown.clone())
            .run(),
    );
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(3200)).await;
    input.queue().extend([
        Transaction::new("late-1", "{\"n\":1}"),
        Transaction::new("late-2", "{\"n\":2}"),
    ]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    shutdown.cancel();
    assert_eq!(running.await.unwrap().unwrap(), LoopEnd::ShutDown);

    let at: Vec<(u128, usize)> = input
        .fetches()
        .iter()
        .map(|(when, _, returned)| ((*when - start).as_millis(), *returned))
        .collect();
    assert_eq!(
        at,
        [
            (0, 0),
            (100, 0),
            (300, 0),
            (700, 0),
            (1500, 0),
            (2500, 0),
            (3500, 2),
            (3500, 0),
            (3600, 0),
            (3800, 0),
        ]
    );
    assert_eq!(input.acked(), ["late-1", "late-2"]);
}

#[tokio::test(start_paused = true)]
async fn failing_fetches_are_retried_then_fail_the_worker() {
    let input = Arc::new(ScriptedConnector::with_count(10).failing_fetches(2));
    let mut retrying = policy(2, 5);
    retrying.fetch.retry = fast_retry(3);
    let (end, stats) = run(Arc::new(Tracked::default()), &input, retrying.clone()).await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!(stats.succeeded, 10);

    let input = Arc::new(ScriptedConnector::with_count(10).failing_fetches(3));
    let (end, _) = run(Arc::new(Tracked::default()), &input, retrying.clone()).await;
    assert_eq!(end.unwrap_err().to_string(), "scripted fetch failure");
    assert_eq!(input.queue().len(), 10, "nothing was fetched, nothing lost");

    let input = Arc::new(ScriptedConnector::with_count(10).panicking_fetches(1));
    let (end, _) = run(Arc::new(Tracked::default()), &input, retrying).await;
    assert_eq!(
        end.unwrap_err().to_string(),
        "panicked: scripted fetch panic"
    );
}

/// Panics on odd `n`.
struct PanicsOnOdd;

impl Consumer for PanicsOnOdd {
    type Output = ();

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
        assert!(n_of(tx) % 2 == 0, "odd input");
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_task_never_stops_the_loop() {
    let input = Arc::new(ScriptedConnector::with_count(10));
    let (end, stats) = run(Arc::new(PanicsOnOdd), &input, policy(3, 4)).await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!(
        (stats.succeeded, stats.failed_system, stats.retries),
        (5, 5, 0)
    );
    for (_, failure) in input.queue().dead_letters() {
        assert_eq!(failure.message, "panicked: odd input");
    }
}

/// Every attempt takes 200 ms and fails with a system error.
struct SlowAndFailing {
    exception_saw: Mutex<Option<String>>,
}

impl Consumer for SlowAndFailing {
    type Output = ();

    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Err(TaskError::system("slow and failing"))
    }

    async fn handle_process_exception(
        &self,
        _: &Context,
        _: &Transaction,
        error: &TaskError,
    ) -> Result<(), TaskError> {
        *self.exception_saw.lock().unwrap() = Some(error.to_string());
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_transaction_budget_ends_the_retries_and_still_runs_the_exception_step() {
    let input = Arc::new(ScriptedConnector::with_count(1));
    let mut budgeted = policy(1, 1);
    budgeted.process.retry = RetryPolicy {
        max_attempts: 10,
        timeout: Duration::from_secs(1),
        ..fast_retry(10)
    };
    budgeted.transaction.timeout = Some(Duration::from_millis(500));
    let task = Arc::new(SlowAndFailing {
        exception_saw: Mutex::default(),
    });
    let started = Instant::now();
    let (_, stats) = run(task.clone(), &input, budgeted).await;
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    assert_eq!(stats.failed_timeout, 1);
    assert_eq!(
        task.exception_saw.lock().unwrap().as_deref(),
        Some("transaction budget of 500ms exhausted")
    );
    let letters = input.queue().dead_letters();
    assert_eq!(letters[0].1.category, Category::Timeout);
}

#[tokio::test(start_paused = true)]
async fn every_fetched_transaction_is_settled_exactly_once() {
    let input = Arc::new(ScriptedConnector::with_count(200));
    let task = Arc::new(ByRemainder {
        attempts: Mutex::default(),
    });
    let _ = run(task, &input, policy(16, 9)).await;
    let mut seen = HashMap::new();
    for (id, settlement) in input.settlements() {
        assert!(
            matches!(settlement, Settlement::Ack | Settlement::DeadLetter(_)),
            "{settlement:?}"
        );
        *seen.entry(id).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 200);
    assert!(seen.values().all(|count| *count == 1));
}

/// Records, for each call, the transaction, its delivery count and the attempt number;
/// fails the first attempt of every delivery (retried), and the whole first delivery
/// (requeued by policy).
#[derive(Default)]
struct Observer {
    seen: Mutex<Vec<(String, u32, Option<u32>)>>,
}

impl Observer {
    fn observe(&self, tx: &Transaction) -> Result<(), TaskError> {
        let attempt = ergon_core::envelope::attempt_number();
        self.seen
            .lock()
            .unwrap()
            .push((tx.id().to_owned(), tx.deliveries(), attempt));
        match (tx.deliveries(), attempt) {
            (_, Some(1)) => Err(TaskError::system("first attempt fails")),
            (1, _) => Err(TaskError::business("first delivery refused")),
            _ => Ok(()),
        }
    }

    fn seen(&self) -> Vec<(String, u32, Option<u32>)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Consumer for Observer {
    type Output = ();

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
        self.observe(tx)
    }
}

impl ergon_core::BlockingConsumer for Observer {
    type Output = ();

    fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
        self.observe(tx)
    }
}

/// What an observer sees of one transaction through two deliveries of two attempts each.
const OBSERVED: [(&str, u32, Option<u32>); 4] = [
    ("tx-0", 1, Some(1)),
    ("tx-0", 1, Some(2)),
    ("tx-0", 2, Some(1)),
    ("tx-0", 2, Some(2)),
];

fn requeue_policy() -> ConsumerPolicy {
    let mut requeue = policy(1, 1);
    requeue.process.retry = fast_retry(2);
    requeue.on_failure = FailureAction::Requeue;
    requeue
}

#[tokio::test(start_paused = true)]
async fn tasks_see_the_attempt_number_and_the_delivery_count() {
    let input = Arc::new(ScriptedConnector::with_count(1));
    let task = Arc::new(Observer::default());
    let (end, stats) = run(task.clone(), &input, requeue_policy()).await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!((stats.requeued, stats.succeeded), (1, 1));
    let expected: Vec<(String, u32, Option<u32>)> = OBSERVED
        .iter()
        .map(|(id, n, a)| ((*id).to_owned(), *n, *a))
        .collect();
    assert_eq!(task.seen(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_tasks_see_them_too_on_their_pool_thread() {
    let input = Arc::new(ScriptedConnector::with_count(1));
    let task = Arc::new(Observer::default());
    let pool = ergon_core::runner::ThreadPool::new("observer", 1, Arc::default()).unwrap();
    let on_pool = Arc::new(ergon_core::runner::OnPool::new(task.clone(), pool));
    let (end, _) = run(on_pool, &input, requeue_policy()).await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    let expected: Vec<(String, u32, Option<u32>)> = OBSERVED
        .iter()
        .map(|(id, n, a)| ((*id).to_owned(), *n, *a))
        .collect();
    assert_eq!(task.seen(), expected);
}

#[tokio::test(start_paused = true)]
async fn a_transaction_delivered_too_often_is_dead_lettered_before_any_step() {
    // Always refused, always requeued: without a bound it would cycle forever.
    let input = Arc::new(ScriptedConnector::new([Transaction::new(
        "poison",
        "{\"n\":1}",
    )]));
    let mut forever = policy(1, 1);
    forever.on_failure = FailureAction::Requeue;
    forever.transaction.max_deliveries = 3;
    let refuse = Arc::new(ByRemainder {
        attempts: Mutex::default(),
    });
    let (end, stats) = run(refuse.clone(), &input, forever).await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!(
        refuse.attempts.lock().unwrap().get(&1),
        Some(&3),
        "three deliveries ran, the fourth did not"
    );
    assert_eq!((stats.requeued, stats.dead_lettered), (3, 1));
    let letters = input.queue().dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].0.deliveries(), 4);
    assert!(
        letters[0].1.message.contains("max_deliveries = 3"),
        "{}",
        letters[0].1.message
    );
    assert_eq!(letters[0].1.attempts, 0, "no step ran");
}

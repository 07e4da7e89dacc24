//! The observer interface: what an observer hears from a consume loop (loop, watched
//! batch, transaction with its settlement, steps, attempts, a nested `run_fn`), which
//! scope is current where, and that an observer left at its defaults runs the loop
//! unchanged.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ergon_core::envelope::run_fn;
use ergon_core::observe::{
    self, AttemptEnd, LoopInfo, Observer, ObserverLayer, Scope, StepInfo, TransactionEnd,
};
use ergon_core::policy::RetryPolicy;
use ergon_core::runner::{ConsumeLoop, LoopEnd};
use ergon_core::test_util::ScriptedConnector;
use ergon_core::{Category, Consumer, ConsumerPolicy, Context, TaskError, Transaction};
use tracing_subscriber::layer::SubscriberExt as _;

/// Numbers every scope it opens (`#n`, in its first word) and logs each event.
#[derive(Default)]
struct Recorder {
    opened: AtomicU64,
    events: Mutex<Vec<String>>,
}

impl Recorder {
    fn open(&self) -> Scope {
        Scope::new([self.opened.fetch_add(1, SeqCst) + 1, 0, 0, 0, 0, 0])
    }

    fn log(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

fn n(scope: &Scope) -> u64 {
    scope.words()[0]
}

impl Observer for Recorder {
    fn loop_started(&self, parent: Option<&Scope>, info: &LoopInfo<'_>) -> Option<Scope> {
        let scope = self.open();
        self.log(format!(
            "loop #{} task={} worker={} parent={:?}",
            n(&scope),
            info.task,
            info.worker,
            parent.map(n)
        ));
        Some(scope)
    }

    fn loop_ended(&self, scope: Scope) {
        self.log(format!("end loop #{}", n(&scope)));
    }

    fn watch_batch(&self) -> bool {
        true
    }

    fn batch_started(&self, parent: &Scope, size: usize) -> Option<Scope> {
        let scope = self.open();
        self.log(format!(
            "batch #{} of #{} size={size}",
            n(&scope),
            n(parent)
        ));
        Some(scope)
    }

    fn batch_ended(&self, scope: Scope, _: &Scope, _: usize) {
        self.log(format!("end batch #{}", n(&scope)));
    }

    fn transaction_started(
        &self,
        tx: &Transaction,
        batch: Option<&Scope>,
        parent: &Scope,
    ) -> Option<Scope> {
        let scope = self.open();
        self.log(format!(
            "transaction #{} {} batch={:?} loop=#{}",
            n(&scope),
            tx.id(),
            batch.map(n),
            n(parent)
        ));
        Some(scope)
    }

    fn transaction_ended(&self, scope: Scope, end: &TransactionEnd<'_>) {
        self.log(format!(
            "end transaction #{} {} {} settlement={:?} error={:?}",
            n(&scope),
            end.tx.id(),
            end.operation,
            end.settlement,
            end.error
        ));
    }

    fn step_started(&self, parent: &Scope, step: &StepInfo) -> Option<Scope> {
        let scope = self.open();
        self.log(format!(
            "step #{} {} under #{} max_attempts={}",
            n(&scope),
            step.name,
            n(parent),
            step.max_attempts
        ));
        Some(scope)
    }

    fn attempt_started(&self, step: &mut Scope, number: u32) -> Scope {
        let scope = self.open();
        step.words_mut()[1] = n(&scope);
        self.log(format!("attempt #{} {number} of #{}", n(&scope), n(step)));
        scope
    }

    fn attempt_ended(&self, step: &mut Scope, end: &AttemptEnd) {
        // The attempt under way is kept in its step's second word.
        self.log(format!(
            "end attempt #{} {} error={:?} retrying={}",
            step.words()[1],
            end.number,
            end.error,
            end.retrying
        ));
    }

    fn step_ended(&self, scope: Scope, _: &Scope, step: &StepInfo, error: Option<Category>) {
        self.log(format!(
            "end step #{} {} error={error:?}",
            n(&scope),
            step.name
        ));
    }
}

/// Fails its first attempt with a system error; the second looks a value up in a
/// `run_fn` of its own. Logs the scope current in each attempt and in the lookup.
struct FlakyOnce {
    recorder: Arc<Recorder>,
    calls: AtomicU64,
}

impl Consumer for FlakyOnce {
    type Output = ();

    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        let current = observe::current().map(|s| n(&s));
        self.recorder.log(format!("task runs in {current:?}"));
        if self.calls.fetch_add(1, SeqCst) == 0 {
            return Err(TaskError::system("flaky"));
        }
        let recorder = self.recorder.clone();
        run_fn("lookup", &RetryPolicy::once(Duration::from_secs(1)), |_| {
            let recorder = recorder.clone();
            async move {
                let current = observe::current().map(|s| n(&s));
                recorder.log(format!("lookup runs in {current:?}"));
                Ok(())
            }
        })
        .await
        .result
    }
}

fn policy() -> ConsumerPolicy {
    let mut policy = ConsumerPolicy::default();
    policy.fetch.batch_size = 1;
    policy.process.retry.max_attempts = 2;
    policy.process.retry.backoff = Duration::from_millis(1);
    policy
}

#[tokio::test(flavor = "current_thread")]
async fn an_observer_hears_the_whole_tree_of_a_retried_transaction() {
    let recorder = Arc::new(Recorder::default());
    let subscriber = tracing_subscriber::registry().with(ObserverLayer::new(recorder.clone()));
    let _default = tracing::subscriber::set_default(subscriber);
    let input = Arc::new(ScriptedConnector::new([Transaction::new("t-1", "{}")]));
    let task = Arc::new(FlakyOnce {
        recorder: recorder.clone(),
        calls: AtomicU64::new(0),
    });
    let cx = Context::builder("flaky").input(input.clone()).build();
    let end = ConsumeLoop::consumer(task, cx, Arc::new(policy()))
        .run()
        .await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!(input.acked(), ["t-1"]);

    let events = recorder.events();
    assert_eq!(events[0], "loop #1 task=flaky worker=0 parent=None");
    assert_eq!(events.last().unwrap(), "end loop #1");
    // The fetches are steps under the loop, with an attempt each: two at least (the
    // batch's, and the empty one that ended the loop).
    let fetch_steps: Vec<String> = events
        .iter()
        .filter(|e| e.starts_with("step #") && e.contains(" fetch under #1 "))
        .map(|e| number_after(e, "step #"))
        .collect();
    assert!(fetch_steps.len() >= 2, "{events:#?}");
    let fetch_attempts: Vec<String> = events
        .iter()
        .filter(|e| {
            fetch_steps
                .iter()
                .any(|s| e.ends_with(&format!(" of #{s}")))
        })
        .map(|e| number_after(e, "attempt #"))
        .collect();
    let fetching = |e: &&String| {
        let named = [&fetch_steps, &fetch_attempts];
        named
            .iter()
            .any(|ids| ids.iter().any(|id| e.contains(&format!("#{id} "))))
    };
    // Everything else, exactly and in order, scopes renumbered by first appearance.
    let rest: Vec<&String> = events.iter().filter(|e| !fetching(e)).collect();
    let expected = [
        "loop #1 task=flaky worker=0 parent=None",
        "batch #2 of #1 size=1",
        "transaction #3 t-1 batch=Some(2) loop=#1",
        "end batch #2",
        "step #4 process under #3 max_attempts=2",
        "attempt #5 1 of #4",
        "task runs in Some(5)",
        "end attempt #5 1 error=Some(System) retrying=true",
        "attempt #6 2 of #4",
        "task runs in Some(6)",
        "step #7 lookup under #6 max_attempts=1",
        "attempt #8 1 of #7",
        "lookup runs in Some(8)",
        "end attempt #8 1 error=None retrying=false",
        "end step #7 lookup error=None",
        "end attempt #6 2 error=None retrying=false",
        "end step #4 process error=None",
        "step #9 success under #3 max_attempts=3",
        "attempt #10 1 of #9",
        "end attempt #10 1 error=None retrying=false",
        "end step #9 success error=None",
        "end transaction #3 t-1 process settlement=Some(\"ack\") error=None",
        "end loop #1",
    ];
    assert_eq!(renumbered(&rest), expected, "all events: {events:#?}");
}

/// The number after `prefix` in `event`.
fn number_after(event: &str, prefix: &str) -> String {
    let rest = &event[event.find(prefix).expect("prefix") + prefix.len()..];
    rest.split(' ').next().unwrap().to_owned()
}

/// `events` with every scope number (`#n`, `Some(n)`) replaced by its rank of first
/// appearance.
fn renumbered(events: &[&String]) -> Vec<String> {
    let mut ranks: Vec<String> = Vec::new();
    let mut rank = |n: &str| {
        let at = ranks.iter().position(|r| r == n).unwrap_or_else(|| {
            ranks.push(n.to_owned());
            ranks.len() - 1
        });
        (at + 1).to_string()
    };
    events
        .iter()
        .map(|event| {
            let mut out = String::new();
            let mut rest = event.as_str();
            while let Some(at) = rest.find(|c: char| c.is_ascii_digit()) {
                let marked = rest[..at].ends_with('#') || rest[..at].ends_with("Some(");
                let len = rest[at..]
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len() - at);
                let number = &rest[at..at + len];
                out.push_str(&rest[..at]);
                out.push_str(&if marked {
                    rank(number)
                } else {
                    number.to_owned()
                });
                rest = &rest[at + len..];
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// Watches nothing: every method left at its default.
struct Quiet;

impl Observer for Quiet {}

#[tokio::test(flavor = "current_thread")]
async fn an_observer_at_its_defaults_changes_nothing() {
    let subscriber = tracing_subscriber::registry().with(ObserverLayer::new(Arc::new(Quiet)));
    let _default = tracing::subscriber::set_default(subscriber);
    let input = Arc::new(ScriptedConnector::with_count(5));
    let task = Arc::new(Current);
    let cx = Context::builder("quiet").input(input.clone()).build();
    let end = ConsumeLoop::consumer(task, cx, Arc::new(ConsumerPolicy::default()))
        .run()
        .await;
    assert_eq!(end.unwrap(), LoopEnd::Exhausted);
    assert_eq!(input.acked().len(), 5);
}

/// Fails when any scope is current: nothing is watched, so none may be.
struct Current;

impl Consumer for Current {
    type Output = ();

    async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> {
        match observe::current() {
            None => Ok(()),
            Some(scope) => Err(TaskError::business(format!("unexpected scope {scope:?}"))),
        }
    }
}

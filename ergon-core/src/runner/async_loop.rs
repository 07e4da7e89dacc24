//! The consume loop: fetch batches, keep up to `concurrency` transactions in flight,
//! settle each one, stop cleanly. It drives every role through its
//! [`Lifecycle`]; blocking tasks reach it through [`OnPool`](super::OnPool), so their
//! code runs on their thread pool while the loop stays on the runtime.
//!
//! One worker is one tokio task driving its transactions as futures in a
//! `FuturesUnordered`: no spawn and no semaphore per transaction (the in-flight set *is*
//! the bound), so a transaction costs a few allocations and no cross-thread wake-up. Run
//! more workers (`workers = N`) to use more cores; CPU-bound work belongs on the blocking
//! pool, not here.
//!
//! The next batch is fetched while the current one drains (whenever fewer than
//! `max(batch_size, concurrency)` transactions are buffered), so concurrency stays full
//! across batch boundaries.
//!
//! A transaction of a task with a journal gives its slot back once its outcome is
//! decided: its journal record and settlement go on beside the next transactions
//! (`Settling`), at most `max(batch_size, concurrency)` of them at a time. The
//! journal's group commit then takes the completions of many slots' worth of
//! transactions at once, instead of holding the slots while it writes (`journal_cost`
//! went from 0.31 to about 0.5 of the journal-less speed, BENCHMARKS.md). A task without
//! a journal settles in its slot: its settlement waits for nothing. A transaction counts
//! as in flight until it is settled.
//!
//! A finite (not streaming) loop ends only when its input is drained: a fetch came back
//! empty while nothing was in flight or buffered, and the connector confirmed it
//! ([`Connector::drained`]) — and the journal, when the task has one, owes the run
//! nothing ([`Journal::owes`](crate::journal::Journal::owes)), and, when the loop shares a
//! [`RunQuiet`], every loop of the run is drained too. An empty fetch with work still in flight (which may be
//! requeued, or hold a broker's prefetch) only waits, with the `fetch.empty` backoff cut
//! short whenever a transaction finishes, and fetches again.
//!
//! Stopping, for any reason (shutdown signal, loop timeout, fetch failure), works the same
//! way: no new fetch, buffered transactions not yet started are requeued, in-flight ones
//! may finish until `drain_timeout`, and the ones still running then are cancelled and
//! requeued. A transaction is settled exactly once either way.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::Notify;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::batches::OpenBatches;
use super::stats::StatsHook;
use super::{LimitBudget, RunQuiet, WorkerStats};
use crate::connector::{Connector, Failure, SettleOutcome, Settlement};
use crate::context::Context;
use crate::delivery::Delivery;
use crate::envelope::Attempted;
use crate::error::{Category, TaskError};
use crate::journal::{self, Journal};
use crate::lifecycle::{
    ConsumerLifecycle, HybridLifecycle, Lifecycle, ProducerLifecycle, TransactionOutcome,
};
use crate::observe::watch::{BatchWatch, LoopWatch, Polled, TransactionWatch, Watched};
use crate::observe::{self, InScope, LoopInfo};
use crate::policy::{ConsumerPolicy, HybridPolicy, ProducerPolicy, RetryPolicy, RolePolicy};
use crate::settle::settle;
use crate::step::Step;
use crate::step::fetch::fetch;
use crate::task::{Consumer, Hybrid, Producer};
use crate::telemetry::timing;
use crate::transaction::Transaction;

/// Why a consume loop ended (without error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopEnd {
    /// Not streaming, and the input is drained: an empty fetch with nothing in flight,
    /// confirmed by [`Connector::drained`].
    Exhausted,
    /// The task's `limit` was reached.
    LimitReached,
    /// The loop's `timeout` was reached.
    TimedOut,
    /// Shutdown was requested.
    ShutDown,
}

/// One worker's loop for a task in its role (`L`, a [`Lifecycle`]).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use ergon_core::runner::{ConsumeLoop, LoopEnd};
/// use ergon_core::test_util::ScriptedConnector;
/// use ergon_core::{Consumer, Context, ConsumerPolicy, TaskError, Transaction};
///
/// struct Noop;
/// impl Consumer for Noop {
///     type Output = ();
///     async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> { Ok(()) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let input = Arc::new(ScriptedConnector::with_count(10));
/// let cx = Context::builder("noop").input(input.clone()).build();
/// let end = ConsumeLoop::consumer(Arc::new(Noop), cx, Arc::new(ConsumerPolicy::default())).run().await;
/// assert_eq!(end.unwrap(), LoopEnd::Exhausted);
/// assert_eq!(input.acked().len(), 10);
/// # }
/// ```
pub struct ConsumeLoop<L: Lifecycle> {
    lifecycle: Arc<L>,
    cx: Context,
    policy: Arc<L::Policy>,
    limit: Option<Arc<LimitBudget>>,
    stats: Arc<WorkerStats>,
    shutdown: CancellationToken,
    quiet: Option<Arc<RunQuiet>>,
}

/// How a transaction's future ended.
#[allow(
    clippy::large_enum_variant,
    reason = "returned once per transaction and consumed at once; boxing would allocate on the hot path"
)]
enum Finished {
    Done(Settled),
    Abandoned(Delivery),
}

/// A transaction's outcome, its settlement and their times.
pub(crate) struct Settled {
    pub(crate) outcome: TransactionOutcome,
    pub(crate) settle: Attempted<SettleOutcome>,
    /// Microseconds of the whole transaction, while timing is on.
    pub(crate) micros: Option<u32>,
}

/// A fetch: how many were asked for, whether the batch is sampled, what came back, how
/// long it took (while timing is on), whether it may end a finite loop (nothing of the
/// worker's was in flight or buffered when it started) and, for such a fetch that came
/// back empty, whether the input is drained.
struct Fetched {
    want: usize,
    sampled: bool,
    result: Attempted<Vec<Delivery>>,
    micros: Option<u32>,
    may_end: bool,
    drained: bool,
}

type FetchFuture<'a> = Pin<Box<dyn Future<Output = Fetched> + Send + 'a>>;

/// The transactions in flight that gave their slot back and are being journaled and
/// settled, and the loop's wake-up when one more did.
#[derive(Default)]
struct Settling {
    count: AtomicUsize,
    freed: Notify,
}

impl Settling {
    /// A decided transaction gives its slot back.
    fn enter(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.freed.notify_one();
    }

    /// It is settled.
    fn leave(&self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl<T: Consumer> ConsumeLoop<ConsumerLifecycle<T>> {
    /// A loop for the consumer `task`.
    pub fn consumer(task: Arc<T>, cx: Context, policy: Arc<ConsumerPolicy>) -> Self {
        Self::new(Arc::new(ConsumerLifecycle::new(task)), cx, policy)
    }
}

impl<T: Producer> ConsumeLoop<ProducerLifecycle<T>> {
    /// A loop for the producer `task`.
    pub fn producer(task: Arc<T>, cx: Context, policy: Arc<ProducerPolicy>) -> Self {
        Self::new(Arc::new(ProducerLifecycle::new(task)), cx, policy)
    }
}

impl<T: Hybrid> ConsumeLoop<HybridLifecycle<T>> {
    /// A loop for the hybrid `task`.
    pub fn hybrid(task: Arc<T>, cx: Context, policy: Arc<HybridPolicy>) -> Self {
        Self::new(Arc::new(HybridLifecycle::new(task)), cx, policy)
    }
}

impl<L: Lifecycle> ConsumeLoop<L> {
    /// A loop for `lifecycle` reading from its source (the input connector of `cx`, or a
    /// producer's generator) under `policy`. The policy's `limit` applies to this loop
    /// alone unless a shared budget is given with [`ConsumeLoop::limit`].
    pub fn new(lifecycle: Arc<L>, cx: Context, policy: Arc<L::Policy>) -> Self {
        let limit = policy
            .loop_policy()
            .limit
            .map(|n| Arc::new(LimitBudget::new(n)));
        Self {
            lifecycle,
            cx,
            policy,
            limit,
            stats: Arc::default(),
            shutdown: CancellationToken::new(),
            quiet: None,
        }
    }

    /// Shares a limit budget with the task's other workers.
    pub fn limit(mut self, budget: Option<Arc<LimitBudget>>) -> Self {
        self.limit = budget;
        self
    }

    /// Counts into `stats` (read them live from elsewhere).
    pub fn stats(mut self, stats: Arc<WorkerStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Ends this (finite) loop only when every loop sharing `run` is drained at once, not
    /// as soon as its own input is: see [`RunQuiet`].
    pub fn quiet(mut self, run: Option<Arc<RunQuiet>>) -> Self {
        self.quiet = run;
        self
    }

    /// Stops the loop, with a drain, when `token` is cancelled.
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// Runs until the input is exhausted, the limit or timeout is reached, or shutdown.
    ///
    /// # Errors
    ///
    /// The task has no source (input connector), or fetching failed after its retries (in-flight
    /// transactions are drained and buffered ones requeued first).
    ///
    /// Observed when the current `tracing` subscriber carries an
    /// [`Observer`](crate::observe::Observer) ([`observe::observer`]): the loop, then per
    /// watched batch everything below it.
    pub async fn run(self) -> Result<LoopEnd, TaskError> {
        let watch = observe::observer().and_then(|observer| {
            let info = self.loop_info();
            LoopWatch::start(observer, &info)
        });
        match &watch {
            None => self.run_watched(None).await,
            Some(watch) => {
                let watched = watch.watched();
                let running = self.run_watched(Some(watched));
                Polled::new(
                    InScope::new(running, Some(*watched.scope)),
                    watched.observer,
                )
                .await
            }
        }
    }

    /// The loop, as its observer is told when it starts.
    fn loop_info(&self) -> LoopInfo<'_> {
        let (policy, fetch) = (self.policy.loop_policy(), self.policy.fetch_policy());
        LoopInfo {
            task: self.cx.task_name(),
            worker: self.cx.worker(),
            system: self.cx.input_system(),
            destination: self.cx.input_destination(),
            concurrency: policy.concurrency,
            batch_size: fetch.batch_size,
            streaming: policy.streaming,
        }
    }

    async fn run_watched(self, watched: Option<Watched<'_>>) -> Result<LoopEnd, TaskError> {
        let input = self.lifecycle.source(&self.cx)?;
        let loop_policy = self.policy.loop_policy();
        let fetch_policy = self.policy.fetch_policy();
        let concurrency = loop_policy.concurrency;
        let batch_size = fetch_policy.batch_size;
        let low_water = batch_size.max(concurrency);
        let journaled = self.cx.journal().is_some();
        let empty_backoff = fetch_policy.empty.as_backoff();
        let task_name = self.cx.task_name();

        // The transactions fetched and not started yet, and their batches' watches.
        let mut buffer: VecDeque<Delivery> = VecDeque::with_capacity(low_water + batch_size);
        let mut batches = OpenBatches::default();
        // Declared before `in_flight`, whose futures borrow them.
        let drain = CancellationToken::new();
        let settling = Settling::default();
        let mut in_flight = FuturesUnordered::new();
        let mut fetching: Option<FetchFuture<'_>> = None;
        let mut waiting: Option<Pin<Box<Sleep>>> = None;
        let mut empty_streak = 0;
        let mut source_end: Option<LoopEnd> = None;
        let mut stop: Option<LoopEnd> = None;
        let mut fetch_error: Option<TaskError> = None;
        let mut loop_deadline = loop_policy.timeout.map(|t| Box::pin(tokio::time::sleep(t)));
        let mut quiet = match (&self.quiet, loop_policy.streaming) {
            (Some(run), false) => Some(run.join()),
            _ => None,
        };
        let mut drain_deadline: Option<Pin<Box<Sleep>>> = None;
        // Another loop of the run stopping work may have handed this one some: look again.
        let run = quiet.as_ref().map(|quiet| quiet.run().clone());

        loop {
            if stop.is_none() {
                let reason = if self.shutdown.is_cancelled() {
                    Some(LoopEnd::ShutDown)
                } else if loop_deadline.as_ref().is_some_and(|d| d.is_elapsed()) {
                    Some(LoopEnd::TimedOut)
                } else {
                    None
                };
                if let Some(reason) = reason {
                    stop = Some(reason);
                    waiting = None;
                    drain_deadline = Some(Box::pin(tokio::time::sleep(loop_policy.drain_timeout)));
                    batches.clear();
                    self.requeue_all(&*input, buffer.drain(..), false).await;
                }
            }

            while in_flight.len() - settling.count() < concurrency
                && in_flight.len() < concurrency + low_water
            {
                let Some(delivery) = buffer.pop_front() else {
                    break;
                };
                let watch = watched.and_then(|watched| {
                    batches.start_next(|batch| {
                        let tx = delivery.transaction();
                        let batch = batch.map(BatchWatch::scope);
                        TransactionWatch::start(watched, tx, batch)
                    })
                });
                in_flight.push(self.drive(&*input, delivery, watch, &drain, &settling));
            }
            self.stats.set_in_flight(in_flight.len());

            let open = source_end.is_none() && stop.is_none() && fetch_error.is_none();
            if open && fetching.is_none() && waiting.is_none() && buffer.len() < low_water {
                let want = self
                    .limit
                    .as_ref()
                    .map_or(batch_size, |l| l.reserve(batch_size));
                if want == 0 {
                    source_end = Some(LoopEnd::LimitReached);
                } else {
                    let input = &*input;
                    let journal = self.cx.journal().map(|journal| &**journal);
                    let stats = &*self.stats;
                    // Nothing of this worker's can come back to the input while this fetch
                    // runs: an empty answer may mean the end, if the connector agrees.
                    let may_end =
                        !loop_policy.streaming && in_flight.is_empty() && buffer.is_empty();
                    stats.record_fetch_started();
                    fetching = Some(Box::pin(async move {
                        let sampled = watched.is_some_and(|watched| watched.observer.watch_batch());
                        let started = timing::start();
                        let result = fetch(
                            input,
                            &fetch_policy.retry,
                            want,
                            watched.filter(|_| sampled),
                        )
                        .await;
                        let micros = started.map(timing::micros_since);
                        let empty = result.result.as_ref().is_ok_and(Vec::is_empty);
                        let drained = may_end && empty && drained(input, journal, task_name).await;
                        Fetched {
                            want,
                            sampled,
                            result,
                            micros,
                            may_end,
                            drained,
                        }
                    }));
                }
            }

            let idle = in_flight.is_empty() && fetching.is_none() && buffer.is_empty();
            if idle && (source_end.is_some() || stop.is_some() || fetch_error.is_some()) {
                break;
            }

            tokio::select! {
                biased;
                fetched = async { fetching.as_mut().expect("guarded").await }, if fetching.is_some() => {
                    fetching = None;
                    let want = fetched.want;
                    self.stats.record_fetch(&fetched.result, fetched.micros);
                    match fetched.result.result {
                        Ok(batch) => {
                            if let Some(limit) = &self.limit {
                                limit.give_back(want.saturating_sub(batch.len()));
                            }
                            let run_quiet = quiet.as_mut().is_none_or(|quiet| {
                                if fetched.drained { quiet.idle() } else { true }
                            });
                            if fetched.drained && run_quiet {
                                source_end = Some(LoopEnd::Exhausted);
                            } else if batch.is_empty() {
                                // What was in flight when this fetch started has ended since
                                // (a finite loop's last transactions): nothing would cut a
                                // backoff short now, so look again at once, for the end.
                                let ended_since = !fetched.may_end
                                    && !loop_policy.streaming
                                    && in_flight.is_empty()
                                    && buffer.is_empty();
                                if !ended_since {
                                    empty_streak += 1;
                                    let wait = empty_backoff.delay_after(empty_streak);
                                    waiting = Some(Box::pin(tokio::time::sleep(wait)));
                                }
                            } else {
                                empty_streak = 0;
                                if let Some(quiet) = &mut quiet {
                                    quiet.busy();
                                }
                                if stop.is_some() {
                                    self.requeue_all(&*input, batch.into_iter(), false).await;
                                } else {
                                    if let Some(watched) = watched {
                                        let watch = fetched
                                            .sampled
                                            .then(|| BatchWatch::start(watched, batch.len()))
                                            .flatten();
                                        batches.push(watch, batch.len());
                                    }
                                    buffer.extend(batch);
                                }
                            }
                        }
                        Err(err) => {
                            if let Some(limit) = &self.limit {
                                limit.give_back(want);
                            }
                            tracing::error!(
                                task = task_name,
                                attempts = fetched.result.attempts,
                                error = %err.chain(),
                                "Fetch failed after its retries; stopping this worker"
                            );
                            drain_deadline = Some(Box::pin(tokio::time::sleep(loop_policy.drain_timeout)));
                            batches.clear();
                            self.requeue_all(&*input, buffer.drain(..), false).await;
                            fetch_error = Some(err);
                        }
                    }
                }
                Some(finished) = in_flight.next(), if !in_flight.is_empty() => {
                    if !loop_policy.streaming {
                        // What it freed (a requeue, a broker's prefetch) may be fetched now.
                        waiting = None;
                    }
                    match finished {
                        Finished::Done(settled) => self.stats.record(&settled),
                        Finished::Abandoned(delivery) => {
                            self.requeue_all(&*input, std::iter::once(delivery), true).await;
                        }
                    }
                }
                () = settling.freed.notified(), if journaled => {}
                () = async { waiting.as_mut().expect("guarded").await }, if waiting.is_some() => {
                    waiting = None;
                }
                () = async { run.as_ref().expect("guarded").rested().await }, if waiting.is_some() && run.is_some() => {
                    waiting = None;
                }
                () = self.shutdown.cancelled(), if stop.is_none() => {}
                () = async { loop_deadline.as_mut().expect("guarded").await }, if loop_deadline.is_some() && stop.is_none() => {}
                () = async { drain_deadline.as_mut().expect("guarded").await }, if drain_deadline.is_some() && !drain.is_cancelled() => {
                    tracing::warn!(
                        task = task_name,
                        in_flight = in_flight.len(),
                        "Drain timeout reached; cancelling and requeueing the transactions still in flight"
                    );
                    drain.cancel();
                }
            }
        }
        self.stats.set_in_flight(0);

        match fetch_error {
            Some(err) => Err(err),
            None => Ok(stop.or(source_end).unwrap_or(LoopEnd::Exhausted)),
        }
    }

    /// One delivery: its lifecycle and settlement, observed when watched, unless the
    /// drain timeout cuts its lifecycle off (a settlement under way is let finish, so a
    /// delivery is never settled twice). A decided outcome to journal gives the slot back
    /// (`settling`) while it is recorded and settled. Its attempts are counted into the
    /// worker's stats as they happen (the stats are the attempt hook). A delivery beyond
    /// `transaction.max_deliveries` is dead-lettered before any step runs.
    async fn drive(
        &self,
        input: &dyn Connector,
        delivery: Delivery,
        watch: Option<Box<TransactionWatch<'_>>>,
        drain: &CancellationToken,
        settling: &Settling,
    ) -> Finished {
        let scope = watch.as_ref().map(|watch| *watch.scope());
        let run = async move {
            // Ends, and is reported, after the settlement (or when the drain cuts it off).
            let mut watch = watch;
            let end = |watch: Option<Box<TransactionWatch<'_>>>, tx: &Transaction| {
                if let Some(watch) = watch {
                    watch.end(tx, L::OPERATION);
                }
            };
            let started = timing::start();
            let journal = self
                .cx
                .journal()
                .map(|journal| (&**journal, journal::now_ms()));
            let replayed = match journal {
                Some((journal, _)) => {
                    journal::replayed(journal, self.cx.task_name(), delivery.transaction()).await
                }
                None => None,
            };
            // A replayed outcome is in the journal already; any other is recorded below.
            let fresh = replayed.is_none();
            let mut outcome = match replayed.or_else(|| self.over_delivered(delivery.transaction()))
            {
                Some(outcome) => outcome,
                None => {
                    let mut hook = StatsHook(&self.stats);
                    let watched = watch.as_deref().map(TransactionWatch::watched);
                    let tx = delivery.transaction();
                    tokio::select! {
                        biased;
                        outcome = self.lifecycle.run(&self.cx, &self.policy, tx, watched, &mut hook) => outcome,
                        () = drain.cancelled() => {
                            end(watch, delivery.transaction());
                            return Finished::Abandoned(delivery);
                        }
                    }
                }
            };
            let mut settled_by_journal = false;
            let journaling = fresh.then_some(journal).flatten();
            if let Some((journal, started_at_ms)) = journaling {
                settling.enter();
                let policy = self.policy.settle_policy();
                let task = self.cx.task_name_arc();
                settled_by_journal = journal::record(
                    journal,
                    task,
                    &delivery,
                    &mut outcome,
                    started_at_ms,
                    policy,
                )
                .await;
            }
            if let Some(watch) = &mut watch {
                let error = outcome.failure.as_ref().map(|failure| failure.category);
                watch.record(outcome.settlement.as_str(), error);
            }
            let (settle, tx) = if settled_by_journal {
                let performed = Attempted {
                    result: Ok(SettleOutcome::Performed),
                    attempts: 1,
                };
                (performed, delivery.into_transaction())
            } else {
                settle(
                    self.cx.task_name(),
                    input,
                    delivery,
                    &outcome.settlement,
                    self.policy.settle_policy(),
                )
                .await
            };
            if journaling.is_some() {
                settling.leave();
            }
            end(watch, &tx);
            let micros = started.map(timing::micros_since);
            Finished::Done(Settled {
                outcome,
                settle,
                micros,
            })
        };
        InScope::new(run, scope).await
    }

    /// The outcome of a transaction delivered more often than `transaction.max_deliveries`
    /// allows: dead-lettered with that reason, no step run.
    fn over_delivered(&self, tx: &Transaction) -> Option<TransactionOutcome> {
        let max = self.policy.max_deliveries();
        if max == 0 || tx.deliveries() <= max {
            return None;
        }
        let failure = Failure {
            task: self.cx.task_name_arc().clone(),
            step: Step::Fetch.as_str(),
            category: Category::System,
            message: format!(
                "delivered {} times, more than transaction.max_deliveries = {max}: \
                 dead-lettered without running (a poison message?)",
                tx.deliveries()
            ),
            attempts: 0,
        };
        Some(TransactionOutcome {
            settlement: Settlement::DeadLetter(failure.clone()),
            failure: Some(failure),
            retries: 0,
            dispatched: 0,
            exception_error: None,
            output: None,
        })
    }

    /// Requeues deliveries that will not run in this worker (not started, or cut off).
    async fn requeue_all(
        &self,
        input: &dyn Connector,
        deliveries: impl Iterator<Item = Delivery>,
        abandoned: bool,
    ) {
        let policy: &RetryPolicy = self.policy.settle_policy();
        for delivery in deliveries {
            // It will not be processed here: it no longer counts against the limit.
            if let Some(limit) = &self.limit {
                limit.give_back(1);
            }
            let (settled, _) = settle(
                self.cx.task_name(),
                input,
                delivery,
                &Settlement::Requeue,
                policy,
            )
            .await;
            self.stats.record_requeue(&settled.result, abandoned);
        }
    }
}

/// Asks `input` whether it is drained, then the journal whether it still owes this run
/// work (queued children or continuations, undecided waits: they will reach a queue);
/// an error counts as "not yet" (logged), so the loop backs off and fetches again, and
/// that fetch reports a transport that is really gone.
async fn drained(input: &dyn Connector, journal: Option<&dyn Journal>, task: &str) -> bool {
    let answer = match input.drained().await {
        Ok(true) => match journal {
            Some(journal) => journal.owes().await.map(|owes| !owes),
            None => Ok(true),
        },
        other => other,
    };
    answer.unwrap_or_else(|err| {
        tracing::warn!(
            task,
            error = %err.chain(),
            "Cannot tell whether the input is drained; fetching again"
        );
        false
    })
}

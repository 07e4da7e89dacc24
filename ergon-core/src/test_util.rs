//! Test helpers for tasks and the engine (feature `test-util`).
//!
//! * [`ScriptedConnector`]: an in-memory input and output with scripted faults (failing,
//!   slow or panicking fetches, failing or stale settlements, failing dispatches, an input
//!   that is not drained yet) that records every fetch, settlement and dispatch attempt.
//! * To run one transaction through a task's whole lifecycle and look at its settlement,
//!   call [`Lifecycle::run`](crate::lifecycle::Lifecycle::run) on the task in its role
//!   (for example [`ConsumerLifecycle`](crate::lifecycle::ConsumerLifecycle)).

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::connector::{Connector, SettleOutcome, Settlement};
use crate::delivery::Delivery;
use crate::error::TaskError;
use crate::memory::MemoryConnector;
use crate::transaction::Transaction;

/// An in-memory input connector with scripted faults that records what happens to it.
///
/// # Examples
///
/// ```
/// use ergon_core::test_util::ScriptedConnector;
///
/// let input = ScriptedConnector::with_count(3).failing_fetches(2);
/// assert_eq!(input.queue().len(), 3);
/// ```
#[derive(Debug, Default)]
pub struct ScriptedConnector {
    queue: MemoryConnector,
    failing_fetches: AtomicU32,
    failing_settles: AtomicU32,
    stale_settles: AtomicU32,
    undrained_checks: AtomicU32,
    drained_checks: AtomicU32,
    failing_dispatches: AtomicU32,
    dispatch_attempts: AtomicU32,
    panicking_fetches: AtomicU32,
    fetch_delay: Mutex<Option<Duration>>,
    log: Mutex<Log>,
}

#[derive(Debug, Default)]
struct Log {
    fetches: Vec<(Instant, usize, usize)>,
    settlements: Vec<(String, Settlement)>,
}

impl ScriptedConnector {
    /// A connector whose input holds `transactions`.
    pub fn new(transactions: impl IntoIterator<Item = Transaction>) -> Self {
        Self {
            queue: MemoryConnector::with(transactions),
            ..Self::default()
        }
    }

    /// A connector holding `count` transactions `tx-0`, `tx-1`, … with payload `{"n": i}`.
    pub fn with_count(count: usize) -> Self {
        Self::new((0..count).map(|n| Transaction::new(format!("tx-{n}"), format!("{{\"n\":{n}}}"))))
    }

    /// The next `n` fetches fail with a (retryable) system error.
    pub fn failing_fetches(self, n: u32) -> Self {
        self.failing_fetches.store(n, SeqCst);
        self
    }

    /// The next `n` fetches panic.
    pub fn panicking_fetches(self, n: u32) -> Self {
        self.panicking_fetches.store(n, SeqCst);
        self
    }

    /// The next `n` settlements fail with a system error.
    pub fn failing_settles(self, n: u32) -> Self {
        self.failing_settles.store(n, SeqCst);
        self
    }

    /// The next `n` settlements are not performed and answer
    /// [`SettleOutcome::Stale`] (as for a delivery whose channel was lost).
    pub fn stale_settles(self, n: u32) -> Self {
        self.stale_settles.store(n, SeqCst);
        self
    }

    /// The next `n` [`Connector::drained`] checks answer `false` even when the queue is
    /// empty (as for a broker whose queue still holds messages not delivered yet).
    pub fn undrained_checks(self, n: u32) -> Self {
        self.undrained_checks.store(n, SeqCst);
        self
    }

    /// [`Connector::drained`] checks so far.
    pub fn drained_checks(&self) -> u32 {
        self.drained_checks.load(SeqCst)
    }

    /// The next `n` dispatches fail with a (retryable) system error; `u32::MAX` for all.
    pub fn failing_dispatches(self, n: u32) -> Self {
        self.failing_dispatches.store(n, SeqCst);
        self
    }

    /// Dispatch calls so far, failed ones included.
    pub fn dispatch_attempts(&self) -> u32 {
        self.dispatch_attempts.load(SeqCst)
    }

    /// Every fetch waits `delay` before answering.
    pub fn fetch_delay(self, delay: Duration) -> Self {
        *self.fetch_delay.lock().unwrap() = Some(delay);
        self
    }

    /// The underlying queue (push more, inspect dead letters).
    pub fn queue(&self) -> &MemoryConnector {
        &self.queue
    }

    /// Every fetch so far: when it answered, how many were asked for, how many returned.
    pub fn fetches(&self) -> Vec<(Instant, usize, usize)> {
        self.log().fetches.clone()
    }

    /// Every settlement so far, in order: transaction id and settlement.
    pub fn settlements(&self) -> Vec<(String, Settlement)> {
        self.log().settlements.clone()
    }

    /// Ids of the acked transactions, in order.
    pub fn acked(&self) -> Vec<String> {
        self.ids_settled(|s| matches!(s, Settlement::Ack))
    }

    /// Ids of the requeued transactions, in order.
    pub fn requeued(&self) -> Vec<String> {
        self.ids_settled(|s| matches!(s, Settlement::Requeue))
    }

    /// Ids of the dead-lettered transactions, in order.
    pub fn dead_lettered(&self) -> Vec<String> {
        self.ids_settled(|s| matches!(s, Settlement::DeadLetter(_)))
    }

    fn ids_settled(&self, pick: impl Fn(&Settlement) -> bool) -> Vec<String> {
        let log = self.log();
        log.settlements
            .iter()
            .filter(|(_, s)| pick(s))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }
}

/// Takes one from a countdown, returning whether there was one to take.
fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

#[async_trait]
impl Connector for ScriptedConnector {
    async fn fetch(&self, max: usize) -> Result<Vec<Delivery>, TaskError> {
        let delay = *self.fetch_delay.lock().unwrap();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if take(&self.panicking_fetches) {
            panic!("scripted fetch panic");
        }
        let result = if take(&self.failing_fetches) {
            Err(TaskError::system("scripted fetch failure"))
        } else {
            self.queue.fetch(max).await
        };
        let returned = result.as_ref().map_or(0, Vec::len);
        self.log().fetches.push((Instant::now(), max, returned));
        result
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: &Settlement,
    ) -> Result<SettleOutcome, TaskError> {
        let tx = delivery.transaction();
        if take(&self.failing_settles) {
            return Err(TaskError::system("scripted settle failure"));
        }
        if take(&self.stale_settles) {
            return Ok(SettleOutcome::Stale);
        }
        self.log()
            .settlements
            .push((tx.id().to_owned(), settlement.clone()));
        self.queue.settle(delivery, settlement).await
    }

    async fn drained(&self) -> Result<bool, TaskError> {
        self.drained_checks.fetch_add(1, SeqCst);
        Ok(!take(&self.undrained_checks) && self.queue.is_empty())
    }

    async fn dispatch(&self, transactions: &[Transaction]) -> Result<(), TaskError> {
        self.dispatch_attempts.fetch_add(1, SeqCst);
        if take(&self.failing_dispatches) {
            return Err(TaskError::system("scripted dispatch failure"));
        }
        self.queue.dispatch(transactions).await
    }
}

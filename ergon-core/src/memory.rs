//! The in-memory connector: a queue inside the process, with no I/O.
//!
//! Use it to chain tasks in one process, to test tasks, and to load-test the engine with
//! generated transactions (see [`MemoryConnector::generated`]). Nothing in it survives the
//! process: use the embedded local queue or a broker for durability.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use async_trait::async_trait;

use crate::connector::{Connector, Failure, SettleOutcome, Settlement};
use crate::delivery::Delivery;
use crate::error::TaskError;
use crate::transaction::Transaction;

type Generator = Box<dyn FnMut(u64) -> Transaction + Send>;

/// An in-process queue of transactions.
///
/// Fetch pops from the front; dispatch and requeue push to the back (a requeued
/// transaction counts one more delivery); dead letters are kept with their failure and
/// can be read back; acks and drops are counted. Receipts are `()`: a settlement needs
/// nothing but the transaction.
///
/// # Examples
///
/// ```
/// use ergon_core::{Connector, Settlement, Transaction, memory::MemoryConnector};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ergon_core::TaskError> {
/// let queue = MemoryConnector::new();
/// queue.dispatch(&[Transaction::new("a", "1"), Transaction::new("b", "2")]).await?;
/// let batch = queue.fetch(10).await?;
/// assert_eq!(batch.len(), 2);
/// queue.settle(&batch[0], &Settlement::Ack).await?;
/// queue.settle(&batch[1], &Settlement::Requeue).await?;
/// assert_eq!(queue.acked(), 1);
/// assert_eq!(queue.len(), 1);
/// assert_eq!(queue.fetch(10).await?[0].transaction().deliveries(), 2);
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct MemoryConnector {
    state: Mutex<State>,
    acked: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Transaction>,
    generator: Option<(Generator, u64, u64)>,
    dead_letters: Vec<(Transaction, Failure)>,
}

impl MemoryConnector {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// A queue holding `transactions`.
    pub fn with(transactions: impl IntoIterator<Item = Transaction>) -> Self {
        let connector = Self::new();
        connector.extend(transactions);
        connector
    }

    /// A source of `count` transactions made by `make(i)` as they are fetched, so that
    /// millions of them never sit in memory at once. Requeued ones are delivered again.
    pub fn generated(count: u64, make: impl FnMut(u64) -> Transaction + Send + 'static) -> Self {
        let connector = Self::new();
        connector.lock().generator = Some((Box::new(make), 0, count));
        connector
    }

    /// Appends transactions to the queue.
    pub fn extend(&self, transactions: impl IntoIterator<Item = Transaction>) {
        self.lock().queue.extend(transactions);
    }

    /// Transactions waiting to be fetched (generated ones included).
    pub fn len(&self) -> usize {
        let state = self.lock();
        let pending = state
            .generator
            .as_ref()
            .map_or(0, |(_, next, count)| count - next);
        state.queue.len() + pending as usize
    }

    /// Whether nothing waits to be fetched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Transactions acked so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Relaxed)
    }

    /// Failed transactions dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// The dead letters so far, with their failures.
    pub fn dead_letters(&self) -> Vec<(Transaction, Failure)> {
        self.lock().dead_letters.clone()
    }

    /// The transactions waiting in the queue (not the generated ones yet to be made).
    pub fn queued(&self) -> Vec<Transaction> {
        self.lock().queue.iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }
}

impl fmt::Debug for MemoryConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryConnector")
            .field("len", &self.len())
            .field("acked", &self.acked())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Connector for MemoryConnector {
    async fn fetch(&self, max: usize) -> Result<Vec<Delivery>, TaskError> {
        let mut state = self.lock();
        let from_queue = max.min(state.queue.len());
        let mut batch: Vec<Delivery> = state
            .queue
            .drain(..from_queue)
            .map(|tx| Delivery::new(tx, ()))
            .collect();
        if let Some((make, next, count)) = &mut state.generator {
            let more = (max - batch.len()).min((*count - *next) as usize);
            batch.extend((*next..*next + more as u64).map(|i| Delivery::new(make(i), ())));
            *next += more as u64;
        }
        Ok(batch)
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: &Settlement,
    ) -> Result<SettleOutcome, TaskError> {
        let transaction = delivery.transaction();
        match settlement {
            Settlement::Ack => {
                self.acked.fetch_add(1, Relaxed);
            }
            Settlement::Drop(_) => {
                self.dropped.fetch_add(1, Relaxed);
            }
            Settlement::Requeue => {
                let again = transaction.clone().delivered(transaction.deliveries() + 1);
                self.lock().queue.push_back(again);
            }
            Settlement::DeadLetter(failure) => self
                .lock()
                .dead_letters
                .push((transaction.clone(), failure.clone())),
        }
        Ok(SettleOutcome::Performed)
    }

    /// Queued as first deliveries, whatever their count was where they came from.
    async fn dispatch(&self, transactions: &[Transaction]) -> Result<(), TaskError> {
        self.extend(transactions.iter().map(|tx| tx.clone().delivered(1)));
        Ok(())
    }
}

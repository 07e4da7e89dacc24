//! Connectors move transactions in and out; the runner settles through them.
//!
//! A connector is the only place that knows a transport (a queue, a file, a table). The
//! engine calls it for three things: [`Connector::fetch`] a batch, [`Connector::dispatch`]
//! outbound transactions, and [`Connector::settle`] each fetched transaction once its
//! lifecycle is over (ack, requeue, dead-letter or drop). A finite run also asks it
//! whether its input is [drained](Connector::drained) before it ends.

use std::sync::Arc;

use async_trait::async_trait;

use crate::delivery::Delivery;
use crate::error::{Category, TaskError};
use crate::transaction::Transaction;

/// What becomes of a fetched transaction: decided by the engine, performed by its input
/// connector.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// Done: remove it from the input for good.
    Ack,
    /// Deliver it again later (a shutdown interrupted it, or policy says so).
    Requeue,
    /// Keep it aside with the reason it failed.
    DeadLetter(Failure),
    /// Remove it from the input without keeping it (policy `on_failure = "drop"`).
    Drop(Failure),
}

impl Settlement {
    /// The lowercase name used in logs and the `process` command.
    pub fn as_str(&self) -> &'static str {
        match self {
            Settlement::Ack => "ack",
            Settlement::Requeue => "requeue",
            Settlement::DeadLetter(_) => "dead_letter",
            Settlement::Drop(_) => "drop",
        }
    }
}

/// Whether a settlement was carried out by the transport.
///
/// The run summary counts acks, requeues, dead letters and drops only when they were
/// [`Performed`](SettleOutcome::Performed); the others are counted apart as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOutcome {
    /// The transport did (or durably recorded, to send coalesced) what was asked.
    Performed,
    /// Nothing was done because the delivery no longer belongs to this consumer: its
    /// channel was lost, or its lease ran out and another worker has it. The transport
    /// delivers the transaction again, so nothing is lost.
    Stale,
}

/// Why a transaction failed: what a dead letter records next to the original payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The task that gave up on it.
    pub task: Arc<str>,
    /// The step whose failure decided the outcome (`process` or `success`).
    pub step: &'static str,
    /// The category of the final error.
    pub category: Category,
    /// The final error with its cause chain.
    pub message: String,
    /// Attempts made by that step.
    pub attempts: u32,
}

/// A source and/or destination of transactions.
///
/// Implementations must be cheap to call concurrently (`&self`) and must not retry on
/// their own: the engine wraps every call in the step envelope. `fetch` is a poll: it
/// returns what is available now (possibly nothing) rather than waiting for more.
///
/// # Examples
///
/// A connector that yields a fixed list once and records what it settles:
///
/// ```
/// use std::sync::Mutex;
/// use async_trait::async_trait;
/// use ergon_core::{Connector, Delivery, SettleOutcome, Settlement, TaskError, Transaction};
///
/// struct Fixed { items: Mutex<Vec<Transaction>>, acked: Mutex<Vec<String>> }
///
/// #[async_trait]
/// impl Connector for Fixed {
///     async fn fetch(&self, max: usize) -> Result<Vec<Delivery>, TaskError> {
///         let mut items = self.items.lock().unwrap();
///         let n = max.min(items.len());
///         // Nothing to remember per delivery: the receipt is `()`.
///         Ok(items.drain(..n).map(|tx| Delivery::new(tx, ())).collect())
///     }
///     async fn settle(&self, d: &Delivery, s: &Settlement) -> Result<SettleOutcome, TaskError> {
///         if *s == Settlement::Ack {
///             self.acked.lock().unwrap().push(d.transaction().id().to_owned());
///         }
///         Ok(SettleOutcome::Performed)
///     }
/// }
/// ```
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Fetches up to `max` deliveries (`max >= 1`); an empty batch means none right now.
    /// Each carries its receipt ([`Delivery::new`]) and its transaction's delivery count
    /// ([`Transaction::delivered`]); the transaction's metadata carries no transport state.
    async fn fetch(&self, max: usize) -> Result<Vec<Delivery>, TaskError>;

    /// Settles one delivery this connector fetched, by its receipt. The engine settles
    /// each delivery exactly once (it gives the delivery up to its settlement), calling
    /// this again only to retry a settlement that returned an error.
    ///
    /// Returns [`SettleOutcome::Stale`] when the transport could not act because the
    /// delivery is no longer this consumer's (a lost channel, an expired lease) and will be
    /// delivered again; an error is for a settlement that failed and may be retried.
    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: &Settlement,
    ) -> Result<SettleOutcome, TaskError>;

    /// Whether the input is drained: nothing waits to be fetched, nothing requeued is
    /// pending, and the transport is in a state to know (not reconnecting, say).
    ///
    /// A finite (`streaming = false`) loop ends only when a fetch came back empty while
    /// nothing of its own was in flight or buffered *and* this says `true`; otherwise it
    /// backs off and fetches again. The default trusts that empty fetch, which is right
    /// for a transport whose `fetch` sees everything there is (an in-process queue); a
    /// transport whose fetch can come back empty while work remains (a broker's consumer
    /// between deliveries, a queue whose rows are leased by others) answers here.
    async fn drained(&self) -> Result<bool, TaskError> {
        Ok(true)
    }

    /// Sends transactions out; returns once the destination has accepted all of them.
    async fn dispatch(&self, transactions: &[Transaction]) -> Result<(), TaskError> {
        let _ = transactions;
        Err(unsupported("dispatch"))
    }

    /// Checks that the connector can reach its transport (`validate --connect`, health).
    async fn health(&self) -> Result<(), TaskError> {
        Ok(())
    }

    /// Flushes and releases what the connector holds; called once when its worker ends.
    async fn close(&self) -> Result<(), TaskError> {
        Ok(())
    }
}

/// The error a connector returns for an operation its transport does not offer.
pub fn unsupported(operation: &str) -> TaskError {
    TaskError::system(format!("this connector does not support {operation}")).non_retryable()
}

//! Deliveries: what a fetch hands the engine, and what the engine settles through.
//!
//! A [`Delivery`] is a [`Transaction`] plus its *receipt*: the transport's handle on
//! this one delivery (a delivery tag and its channel, a row and its lease), whose type the
//! connector defines and only the connector reads. The transaction's metadata carries no
//! transport state, so nothing of one transport leaks into another when a task forwards
//! it; its delivery count is [`Transaction::deliveries`].
//!
//! The engine owns each delivery and gives it up to exactly one settlement: the
//! settlement takes it by value, so a second one cannot be written.

use std::any::Any;
use std::fmt;
use std::ops::Deref;

use crate::transaction::Transaction;

/// A fetched transaction with the receipt its connector settles it by.
///
/// # Examples
///
/// A connector whose receipt is a row number:
///
/// ```
/// use ergon_core::{Delivery, Transaction};
///
/// struct Row(u64);
///
/// let delivery = Delivery::new(Transaction::new("o-1", "{}").delivered(2), Row(7));
/// assert_eq!(delivery.transaction().deliveries(), 2);
/// assert_eq!(delivery.receipt::<Row>().map(|row| row.0), Some(7));
/// assert!(delivery.receipt::<String>().is_none(), "another connector's type");
/// ```
pub struct Delivery {
    transaction: Transaction,
    /// Boxed once per delivery; a receipt of a zero-sized type (`()`, for a transport
    /// with nothing to remember) allocates nothing.
    receipt: Box<dyn Any + Send + Sync>,
}

impl Delivery {
    /// `transaction` as delivered, settled later by `receipt`.
    pub fn new(transaction: Transaction, receipt: impl Any + Send + Sync) -> Self {
        Self {
            transaction,
            receipt: Box::new(receipt),
        }
    }

    /// The transaction delivered.
    pub fn transaction(&self) -> &Transaction {
        &self.transaction
    }

    /// The receipt, if it is an `R` (the connector's own type).
    pub fn receipt<R: Any>(&self) -> Option<&R> {
        self.receipt.downcast_ref()
    }

    /// The transaction, giving up the receipt (the delivery can no longer be settled).
    pub fn into_transaction(self) -> Transaction {
        self.transaction
    }
}

/// A delivery reads as its transaction (`delivery.id()`, `delivery.payload()`).
impl Deref for Delivery {
    type Target = Transaction;

    fn deref(&self) -> &Transaction {
        &self.transaction
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("transaction", &self.transaction)
            .finish_non_exhaustive()
    }
}

//! The source of a producer without an input connector: its own `generate_transactions`,
//! behind the [`Connector`] interface so the loop treats both sources alike.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::connector::{Connector, SettleOutcome, Settlement, unsupported};
use crate::context::Context;
use crate::delivery::Delivery;
use crate::error::TaskError;
use crate::sync::lock;
use crate::task::Producer;
use crate::telemetry::names;
use crate::transaction::Transaction;

/// Transactions a [`Producer`] generates. Requeued ones are handed out again first.
/// Generated transactions have nowhere else to live: a dead-lettered or dropped one is
/// logged at ERROR with its failure (give the task an input connector when failed
/// transactions must be kept).
pub(crate) struct Generated<T> {
    task: Arc<T>,
    cx: Context,
    requeued: Mutex<Vec<Transaction>>,
}

impl<T> Generated<T> {
    pub(crate) fn new(task: Arc<T>, cx: Context) -> Self {
        Self {
            task,
            cx,
            requeued: Mutex::default(),
        }
    }
}

#[async_trait]
impl<T: Producer> Connector for Generated<T> {
    async fn fetch(&self, max: usize) -> Result<Vec<Delivery>, TaskError> {
        let mut batch: Vec<Delivery> = {
            let mut requeued = lock(&self.requeued);
            let take = max.min(requeued.len());
            requeued
                .drain(..take)
                .map(|tx| Delivery::new(tx, ()))
                .collect()
        };
        if batch.len() < max {
            let more = self
                .task
                .generate_transactions(&self.cx, max - batch.len())
                .await?;
            batch.extend(more.into_iter().map(|tx| Delivery::new(tx, ())));
        }
        Ok(batch)
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: &Settlement,
    ) -> Result<SettleOutcome, TaskError> {
        let tx = delivery.transaction();
        match settlement {
            Settlement::Ack => {}
            Settlement::Requeue => {
                lock(&self.requeued).push(tx.clone().delivered(tx.deliveries() + 1))
            }
            Settlement::DeadLetter(failure) | Settlement::Drop(failure) => tracing::error!(
                { names::TASK } = %failure.task,
                { names::MESSAGE_ID } = tx.id(),
                { names::STEP } = failure.step,
                { names::ERROR_CATEGORY } = %failure.category,
                attempts = failure.attempts,
                error = %failure.message,
                "Generated transaction failed and the producer has no input connector to keep it"
            ),
        }
        Ok(SettleOutcome::Performed)
    }

    async fn dispatch(&self, _transactions: &[Transaction]) -> Result<(), TaskError> {
        Err(unsupported("dispatch to a producer's generator"))
    }
}

//! The `order_validation` task: decode, de-duplicate, check, reserve stock, and hand the
//! accepted order out. Everything else (its dispatch to the output, retries, timeouts,
//! dead letters, acks) is ergon's.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use ergon_core::{Context, Hybrid, TaskError, Transaction};
use ergon_services::kv::MemoryKv;
use serde::Deserialize;

use crate::order::{AcceptedOrder, Order};

/// `[tasks.NAME.settings]` of the task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Orders above this total (minor units) are rejected for manual review.
    pub max_total_cents: i64,
    /// Orders whose first stock reservation fails with a transient outage (a stand-in
    /// for a flaky inventory service, to show retries).
    #[serde(default)]
    pub flaky_orders: Vec<String>,
    /// The `memory_kv` service remembering seen order ids.
    pub seen_orders_service: String,
}

/// Validates orders; each accepted one becomes an outbound transaction, which ergon's
/// dispatch step sends to the output connector (a hybrid task).
pub struct OrderValidation {
    settings: Settings,
    seen: Arc<MemoryKv>,
    /// Flaky orders whose reservation already failed once.
    failed_once: Mutex<HashSet<String>>,
}

impl OrderValidation {
    /// Builds the task from its settings and injected services.
    pub fn from_context(cx: &Context) -> Result<Self, TaskError> {
        let settings: Settings = cx.settings()?;
        let seen = cx.service::<MemoryKv>(&settings.seen_orders_service)?;
        Ok(Self {
            settings,
            seen,
            failed_once: Mutex::default(),
        })
    }

    /// The stand-in for a call to an inventory service.
    async fn reserve_stock(&self, order: &Order) -> Result<(), TaskError> {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        if self.settings.flaky_orders.contains(&order.id)
            && self.failed_once.lock().unwrap().insert(order.id.clone())
        {
            return Err(TaskError::system(format!(
                "inventory service unavailable while reserving order {}",
                order.id
            )));
        }
        Ok(())
    }
}

impl Hybrid for OrderValidation {
    async fn process_transaction(
        &self,
        _cx: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        let order: Order = tx.json()?;
        let accepted: AcceptedOrder = order
            .check(self.settings.max_total_cents)
            .map_err(TaskError::business)?;
        self.reserve_stock(&order).await?;
        // Only a fully valid, reserved order counts as seen, so a retry is not a duplicate.
        if !self.seen.insert_new(&order.id, tx.id())? {
            let first = self.seen.get(&order.id).unwrap_or_default();
            return Err(TaskError::business(format!(
                "order {} is a duplicate of transaction {first}",
                order.id
            )));
        }
        let out = tx
            .child(format!("{}/accepted", tx.id()), "")
            .json(&accepted)?
            .build();
        Ok(vec![out])
    }
}

//! The `split_order` task: one order in, one transaction per line item out.
//!
//! A hybrid: ergon dispatches the line items through the output connector and acks the
//! order only once the output confirmed all of them; an order that cannot be split goes to
//! the dead-letter file with its error, and none of its items is sent. Line items get
//! deterministic ids (`<order>/<line>`), so a consumer downstream can drop the duplicates
//! that at-least-once delivery allows after a crash.

use serde::{Deserialize, Serialize};

use ergon_core::{Context, Hybrid, TaskError, Transaction};

/// One input order.
#[derive(Debug, Deserialize)]
struct Order {
    id: String,
    customer: String,
    items: Vec<Item>,
}

/// One line of an order.
#[derive(Debug, Deserialize)]
struct Item {
    sku: String,
    quantity: u32,
    unit_cents: u64,
}

/// One output line item; it names its order, so the output file alone tells the lineage.
#[derive(Debug, Serialize)]
struct LineItem<'a> {
    order_id: &'a str,
    customer: &'a str,
    line: usize,
    sku: &'a str,
    quantity: u32,
    line_total_cents: u64,
}

/// The task; it has no state.
pub struct SplitOrder;

impl Hybrid for SplitOrder {
    async fn process_transaction(
        &self,
        _cx: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        let order: Order = tx.json()?;
        if order.items.is_empty() {
            return Err(TaskError::business(format!(
                "order {} has no items",
                order.id
            )));
        }
        order
            .items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let line = index + 1;
                if item.quantity == 0 {
                    return Err(TaskError::business(format!(
                        "order {} line {line} ({}) has quantity 0",
                        order.id, item.sku
                    )));
                }
                let out = LineItem {
                    order_id: &order.id,
                    customer: &order.customer,
                    line,
                    sku: &item.sku,
                    quantity: item.quantity,
                    line_total_cents: item.unit_cents * u64::from(item.quantity),
                };
                Ok(tx
                    .child(format!("{}/{line}", order.id), "")
                    .json(&out)?
                    .build())
            })
            .collect()
    }
}

//! ergon example: tagged fan-out / fan-in (`produces`, `consumes`).
//!
//! `split` turns `{"id", "items": n}` into `n` items through its output (the framework's
//! dispatch step), each tagged `items` by `produces`; `work` squares each item and
//! journals the square; the journal collects the squares per order into batches of 10
//! for `aggregate` (no worker held until a batch exists), whose sums it collects in turn
//! into one batch for `total`, cut as soon as the order's last batch sum is in.

use std::process::ExitCode;

use ergon_core::{Consumer, Context, Hybrid, TaskError, Transaction};
use ergon_runner::Registry;
use serde_json::{Value, json};

/// `{"id": "...", "items": n}` → items `ID/item/1..=n`, dispatched to `items`.
struct Split;

impl Hybrid for Split {
    async fn process_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        let batch: Value = tx.json()?;
        let items = batch["items"]
            .as_u64()
            .ok_or_else(|| TaskError::business("a batch needs a numeric `items`"))?;
        Ok((1..=items)
            .map(|n| {
                let id = format!("{}/item/{n}", tx.id());
                tx.child(id, json!({ "n": n }).to_string()).build()
            })
            .collect())
    }
}

/// `{"n": n}` → `n²`, journaled as the item's output for its batch to carry.
struct Work;

impl Consumer for Work {
    type Output = u64;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<u64, TaskError> {
        let n = tx.json::<Value>()?["n"]
            .as_u64()
            .ok_or_else(|| TaskError::business("an item needs a numeric `n`"))?;
        Ok(n * n)
    }

    fn journal_output(&self, square: &u64) -> Option<Value> {
        Some(json!(square))
    }
}

/// A batch of squares → their sum, journaled for `total`'s batch.
struct Aggregate;

impl Consumer for Aggregate {
    type Output = u64;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<u64, TaskError> {
        outputs(tx).map(|squares| squares.iter().sum())
    }

    fn journal_output(&self, sum: &u64) -> Option<Value> {
        Some(json!(sum))
    }
}

/// Every batch sum of an order → one line with the order's total.
struct Total;

impl Hybrid for Total {
    async fn process_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        let sums = outputs(tx)?;
        let batch = tx
            .batch()
            .ok_or_else(|| TaskError::business("total receives fan-in batches"))?;
        let line = json!({
            "order": batch.group,
            "batches": sums.len(),
            "reason": batch.reason.as_str(),
            "total": sums.iter().sum::<u64>(),
        });
        let id = format!("{}/total", tx.id());
        Ok(vec![tx.child(id, line.to_string()).build()])
    }
}

/// The outputs of a batch's succeeded results.
fn outputs(tx: &Transaction) -> Result<Vec<u64>, TaskError> {
    let mut outputs = Vec::new();
    for result in tx.consumed_results()? {
        if let Some(output) = result.output_as::<u64>()? {
            outputs.push(output);
        }
    }
    Ok(outputs)
}

fn main() -> ExitCode {
    ergon_runner::run(
        Registry::with_builtins()
            .hybrid("split", |_| Ok(Split))
            .consumer("work", |_| Ok(Work))
            .consumer("aggregate", |_| Ok(Aggregate))
            .hybrid("total", |_| Ok(Total)),
    )
}

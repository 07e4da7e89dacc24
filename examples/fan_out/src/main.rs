//! ergon example: fan-out / fan-in through the journal.
//!
//! `split` spawns one `square` child per item of a batch (one commit for all of them,
//! deterministic ids: a batch that runs again spawns nothing twice) and parks `sum` on
//! them; the journal fires `sum` exactly once, in the commit of the last square, with
//! every child's status and output.

use std::process::ExitCode;

use ergon_core::{Consumer, Context, Hybrid, TaskError, Transaction};
use ergon_runner::Registry;
use serde_json::{Value, json};

/// `{"id": "...", "items": n}` → children `ID/item/1..=n`, then `sum` once all are done.
struct Split;

impl Consumer for Split {
    type Output = ();

    async fn process_transaction(&self, cx: &Context, tx: &Transaction) -> Result<(), TaskError> {
        let batch: Value = tx.json()?;
        let items = batch["items"]
            .as_u64()
            .ok_or_else(|| TaskError::business("a batch needs a numeric `items`"))?;
        let children = (1..=items)
            .map(|n| {
                let id = format!("{}/item/{n}", tx.id());
                tx.child(id, json!({ "n": n }).to_string()).build()
            })
            .collect();
        let members = cx.spawn_all("square", children).await?;
        cx.when_all(tx, members).then("sum").await
    }
}

/// `{"n": n}` → `n²`, journaled as the child's output for the fan-in to read.
struct Square;

impl Consumer for Square {
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

/// The fan-in: every member's output added up, one line per batch.
struct Sum;

impl Hybrid for Sum {
    async fn process_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        let fan_in: Value = tx.json()?;
        let members = fan_in["members"].as_array().cloned().unwrap_or_default();
        let squares: Vec<u64> = members
            .iter()
            .filter_map(|m| m["output"].as_u64())
            .collect();
        let line = json!({
            "batch": fan_in["previous_task_id"],
            "outcome": fan_in["outcome"],
            "items": members.len(),
            "succeeded": squares.len(),
            "total": squares.iter().sum::<u64>(),
        });
        let id = format!("{}/total", tx.id());
        Ok(vec![tx.child(id, line.to_string()).build()])
    }
}

fn main() -> ExitCode {
    ergon_runner::run(
        Registry::with_builtins()
            .consumer("split", |_| Ok(Split))
            .consumer("square", |_| Ok(Square))
            .hybrid("sum", |_| Ok(Sum)),
    )
}

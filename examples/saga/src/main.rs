//! ergon example: a saga whose compensations are continuations.
//!
//! Every step journals the order as its output; the next step (or the compensation)
//! receives it in its continuation: as `previous_output` after a success, inside
//! `previous_input` after a failure (the failed step's own input). [`order_of`] finds it
//! either way.

use std::process::ExitCode;

use ergon_core::{Consumer, Context, TaskError, Transaction};
use ergon_runner::Registry;
use serde_json::{Value, json};

/// The order a saga step is about: the payload itself for the first step, else the
/// previous step's output, or — after a failure — the order in the failed step's input.
fn order_of(payload: &Value) -> Value {
    match (
        payload.get("previous_output"),
        payload.get("previous_input"),
    ) {
        (Some(output), _) if !output.is_null() => output.clone(),
        (_, Some(input)) => order_of(input),
        _ => payload.clone(),
    }
}

/// A saga step: checks the order with `check`, then journals the order with what the step
/// did (`done`) for the next step.
struct Step {
    done: &'static str,
    check: fn(&Value) -> Result<(), TaskError>,
}

impl Consumer for Step {
    type Output = Value;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<Value, TaskError> {
        let mut order = order_of(&tx.json()?);
        (self.check)(&order)?;
        let amount = order["amount"].clone();
        order[self.done] = amount;
        Ok(order)
    }

    fn journal_output(&self, order: &Value) -> Option<Value> {
        Some(order.clone())
    }
}

fn charge(order: &Value) -> Result<(), TaskError> {
    match order["amount"].as_u64() {
        Some(amount) if amount > 0 => Ok(()),
        _ => Err(TaskError::business("nothing to charge")),
    }
}

fn reserve(order: &Value) -> Result<(), TaskError> {
    if order["sku"] == json!("sold-out") {
        return Err(TaskError::business("out of stock"));
    }
    Ok(())
}

fn ship(order: &Value) -> Result<(), TaskError> {
    if order["address"].as_str().is_none_or(str::is_empty) {
        return Err(TaskError::business("no delivery address"));
    }
    Ok(())
}

fn always(_: &Value) -> Result<(), TaskError> {
    Ok(())
}

fn main() -> ExitCode {
    let step = |done, check| move |_: &Context| Ok(Step { done, check });
    ergon_runner::run(
        Registry::with_builtins()
            .consumer("charge", step("charged", charge))
            .consumer("reserve", step("reserved", reserve))
            .consumer("ship", step("shipped", ship))
            .consumer("release", step("released", always))
            .consumer("refund", step("refunded", always)),
    )
}

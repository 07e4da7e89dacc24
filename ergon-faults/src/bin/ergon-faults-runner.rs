//! The runner the fault suite drives: ergon's whole CLI (`ergon_runner::run`) with the
//! suite's tasks registered, as a user's binary would be.
//!
//! * `relay` (hybrid): sends each transaction's payload on to the output, unchanged, after
//!   `settings.delay_ms`. Poison by design: a payload that is not JSON or larger than
//!   `settings.max_payload` is a business error (dead-lettered at once); a JSON payload
//!   with `"poison": "panic"` panics; one with `"poison": "abort"` aborts the process.
//! * `fan_out` (consumer): `{"id", "items": n}` spawns `n` children into the task
//!   `settings.children` and parks the task `settings.fan_in` until all are done.
//! * `fan_in` (hybrid): writes one line per fan-in: the batch, its member count and how
//!   many succeeded.

use std::process::ExitCode;
use std::time::Duration;

use ergon_core::{Consumer, Context, Hybrid, TaskError, Transaction};
use ergon_runner::Registry;
use serde::Deserialize;
use serde_json::{Value, json};

fn main() -> ExitCode {
    ergon_runner::run(
        Registry::with_builtins()
            .hybrid("relay", Relay::from_context)
            .consumer("fan_out", FanOut::from_context)
            .hybrid("fan_in", |_| Ok(FanIn)),
    )
}

/// `relay`'s settings.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RelaySettings {
    /// How long each transaction is worked on, in milliseconds (work in flight for the
    /// faults to hit).
    delay_ms: u64,
    /// The largest payload accepted, in bytes.
    max_payload: usize,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            delay_ms: 0,
            max_payload: 1 << 20,
        }
    }
}

/// Payload in, the same payload out; poison payloads fail as documented above.
struct Relay {
    delay: Duration,
    max_payload: usize,
}

impl Relay {
    fn from_context(cx: &Context) -> Result<Self, TaskError> {
        let settings: RelaySettings = cx.settings()?;
        Ok(Self {
            delay: Duration::from_millis(settings.delay_ms),
            max_payload: settings.max_payload,
        })
    }
}

impl Hybrid for Relay {
    async fn process_transaction(
        &self,
        _cx: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        let size = tx.payload().len();
        if size > self.max_payload {
            return Err(TaskError::business(format!(
                "payload of {size} bytes is larger than max_payload ({} bytes)",
                self.max_payload
            )));
        }
        let body: Value = tx.json()?;
        match body["poison"].as_str() {
            Some("panic") => panic!("poison {}: a task that panics", tx.id()),
            Some("abort") => std::process::abort(),
            _ => {}
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let id = format!("{}/relayed", tx.id());
        Ok(vec![tx.child(id, tx.payload().clone()).build()])
    }
}

/// `fan_out`'s settings: the tasks its children and its fan-in run in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FanOutSettings {
    children: String,
    fan_in: String,
}

/// A batch spawns one child per item and parks the fan-in on them.
struct FanOut(FanOutSettings);

impl FanOut {
    fn from_context(cx: &Context) -> Result<Self, TaskError> {
        cx.settings().map(Self)
    }
}

impl Consumer for FanOut {
    type Output = ();

    async fn process_transaction(&self, cx: &Context, tx: &Transaction) -> Result<(), TaskError> {
        let items = tx.json::<Value>()?["items"]
            .as_u64()
            .ok_or_else(|| TaskError::business("a batch needs a numeric `items`"))?;
        let children = (0..items)
            .map(|n| {
                let id = format!("{}/item/{n}", tx.id());
                tx.child(id.clone(), json!({ "id": id }).to_string())
                    .build()
            })
            .collect();
        let members = cx.spawn_all(&self.0.children, children).await?;
        cx.when_all(tx, members).then(&self.0.fan_in).await
    }
}

/// One line per decided fan-in: `{"id": <batch>, "total", "succeeded", "outcome"}`.
struct FanIn;

impl Hybrid for FanIn {
    async fn process_transaction(
        &self,
        _cx: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        let fan_in: Value = tx.json()?;
        let line = json!({
            "id": fan_in["previous_task_id"],
            "total": fan_in["total"],
            "succeeded": fan_in["statuses"]["succeeded"],
            "outcome": fan_in["outcome"],
        });
        let id = format!("{}/line", tx.id());
        Ok(vec![tx.child(id, line.to_string()).build()])
    }
}

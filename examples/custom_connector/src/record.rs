//! The `record` task: appends one line per delivery to a log file, then does what the
//! payload asks — the stand-in for a real consumer that the tests drive.
//!
//! Payload (a JSON object; every field optional):
//! * `"reject": "why"` — fail with a business error (bad data, never retried);
//! * `"fail_until": k` — fail with a system error while the delivery count is below `k`
//!   (an outage that a redelivery outlives);
//! * `"poison": true` — kill the process (`std::process::abort`) after `abort_delay`:
//!   a message that crashes its consumer every time.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use ergon_core::{BlockingConsumer, Context, TaskError, Transaction};
use serde::Deserialize;

/// `[tasks.NAME.settings]` of a `record` task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The log file: one JSON line `{"id", "deliveries", "payload"}` per delivery, written
    /// before anything else happens to it (so even a poison delivery is on record).
    pub log: PathBuf,
    /// How long a poison delivery waits before killing the process (lets connectors with
    /// coalesced acks, like `local`, write the acks of earlier transactions). Default: 0.
    #[serde(default, with = "ergon_core::policy::duration")]
    pub abort_delay: Duration,
}

/// What the payload asks for.
#[derive(Debug, Default, Deserialize)]
struct Orders {
    reject: Option<String>,
    fail_until: Option<u32>,
    #[serde(default)]
    poison: bool,
}

/// Logs each delivery and acts on it (see the module docs). Blocking: its file writes
/// run on the worker's thread pool, not on the async runtime.
pub struct Record {
    settings: Settings,
}

impl Record {
    /// Builds the task from its settings.
    ///
    /// # Errors
    ///
    /// Settings that do not decode.
    pub fn from_context(cx: &Context) -> Result<Self, TaskError> {
        Ok(Self {
            settings: cx.settings()?,
        })
    }

    fn log(&self, tx: &Transaction) -> Result<(), TaskError> {
        let line = serde_json::json!({
            "id": tx.id(),
            "deliveries": tx.deliveries(),
            "payload": String::from_utf8_lossy(tx.payload()),
        });
        let mut line = line.to_string();
        line.push('\n');
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.settings.log)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .map_err(|err| {
                TaskError::system(format!("cannot append to {}", self.settings.log.display()))
                    .with_source(err)
            })
    }
}

impl BlockingConsumer for Record {
    type Output = ();

    fn process_transaction(&self, _cx: &Context, tx: &Transaction) -> Result<(), TaskError> {
        self.log(tx)?;
        let orders: Orders = tx.json().unwrap_or_default();
        if orders.poison {
            std::thread::sleep(self.settings.abort_delay);
            std::process::abort();
        }
        if let Some(why) = orders.reject {
            return Err(TaskError::business(why));
        }
        if let Some(k) = orders.fail_until.filter(|k| tx.deliveries() < *k) {
            return Err(TaskError::system(format!(
                "unavailable until delivery {k} (this is delivery {})",
                tx.deliveries()
            )));
        }
        Ok(())
    }
}

//! The deployment most scenarios fault: ids fed from a file into an input connector by
//! task `feed`, relayed from it into `out.jsonl` by task `drain` (the suite's `relay`
//! task), so that every id that made it through is a line at the output.
//!
//! ```text
//! feed.jsonl ──feed (forward)──▶ inbox (local | rabbitmq | postgres | redis) ──drain (relay)──▶ out.jsonl
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use super::Suite;
use super::deployment::Deployment;
use super::error::Result;
use super::ids::{self, Tally};
use super::inputs::Queue;
use super::process::RunnerProcess;

/// The connector `drain` reads, in the generated config.
pub const INBOX: &str = "inbox";

/// How task `drain` runs.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// `policy.loop.concurrency`.
    pub concurrency: usize,
    /// `policy.fetch.batch_size`.
    pub batch_size: usize,
    /// How long `relay` works on each transaction (to have work in flight when a fault
    /// hits), in milliseconds.
    pub delay_ms: u64,
    /// `policy.loop.streaming`: keep polling an empty input.
    pub streaming: bool,
    /// `policy.transaction.max_deliveries`.
    pub max_deliveries: u32,
    /// `policy.process.retry.max_attempts`.
    pub max_attempts: u32,
    /// `relay`'s `max_payload`: a larger payload is rejected as a business error.
    pub max_payload: usize,
    /// More keys of the inbox connector's table, as TOML lines.
    pub inbox_keys: String,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            concurrency: 32,
            batch_size: 64,
            delay_ms: 0,
            streaming: false,
            max_deliveries: 20,
            max_attempts: 3,
            max_payload: 1 << 20,
            inbox_keys: String::new(),
        }
    }
}

/// `feed` → inbox → `drain` → `out.jsonl`, on a queue of its own (removed when dropped).
#[derive(Debug)]
pub struct Pipeline {
    deployment: Deployment,
    queue: Queue,
    tuning: Tuning,
}

impl Pipeline {
    /// Writes the config of the pipeline through `queue`, tuned by `tuning`.
    ///
    /// # Errors
    ///
    /// The deployment cannot be written.
    pub fn new(suite: &Suite, queue: Queue, tuning: Tuning) -> Result<Self> {
        let toml = config(&queue, &tuning);
        Ok(Self {
            deployment: Deployment::new(suite, &toml)?,
            queue,
            tuning,
        })
    }

    /// Its deployment (for commands of its own).
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Its queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Writes `lines` (newline-terminated) to `feed.jsonl` and runs `feed` to its end: each
    /// line is in the inbox once the command returns (the output confirmed it).
    ///
    /// # Errors
    ///
    /// The file cannot be written or `feed` failed.
    pub fn feed(&self, lines: &str) -> Result<()> {
        self.feed_bytes(lines.as_bytes())
    }

    /// [`Pipeline::feed`] with lines of any bytes (not JSON, not UTF-8: poison).
    ///
    /// # Errors
    ///
    /// The file cannot be written or `feed` failed.
    pub fn feed_bytes(&self, lines: &[u8]) -> Result<()> {
        self.deployment.write("feed.jsonl", lines)?;
        self.deployment
            .run(&["run", "feed"], Duration::from_secs(600))
            .map(drop)
    }

    /// Starts `drain` (not waited for).
    ///
    /// # Errors
    ///
    /// The runner cannot be started.
    pub fn drain(&self) -> Result<RunnerProcess> {
        self.deployment.spawn(&["run", "drain"])
    }

    /// How often each id is in `out.jsonl` so far.
    ///
    /// # Errors
    ///
    /// The file cannot be read.
    pub fn seen(&self) -> Result<BTreeMap<String, usize>> {
        ids::count(&self.deployment.path("out.jsonl"), "id")
    }

    /// How many distinct ids are in `out.jsonl` so far.
    ///
    /// # Errors
    ///
    /// The file cannot be read.
    pub fn delivered(&self) -> Result<usize> {
        self.seen().map(|seen| seen.len())
    }

    /// `sent` against what is in `out.jsonl`.
    ///
    /// # Errors
    ///
    /// The file cannot be read.
    pub fn tally(&self, sent: &[String]) -> Result<Tally> {
        Ok(Tally::of(sent, &self.seen()?))
    }

    /// The most deliveries `drain` can hold unsettled when killed: the duplicates one kill
    /// may cause.
    pub fn held_per_kill(&self) -> usize {
        self.queue
            .input()
            .held_per_worker(self.tuning.concurrency, self.tuning.batch_size)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Err(err) = self.queue.remove() {
            eprintln!(
                "ergon-faults: could not remove queue {}: {err}",
                self.queue.name()
            );
        }
    }
}

/// The generated `tasks.toml` of a pipeline.
fn config(queue: &Queue, tuning: &Tuning) -> String {
    let Tuning {
        concurrency,
        batch_size,
        delay_ms,
        streaming,
        max_deliveries,
        max_attempts,
        max_payload,
        inbox_keys,
    } = tuning;
    let inbox = queue.table(INBOX, inbox_keys);
    format!(
        r#"[connectors.source]
type = "file"
path = "feed.jsonl"
id_field = "id"

{inbox}
[connectors.sink]
type = "file"
path = "out.jsonl"

[tasks.feed]
type = "forward"
input = "source"
output = "{INBOX}"
policy.loop.concurrency = 64
policy.fetch.batch_size = 256

[tasks.drain]
type = "relay"
input = "{INBOX}"
output = "sink"
settings = {{ delay_ms = {delay_ms}, max_payload = {max_payload} }}

[tasks.drain.policy]
on_failure = "dead_letter"
loop = {{ concurrency = {concurrency}, streaming = {streaming} }}
fetch = {{ batch_size = {batch_size} }}
transaction = {{ max_deliveries = {max_deliveries} }}
process.retry = {{ max_attempts = {max_attempts}, backoff = "10ms" }}
"#
    )
}

//! Where the journal hands transactions over: each task's input (a local queue in the
//! journal's own file, or any connector that takes dispatches, through the outbox relay),
//! and each task's `on_complete` continuation. The runner resolves both when it builds
//! the plan.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::fan_in::Consumes;

/// The tasks the journal can send transactions to (`spawn` targets, continuations): by
/// the local queue they read in the journal's file (SQLite), or relayed to their input
/// connector (PostgreSQL's outbox); and the continuations of each task that has some.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    queues: BTreeMap<String, String>,
    relayed: BTreeSet<String>,
    continuations: BTreeMap<String, Vec<OnComplete>>,
    fan_ins: BTreeMap<String, Consumes>,
    produces: BTreeMap<String, Vec<String>>,
}

impl Routes {
    /// No routes: completions are recorded, nothing is handed over.
    pub fn new() -> Self {
        Self::default()
    }

    /// Task `task` reads the local queue `queue` in the journal's file.
    #[must_use]
    pub fn queue(mut self, task: impl Into<String>, queue: impl Into<String>) -> Self {
        self.queues.insert(task.into(), queue.into());
        self
    }

    /// Task `task` reads a connector that takes dispatches: the journal writes what it
    /// hands the task into its outbox, in its own commit, and the relay dispatches it
    /// there (at least once, with the transaction's deterministic id).
    #[must_use]
    pub fn relay(mut self, task: impl Into<String>) -> Self {
        self.relayed.insert(task.into());
        self
    }

    /// Task `task` continues with `on_complete` (besides the continuations it has).
    #[must_use]
    pub fn on_complete(mut self, task: impl Into<String>, on_complete: OnComplete) -> Self {
        self.continuations
            .entry(task.into())
            .or_default()
            .push(on_complete);
        self
    }

    /// Task `task` receives batches of the results `consumes` collects (a tagged fan-in).
    #[must_use]
    pub fn consumes(mut self, task: impl Into<String>, consumes: Consumes) -> Self {
        self.fan_ins.insert(task.into(), consumes);
        self
    }

    /// Task `task` tags what it sends with `tags` (`produces`): when one of its
    /// transactions completes, the fan-ins of those tags grouped by it learn how many
    /// items to expect.
    #[must_use]
    pub fn produces(mut self, task: impl Into<String>, tags: Vec<String>) -> Self {
        self.produces.insert(task.into(), tags);
        self
    }

    /// Every fan-in: its consumer task and what it collects.
    pub fn fan_ins(&self) -> impl Iterator<Item = (&str, &Consumes)> {
        self.fan_ins.iter().map(|(task, c)| (task.as_str(), c))
    }

    /// What task `task` collects, if it is a fan-in consumer.
    pub fn consumes_of(&self, task: &str) -> Option<&Consumes> {
        self.fan_ins.get(task)
    }

    /// The fan-in consumers, as a JSON array (for SQL that filters by them).
    pub(crate) fn consumers_json(&self) -> String {
        serde_json::to_string(&self.fan_ins.keys().collect::<Vec<_>>()).unwrap_or_default()
    }

    /// The tags task `task` produces.
    pub fn produces_of(&self, task: &str) -> &[String] {
        self.produces.get(task).map_or(&[], Vec::as_slice)
    }

    /// The queue task `task` reads, if the journal can hand it transactions.
    pub fn queue_of(&self, task: &str) -> Option<&str> {
        self.queues.get(task).map(String::as_str)
    }

    /// Whether the journal can hand task `task` transactions: through a local queue in its
    /// file, or through the relay.
    pub fn takes(&self, task: &str) -> bool {
        self.queues.contains_key(task) || self.relayed.contains(task)
    }

    /// The tasks the relay dispatches to.
    pub fn relayed(&self) -> impl Iterator<Item = &str> {
        self.relayed.iter().map(String::as_str)
    }

    /// The continuations of task `task`.
    pub fn continuations_of(&self, task: &str) -> &[OnComplete] {
        self.continuations.get(task).map_or(&[], Vec::as_slice)
    }

    /// An error naming `call` unless the journal can hand task `task` transactions.
    ///
    /// # Errors
    ///
    /// A non-retryable system error listing the tasks it can.
    pub fn check(&self, call: &str, task: &str) -> Result<(), ergon_core::TaskError> {
        if self.takes(task) {
            return Ok(());
        }
        Err(ergon_core::TaskError::system(format!(
            "{call}: task `{task}` does not read a queue the journal can hand transactions \
             to; tasks it can: {}",
            self.targets()
        ))
        .non_retryable())
    }

    /// The tasks the journal can hand transactions to, for error messages.
    pub fn targets(&self) -> String {
        let names: BTreeSet<&str> = self
            .queues
            .keys()
            .chain(&self.relayed)
            .map(String::as_str)
            .collect();
        if names.is_empty() {
            return "none (no task reads a queue the journal can hand transactions to)".to_owned();
        }
        names.into_iter().collect::<Vec<_>>().join(", ")
    }
}

/// One continuation: `on_complete = "task"`, `{ task = "...", when = "success" |
/// "failure" | "always" }`, or a list of those (one task on success, another on failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnComplete {
    /// The task that receives `{"previous_task_id", "previous_task", "status",
    /// "previous_input", "previous_output", "error"}`.
    pub task: String,
    /// When it is sent. Default: `"success"`.
    #[serde(default)]
    pub when: When,
}

/// Which completions send the continuation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// The transaction succeeded (it was acknowledged).
    #[default]
    Success,
    /// It failed (dead-lettered or dropped): a compensation.
    Failure,
    /// Either.
    Always,
}

impl When {
    /// Whether a completion that `succeeded` (or not) sends the continuation.
    pub fn matches(self, succeeded: bool) -> bool {
        match self {
            When::Success => succeeded,
            When::Failure => !succeeded,
            When::Always => true,
        }
    }
}

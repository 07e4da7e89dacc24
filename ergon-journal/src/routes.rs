//! Where the journal hands transactions over: each task's input queue, and each task's
//! `on_complete` continuation. The runner resolves both when it builds the plan.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The tasks the journal can send transactions to, by the local queue they read
/// (`spawn` targets, continuations), and the continuations of each task that has some.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    queues: BTreeMap<String, String>,
    continuations: BTreeMap<String, Vec<OnComplete>>,
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

    /// Task `task` continues with `on_complete` (besides the continuations it has).
    #[must_use]
    pub fn on_complete(mut self, task: impl Into<String>, on_complete: OnComplete) -> Self {
        self.continuations
            .entry(task.into())
            .or_default()
            .push(on_complete);
        self
    }

    /// The queue task `task` reads, if the journal can hand it transactions.
    pub fn queue_of(&self, task: &str) -> Option<&str> {
        self.queues.get(task).map(String::as_str)
    }

    /// The continuations of task `task`.
    pub fn continuations_of(&self, task: &str) -> &[OnComplete] {
        self.continuations.get(task).map_or(&[], Vec::as_slice)
    }

    /// The tasks the journal can hand transactions to, for error messages.
    pub fn targets(&self) -> String {
        if self.queues.is_empty() {
            return "none (no task reads a local queue in the journal's file)".to_owned();
        }
        let names: Vec<&str> = self.queues.keys().map(String::as_str).collect();
        names.join(", ")
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

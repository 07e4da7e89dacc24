//! What the journal holds of one transaction in one task: a [`Node`] of its lineage.

use serde::Serialize;

/// Where a node's transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Spawned or continued into its task's queue, not completed yet.
    Queued,
    /// Its lifecycle ended and it was acknowledged.
    Succeeded,
    /// Its lifecycle ended in a failure: dead-lettered or dropped.
    Failed,
    /// Withdrawn from its queue before it ran (`cancel_children`).
    Cancelled,
}

impl Status {
    /// The name stored and printed: `queued`, `succeeded`, `failed`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// The status called `name` ([`Status::as_str`]).
    pub fn named(name: &str) -> Option<Status> {
        match name {
            "queued" => Some(Status::Queued),
            "succeeded" => Some(Status::Succeeded),
            "failed" => Some(Status::Failed),
            "cancelled" => Some(Status::Cancelled),
            _ => None,
        }
    }
}

/// One transaction in one task, as journaled: queued by a spawn or a continuation, then
/// terminal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// The task (`[tasks.NAME]`).
    pub task: String,
    /// The transaction id.
    pub id: String,
    /// The transaction that produced it (`ergon.parent_id`), if any.
    pub parent_id: Option<String>,
    /// The first transaction of its lineage (`ergon.root_id`; its own id for a root).
    pub root_id: String,
    /// Its tags, inherited along its lineage.
    pub tags: Vec<String>,
    /// Succeeded or failed.
    pub status: Status,
    /// How it was settled: `ack`, `dead_letter` or `drop` (empty while queued).
    pub settlement: String,
    /// Attempts its steps made (1 when nothing was retried).
    pub attempts: u32,
    /// Its delivery count when it completed.
    pub deliveries: u32,
    /// Outbound transactions it produced (confirmed by its output).
    pub children: u32,
    /// The failure: the step that failed for good, its error category and message.
    pub error: Option<NodeError>,
    /// The W3C trace id of its trace, when it travelled with a `traceparent`.
    pub trace_id: Option<String>,
    /// When its lifecycle started and ended, in Unix milliseconds (while queued: when it
    /// was queued).
    pub started_at_ms: i64,
    /// See `started_at_ms`.
    pub finished_at_ms: i64,
    /// Its output, when its task records one and it fit `journal.max_output`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// How the journal reached it from its parent: `spawn` (a spawned child), `then` (a
    /// continuation: `on_complete` or a parked wait); none for a transaction delivered
    /// otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
}

impl Node {
    /// How long its lifecycle took, in milliseconds.
    pub fn duration_ms(&self) -> i64 {
        self.finished_at_ms - self.started_at_ms
    }
}

/// Why a node failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeError {
    /// The step that failed for good (`process`, `success`, `fetch` for a transaction
    /// delivered too often, ...).
    pub step: String,
    /// `business`, `system` or `timeout`.
    pub category: String,
    /// The error with its cause chain.
    pub message: String,
}

/// Which nodes [`list`](crate::JournalReader::list) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only the children of this transaction id.
    pub parent: Option<String>,
    /// Only the nodes of this root's lineage (the root included).
    pub root: Option<String>,
    /// Only nodes with this status.
    pub status: Option<Status>,
    /// At most this many, oldest first.
    pub limit: usize,
}

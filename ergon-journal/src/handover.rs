//! What the journal hands over, the same in every backend: the payload of a
//! continuation (`on_complete`) and of a decided wait, the transactions that carry them,
//! and how a completion reads (its status, its capped output, its trace id).

use ergon_core::journal::{Completion, MemberState, WaitOutcome};
use ergon_core::transaction::{Metadata, meta};
use ergon_core::{Settlement, Transaction};
use serde_json::{Value, json};

/// A continuation of a wait lists up to this many members one by one; above, members
/// that succeeded without an output are counted (`statuses`), not listed, so a fan-in of
/// 100,000 no-op children does not carry a 6 MB list.
pub(crate) const LISTED: u64 = 1_000;

/// How a node the journal hands over is reached from its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edge {
    /// Spawned by its parent's step.
    Spawn,
    /// A continuation: its parent's `on_complete`, or a parked wait of its parent.
    Then,
    /// A tagged fan-in batch of its parent's (or its root's) results.
    Batch,
    /// A node (or an item) of a DAG run its parent started.
    Node,
}

impl Edge {
    /// The name stored in the node's `edge` column.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Edge::Spawn => "spawn",
            Edge::Then => "then",
            Edge::Batch => "batch",
            Edge::Node => "node",
        }
    }
}

/// The status a completion records (`succeeded` or `failed`) and its failure.
pub(crate) fn status_of(
    settlement: &Settlement,
) -> (&'static str, Option<&ergon_core::connector::Failure>) {
    match settlement {
        Settlement::DeadLetter(failure) | Settlement::Drop(failure) => ("failed", Some(failure)),
        Settlement::Ack | Settlement::Requeue => ("succeeded", None),
    }
}

/// The output of `c` when it fits `max_output` bytes; a larger one is logged, not
/// recorded.
pub(crate) fn capped_output(c: &Completion, max_output: usize) -> Option<&str> {
    c.output.as_deref().filter(|output| {
        let fits = output.len() <= max_output;
        if !fits {
            tracing::warn!(
                task = &*c.task,
                message_id = c.transaction.id(),
                bytes = output.len(),
                max_output,
                "Output larger than journal.max_output: not recorded"
            );
        }
        fits
    })
}

/// The continuation `c` sends to task `next` (its `on_complete`): a child of `c`'s
/// transaction with a deterministic id, carrying whose continuation it is, how it ended,
/// its input (as JSON when it is JSON, else as text), its output and its error.
pub(crate) fn continuation(c: &Completion, next: &str, output: Option<&str>) -> Transaction {
    let (status, failure) = status_of(&c.settlement);
    let input = c.transaction.payload_value();
    let body = json!({
        "previous_task_id": c.transaction.id(),
        "previous_task": &*c.task,
        "status": status,
        "previous_input": input,
        "previous_output": output.and_then(|o| serde_json::from_str::<Value>(o).ok()),
        "error": failure.map(|f| {
            json!({ "step": f.step, "category": f.category.as_str(), "message": f.message })
        }),
    });
    let id = format!("{}/{}/then/{next}", c.transaction.id(), c.task);
    c.transaction.child(id, body.to_string()).build()
}

/// A decided wait, as its continuation receives it.
pub(crate) struct Decided {
    /// The wait's key: the continuation's id.
    pub key: String,
    /// The task that parked it.
    pub owner_task: String,
    /// The transaction that parked it.
    pub owner_id: String,
    /// That transaction's metadata, as stored (JSON): the continuation inherits its
    /// lineage and trace context.
    pub owner_metadata: String,
    /// How it was decided.
    pub outcome: WaitOutcome,
    /// Members, terminal members, succeeded members.
    pub total: u64,
    pub done: u64,
    pub succeeded: u64,
    /// The members listed (all up to [`LISTED`], else those that did not succeed or have
    /// an output).
    pub members: Vec<MemberState>,
}

impl Decided {
    /// The continuation: a child of the owner with the wait's key as its id.
    pub(crate) fn continuation(self) -> Transaction {
        let statuses = json!({
            "succeeded": self.succeeded,
            "failed": self.done - self.succeeded,
            "pending": self.total - self.done,
        });
        let body = json!({
            "previous_task_id": self.owner_id,
            "previous_task": self.owner_task,
            "outcome": self.outcome.as_str(),
            "total": self.total,
            "statuses": statuses,
            "members": self.members,
        });
        let owner = rebuilt(&self.owner_id, &[], &self.owner_metadata);
        owner.child(self.key, body.to_string()).build()
    }
}

/// A transaction rebuilt from its stored id, payload and metadata (JSON, as
/// [`ergon_connectors::local::metadata_json`] writes it).
pub(crate) fn rebuilt(id: &str, payload: &[u8], metadata: &str) -> Transaction {
    let metadata: Metadata = serde_json::from_str(metadata).unwrap_or_default();
    metadata
        .into_iter()
        .fold(
            Transaction::builder(id).payload(payload.to_vec()),
            |tx, (k, v)| tx.meta(k, v),
        )
        .build()
}

/// The W3C trace id of `tx`'s trace (`traceparent`'s second field), if it has one.
pub(crate) fn trace_id(tx: &Transaction) -> Option<&str> {
    tx.meta(meta::TRACEPARENT)
        .and_then(|traceparent| traceparent.split('-').nth(1))
}

/// The tags of `tx` as stored (comma-separated).
pub(crate) fn tags(tx: &Transaction) -> &str {
    tx.meta(meta::TAGS).unwrap_or("")
}

//! Reading a journal back, whatever its backend: what `get`, `list`, `trace` and
//! `journal purge` use.

use async_trait::async_trait;
use ergon_core::TaskError;

use ergon_core::journal::Member;

use crate::node::{Filter, Node};
use crate::run::view::{RunDetail, RunSummary};

/// A journal opened for reading (and purging).
#[async_trait]
pub trait JournalReader: Send + Sync {
    /// The nodes of transaction `id`, one per task it completed in (usually one).
    async fn get(&self, id: &str) -> Result<Vec<Node>, TaskError>;

    /// The nodes `filter` selects, oldest first.
    async fn list(&self, filter: &Filter) -> Result<Vec<Node>, TaskError>;

    /// The items fan-in batch `batch_id` holds, in the order they arrived (empty for a
    /// transaction that is not a batch).
    async fn batch_items(&self, batch_id: &str) -> Result<Vec<Member>, TaskError>;

    /// The DAG runs in `status` (every status when `None`), newest first, at most
    /// `limit`.
    async fn runs(&self, status: Option<&str>, limit: usize) -> Result<Vec<RunSummary>, TaskError>;

    /// Run `run_id` with its nodes, if the journal has it.
    async fn run(&self, run_id: &str) -> Result<Option<RunDetail>, TaskError>;

    /// Deletes the terminal records that ended before `before_ms` (Unix milliseconds) and
    /// the waits decided before then; returns how many records.
    async fn purge_before(&self, before_ms: i64) -> Result<usize, TaskError>;
}

/// A run read back as stored (summary, definition, state), with its nodes.
///
/// # Errors
///
/// Its stored JSON does not decode.
pub(crate) fn detail(
    stored: Option<(RunSummary, String, String)>,
) -> Result<Option<RunDetail>, TaskError> {
    stored
        .map(|(summary, definition, state)| RunDetail::from_stored(summary, &definition, &state))
        .transpose()
        .map_err(TaskError::system)
}

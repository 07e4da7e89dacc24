//! What starting a run hands the journal.

use crate::transaction::Transaction;

use super::RunPlan;

/// A run to start ([`Journal::start_run`](crate::journal::Journal::start_run)): built
/// by [`Context::start_run`](crate::Context::start_run), or by the runner for each
/// transaction of a `[workflows.NAME]` table's `start` connector.
#[derive(Debug, Clone)]
pub struct RunStart {
    /// Its id, unique in the journal: starting an id the journal knows does nothing, so
    /// a starter that runs again starts nothing twice. Its nodes are `<run_id>/<node>`.
    pub run_id: String,
    /// The workflow it runs (`[workflows.NAME]`), or the name a planner gives it.
    pub workflow: String,
    /// The task starting it.
    pub owner_task: String,
    /// The transaction starting it: its nodes are children of it.
    pub owner: Transaction,
    /// Its plan, validated by the journal against the tasks it can hand work to.
    pub plan: RunPlan,
    /// Its input: `{{ input }}` in templates.
    pub input: serde_json::Value,
    /// When it times out, in Unix milliseconds: unfinished nodes are cancelled, partial
    /// results kept.
    pub deadline_ms: Option<i64>,
    /// The task receiving `{"run_id", "workflow", "status", "results", "failed",
    /// "skipped", "cancelled"}` when it ends.
    pub on_complete: Option<String>,
    /// The most nodes of the run running at once (`None`: no limit).
    pub max_parallel: Option<u32>,
}

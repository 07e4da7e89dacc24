//! Runs as `runs` and `trace` show them, read back from their rows the same way in
//! every backend.

use ergon_core::journal::dag::RunPlan;
use serde::Serialize;

use super::revalidate;
use super::state::{Definition, NodeState, State};

/// A run in a listing: its progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Its id.
    pub run_id: String,
    /// The workflow it runs.
    pub workflow: String,
    /// `running`, `succeeded`, `failed` or `timed_out`.
    pub status: String,
    /// Its nodes (groups' joins included).
    pub nodes_total: u64,
    /// Those that ended.
    pub nodes_done: u64,
    /// Those that failed or were cancelled.
    pub nodes_failed: u64,
    /// When it started, in Unix milliseconds.
    pub created_at: i64,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// When it times out.
    pub deadline_ms: Option<i64>,
}

/// A run with its nodes, in dependency order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    /// Its progress.
    #[serde(flatten)]
    pub summary: RunSummary,
    /// Its nodes, each after the nodes it depends on.
    pub nodes: Vec<RunNode>,
    /// Its plan as stored (what an extension is checked against).
    #[serde(skip)]
    pub plan: RunPlan,
}

/// A node of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunNode {
    /// Its name (`group:NAME` for a group's join).
    pub name: String,
    /// The task that runs it (empty for a join).
    pub task: String,
    /// What it waits for.
    pub depends_on: Vec<String>,
    /// Where it is, its output, error, items and times.
    #[serde(flatten)]
    pub state: NodeState,
}

impl RunDetail {
    /// The run `summary` whose row holds `definition` and `state`.
    ///
    /// # Errors
    ///
    /// The stored JSON does not decode.
    pub(crate) fn from_stored(
        summary: RunSummary,
        definition: &str,
        state: &str,
    ) -> Result<Self, String> {
        let id = &summary.run_id;
        let definition: Definition = serde_json::from_str(definition)
            .map_err(|err| format!("run {id}: its definition does not decode: {err}"))?;
        let mut state: State = serde_json::from_str(state)
            .map_err(|err| format!("run {id}: its state does not decode: {err}"))?;
        let plan = revalidate(&definition.plan)?;
        let nodes = plan
            .in_order()
            .map(|node| RunNode {
                name: node.name.clone(),
                task: node.task.clone(),
                depends_on: node.depends_on.clone(),
                state: state.nodes.remove(&node.name).unwrap_or_default(),
            })
            .collect();
        Ok(Self {
            summary,
            nodes,
            plan: definition.plan,
        })
    }
}

//! What a run keeps between commits: its definition (fixed when it starts, grown by
//! extensions) and the state of each node. Both are stored as JSON in the run's row, so
//! a node's completion reads and writes one row, whatever the backend.

use std::collections::BTreeMap;

use ergon_core::journal::dag::{NodeOutcome, RunPlan};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a run was started with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Definition {
    /// The workflow name it is listed under.
    pub workflow: String,
    /// Its plan, as started (and extended).
    pub plan: RunPlan,
    /// `{{ input }}`.
    pub input: Value,
    /// The task its result goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_complete: Option<String>,
    /// The most nodes running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
}

/// The state of every node, by name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    pub nodes: BTreeMap<String, NodeState>,
    /// Set when the run ended by its deadline.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
}

/// Where a node is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Its trigger is not decided yet.
    #[default]
    Waiting,
    /// Its trigger allows it; held back by the run's `max_parallel`.
    Ready,
    /// Handed to its task (or its items to theirs).
    Running,
    /// Its task succeeded (or enough of its items did).
    Succeeded,
    /// Its task failed, too many of its items did, or its input could not be made.
    Failed,
    /// Its trigger can no longer be met (or its expansion was empty with `on_empty =
    /// "skip"`).
    Skipped,
    /// The run timed out before it ended.
    Cancelled,
}

impl Phase {
    /// `waiting`, `ready`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Ready => "ready",
            Phase::Running => "running",
            Phase::Succeeded => "succeeded",
            Phase::Failed => "failed",
            Phase::Skipped => "skipped",
            Phase::Cancelled => "cancelled",
        }
    }

    /// How its dependents' triggers see it, once it ended.
    pub fn outcome(self) -> Option<NodeOutcome> {
        match self {
            Phase::Succeeded => Some(NodeOutcome::Succeeded),
            Phase::Failed | Phase::Cancelled => Some(NodeOutcome::Failed),
            Phase::Skipped => Some(NodeOutcome::Skipped),
            Phase::Waiting | Phase::Ready | Phase::Running => None,
        }
    }

    /// Whether it ended.
    pub fn is_terminal(self) -> bool {
        self.outcome().is_some()
    }
}

/// One node's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    /// Where it is.
    pub phase: Phase,
    /// Its output, once it succeeded (kept for templates, the result and `trace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it failed, was skipped or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its items, when it is expanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Items>,
    /// When it was handed over, in Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

/// An expanded node's items, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Items {
    /// How many it has.
    pub total: u32,
    /// How many ended.
    pub done: u32,
    /// How many of those failed.
    pub failed: u32,
}

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Nodes are still waiting or running.
    Running,
    /// Every node ended, and every failure was taken in by a dependent that succeeded
    /// despite it (or none failed).
    Succeeded,
    /// Every node ended and a node failed that no dependent took in (one that ran and
    /// succeeded despite it); partial results are kept.
    Failed,
    /// Its deadline came first.
    TimedOut,
}

impl RunStatus {
    /// `running`, `succeeded`, `failed`, `timed_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
        }
    }
}

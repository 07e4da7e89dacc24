//! DAG runs from a task: an orchestrator starts a run of the plan it made (from code, or
//! from a JSON plan an LLM wrote), and a running node may extend its run.
//!
//! ```no_run
//! # use ergon_core::{Context, TaskError, Transaction};
//! # use ergon_core::journal::dag::{PlannedNode, RunPlan};
//! # async fn plan(cx: &Context, tx: &Transaction) -> Result<(), TaskError> {
//! let plan = RunPlan::new(vec![
//!     PlannedNode::new("extract", "text_extraction"),
//!     PlannedNode::new("summary", "summarize").after(["extract"]),
//! ]);
//! // Validated (only tasks the journal can hand work to, no cycle), then one commit.
//! cx.start_run(tx, plan).on_complete("report").start().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::context::Context;
use crate::error::TaskError;
use crate::journal::dag::{PlannedNode, RunPlan, RunStart};
use crate::journal::deadline_in;
use crate::transaction::Transaction;

impl Context {
    /// Starts a run of `plan`, owned by `owner` (its nodes are children of it): see
    /// [`RunBuilder`].
    pub fn start_run(&self, owner: &Transaction, plan: RunPlan) -> RunBuilder<'_> {
        RunBuilder {
            cx: self,
            owner: owner.clone(),
            plan,
            run_id: None,
            workflow: None,
            input: None,
            timeout: None,
            on_complete: None,
            max_parallel: None,
        }
    }

    /// Adds `nodes` to the run that `node` (the transaction this task is running as a
    /// node of a run) belongs to. They may depend on the run's nodes; a node that is done
    /// already counts as done.
    ///
    /// # Errors
    ///
    /// No journal; `node` is not a node of a running run; the extended plan is not valid
    /// (a business error naming the problem).
    pub async fn extend_run(
        &self,
        node: &Transaction,
        nodes: Vec<PlannedNode>,
    ) -> Result<(), TaskError> {
        let journal = self.journal_for("extend_run")?;
        journal.extend_run(node, nodes).await
    }
}

/// A run being set up: `cx.start_run(tx, plan).timeout(..).on_complete("task").start()`.
#[must_use = "a run starts with `.start().await`"]
pub struct RunBuilder<'a> {
    cx: &'a Context,
    owner: Transaction,
    plan: RunPlan,
    run_id: Option<String>,
    workflow: Option<String>,
    input: Option<serde_json::Value>,
    timeout: Option<Duration>,
    on_complete: Option<String>,
    max_parallel: Option<u32>,
}

impl RunBuilder<'_> {
    /// Its id (default: the owner's id, so one transaction starts one run however often it
    /// runs).
    pub fn id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// The workflow name it is listed under (default: the starting task's name).
    pub fn workflow(mut self, name: impl Into<String>) -> Self {
        self.workflow = Some(name.into());
        self
    }

    /// Its input, `{{ input }}` in templates (default: the owner's payload, as JSON when
    /// it parses, else as a string).
    pub fn input(mut self, input: serde_json::Value) -> Self {
        self.input = Some(input);
        self
    }

    /// Times it out this long after it starts.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends its results to `task` when it ends.
    pub fn on_complete(mut self, task: impl Into<String>) -> Self {
        self.on_complete = Some(task.into());
        self
    }

    /// Runs at most `n` of its nodes at once.
    pub fn max_parallel(mut self, n: u32) -> Self {
        self.max_parallel = Some(n);
        self
    }

    /// Validates the plan and starts the run; returns its id (also when it had started
    /// already).
    ///
    /// # Errors
    ///
    /// No journal; an invalid plan (a non-retryable business error naming the node, the
    /// missing dependency, or the cycle's path); the journal cannot commit.
    pub async fn start(self) -> Result<String, TaskError> {
        let journal = self.cx.journal_for("start_run")?;
        let run_id = self.run_id.unwrap_or_else(|| self.owner.id().to_owned());
        let input = self.input.unwrap_or_else(|| self.owner.payload_value());
        journal
            .start_run(RunStart {
                run_id: run_id.clone(),
                workflow: self
                    .workflow
                    .unwrap_or_else(|| self.cx.task_name().to_owned()),
                owner_task: self.cx.task_name().to_owned(),
                owner: self.owner,
                plan: self.plan,
                input,
                deadline_ms: self.timeout.map(deadline_in),
                on_complete: self.on_complete,
                max_parallel: self.max_parallel,
            })
            .await?;
        Ok(run_id)
    }
}

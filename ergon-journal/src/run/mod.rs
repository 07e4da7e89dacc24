//! DAG runs, advanced by the journal in the commits that complete their nodes.
//!
//! ```text
//! start_run ──▶ validate ──▶ ergon_run row + roots handed over ─┐      (one commit)
//!                                                              ▼
//! node completes ──▶ its state flips ──▶ dependents' triggers decide:
//!                      run (render input, expand) │ wait │ skip (cascades)
//!                  ──▶ all ended? result to on_complete              (same commit)
//! deadline ──▶ unfinished nodes cancelled, queued ones withdrawn, result sent
//! ```
//!
//! This module is the run's logic with no I/O: [`Run`] takes a completion (or a start,
//! a timeout, an extension) and says what to do ([`Effects`]): transactions to hand to
//! tasks, items to remember, transactions to withdraw, events to publish, the result.
//! Each store loads the run's row, applies the effects in its commit, and saves it.
//!
//! A run's state is one row (like Argo's workflow status or Temporal's mutable state)
//! rather than one wait per edge: a completion reads and writes the row of its run
//! only, and a run has at most `max_nodes` nodes. Expanded items are not in it: they are
//! counted, and their outputs are read from their journal nodes when the last one ends.

mod ended;
pub mod expansion;
mod shape;
mod state;
pub(crate) mod template;
pub mod view;
mod writes;

use std::collections::BTreeMap;
use std::sync::Arc;

use ergon_core::journal::dag::{
    OnEmpty, OutputMode, PlanError, PlanLimits, PlannedNode, Readiness, RunPlan, ValidPlan,
};
use serde_json::{Map, Value, json};

pub(crate) use ended::NodeEnded;
pub use expansion::{Expander, Expanders};
use shape::Shape;
pub(crate) use state::Definition;
use state::State;
pub use state::{Items, NodeState, Phase, RunStatus};

use crate::routes::Routes;

/// A transaction a run hands to a task: a node, or an item of an expanded node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dispatch {
    pub task: String,
    /// `<run>/<node>` or `<run>/<node>/<index>`.
    pub id: String,
    pub node: String,
    /// Index and key of an item.
    pub item: Option<(u32, String)>,
    pub payload: Value,
}

/// A transition of a node or of the run, for the progress events.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunEvent {
    /// The run.
    pub run_id: String,
    /// The workflow it runs.
    pub workflow: String,
    /// The node, or `None` for the run itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its new status (a [`Phase`] or a [`RunStatus`] name).
    pub status: &'static str,
    /// Why, for a failure, skip or cancellation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
}

/// The result of an ended run, for its `on_complete` task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finished {
    pub status: RunStatus,
    pub on_complete: Option<String>,
    pub payload: Value,
}

/// What a transition asks its store to do, in the same commit.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub dispatch: Vec<Dispatch>,
    /// Transactions (task, id) handed over and now to be withdrawn (a timed-out run).
    pub withdraw: Vec<(String, String)>,
    pub events: Vec<RunEvent>,
    pub finished: Option<Finished>,
}

/// An item as its node's join reads it back from the journal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ItemResult {
    pub key: String,
    pub succeeded: bool,
    pub output: Option<Value>,
}

/// A run being advanced: its definition and validated plan (shared: see [`Shape`]), its
/// state.
pub(crate) struct Run<'a> {
    pub id: String,
    shape: Arc<Shape>,
    /// Whether the definition differs from the stored one (a new or extended run): only
    /// then is it written back.
    definition_changed: bool,
    state: State,
    expanders: &'a Expanders,
    now: i64,
    pub effects: Effects,
}

impl<'a> Run<'a> {
    /// A new run of `definition` (its plan validated already by [`check`]).
    pub fn new(
        id: String,
        definition: Definition,
        expanders: &'a Expanders,
        now: i64,
    ) -> Result<Self, String> {
        let shape = Shape::of(definition)?;
        let nodes = shape
            .plan
            .nodes()
            .iter()
            .map(|node| (node.name.clone(), NodeState::default()))
            .collect();
        Ok(Self {
            id,
            shape,
            definition_changed: true,
            state: State {
                nodes,
                timed_out: false,
            },
            expanders,
            now,
            effects: Effects::default(),
        })
    }

    /// The run stored as `definition` and `state` (JSON).
    pub fn load(
        id: String,
        definition: &str,
        state: &str,
        expanders: &'a Expanders,
        now: i64,
    ) -> Result<Self, String> {
        let shape = Shape::stored(&id, definition)?;
        let state: State = serde_json::from_str(state)
            .map_err(|err| format!("run {id}: its stored state does not decode: {err}"))?;
        Ok(Self {
            id,
            shape,
            definition_changed: false,
            state,
            expanders,
            now,
            effects: Effects::default(),
        })
    }

    /// The definition to store, if it changed since it was loaded (the row keeps the
    /// one it has otherwise: most of a run's row, written once).
    pub fn changed_definition_json(&self) -> Option<String> {
        self.definition_changed.then(|| self.shape.json.clone())
    }

    /// The state, as stored.
    pub fn state_json(&self) -> String {
        serde_json::to_string(&self.state).unwrap_or_default()
    }

    /// The task that runs node `name` (`None` for a join or an unknown node).
    pub fn task_of(&self, name: &str) -> Option<&str> {
        self.shape
            .plan
            .node(name)
            .filter(|node| !node.is_join())
            .map(|node| node.task.as_str())
    }

    /// Nodes, nodes ended, nodes failed.
    pub fn counts(&self) -> (usize, usize, usize) {
        let phases = self.state.nodes.values().map(|n| n.phase);
        let ended = phases.clone().filter(|p| p.is_terminal()).count();
        let failed = phases
            .filter(|p| matches!(p, Phase::Failed | Phase::Cancelled))
            .count();
        (self.state.nodes.len(), ended, failed)
    }

    /// How it stands.
    pub fn status(&self) -> RunStatus {
        if self.state.timed_out {
            return RunStatus::TimedOut;
        }
        let phases = || self.state.nodes.values().map(|n| n.phase);
        if !phases().all(Phase::is_terminal) {
            RunStatus::Running
        } else if self
            .shape
            .plan
            .nodes()
            .iter()
            .any(|node| self.failed_for_good(node))
        {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        }
    }

    /// Whether `node` failed and nothing took the failure in: it has no dependents, or
    /// one of them did not succeed. A failure a dependent ran and succeeded despite (an
    /// `all_done` cleanup, a group that allows it) does not fail the run — the rule of
    /// Airflow's leaves.
    fn failed_for_good(&self, node: &PlannedNode) -> bool {
        if self.state.nodes[&node.name].phase != Phase::Failed {
            return false;
        }
        let mut dependents = self
            .shape
            .plan
            .nodes()
            .iter()
            .filter(|other| other.depends_on.contains(&node.name))
            .peekable();
        dependents.peek().is_none()
            || dependents.any(|d| self.state.nodes[&d.name].phase != Phase::Succeeded)
    }

    /// Starts it: its roots are handed over (or resolved, or failed).
    pub fn start(&mut self) {
        self.event(None, RunStatus::Running.as_str(), None);
        self.advance();
    }

    /// Node `name` (not expanded) ended, with its output or its error.
    pub fn node_ended(
        &mut self,
        name: &str,
        succeeded: bool,
        output: Option<Value>,
        error: Option<String>,
    ) {
        let running = self
            .state
            .nodes
            .get(name)
            .is_some_and(|n| n.phase == Phase::Running && n.items.is_none());
        if !running {
            return;
        }
        if succeeded {
            self.end(name, Phase::Succeeded, output, None);
        } else {
            self.end(name, Phase::Failed, None, error);
        }
        self.advance();
    }

    /// An item of expanded node `name` ended: whether it was its last, so that the
    /// store reads the items back and calls [`Run::join`].
    pub fn item_ended(&mut self, name: &str, succeeded: bool) -> bool {
        let Some(node) = self.state.nodes.get_mut(name) else {
            return false;
        };
        let Some(items) = node.items.as_mut().filter(|_| node.phase == Phase::Running) else {
            return false;
        };
        items.done += 1;
        items.failed += u32::from(!succeeded);
        items.done >= items.total
    }

    /// Expanded node `name`'s items all ended: its output is made of theirs (in item
    /// order), unless more failed than it allows.
    pub fn join(&mut self, name: &str, results: Vec<ItemResult>) {
        let Some(node) = self.shape.plan.node(name) else {
            return;
        };
        let (mode, allowed) = (node.output, node.allow_failures);
        let total = u32::try_from(results.len()).unwrap_or(u32::MAX);
        let failed = u32::try_from(results.iter().filter(|r| !r.succeeded).count()).unwrap_or(0);
        if failed > allowed.of(total) {
            let error = format!("{failed} of {total} items failed (allowed: {allowed})");
            self.end(name, Phase::Failed, None, Some(error));
        } else {
            let output = match mode {
                OutputMode::Separate => Value::Object(
                    results
                        .into_iter()
                        .map(|r| (r.key, r.output.unwrap_or(Value::Null)))
                        .collect(),
                ),
                OutputMode::Single => results
                    .into_iter()
                    .next()
                    .and_then(|r| r.output)
                    .unwrap_or(Value::Null),
                OutputMode::Merge => Value::Array(
                    results
                        .into_iter()
                        .map(|r| r.output.unwrap_or(Value::Null))
                        .collect(),
                ),
            };
            self.end(name, Phase::Succeeded, Some(output), None);
        }
        self.advance();
    }

    /// Its deadline passed: every node not ended is cancelled (what was handed over is
    /// withdrawn where it still waits), and the run ends with what it has.
    pub fn time_out(&mut self) {
        if self.status() != RunStatus::Running {
            return;
        }
        self.state.timed_out = true;
        let open: Vec<String> = self
            .state
            .nodes
            .iter()
            .filter(|(_, n)| !n.phase.is_terminal())
            .map(|(name, _)| name.clone())
            .collect();
        for name in open {
            let node = &self.state.nodes[&name];
            if node.phase == Phase::Running
                && let Some(task) = self.shape.plan.node(&name).map(|n| n.task.clone())
            {
                match node.items {
                    Some(items) => self.effects.withdraw.extend(
                        (0..items.total).map(|i| (task.clone(), format!("{}/{name}/{i}", self.id))),
                    ),
                    None => self
                        .effects
                        .withdraw
                        .push((task, format!("{}/{name}", self.id))),
                }
            }
            self.end(
                &name,
                Phase::Cancelled,
                None,
                Some("the run timed out".into()),
            );
        }
        self.finish();
    }

    /// Adds `nodes` to the plan (validated against it) and starts those their triggers
    /// allow.
    ///
    /// # Errors
    ///
    /// The extended plan is not valid, or the run has ended.
    pub fn extend(&mut self, nodes: Vec<PlannedNode>) -> Result<(), String> {
        if self.status() != RunStatus::Running {
            return Err(format!("run {} has ended; it cannot be extended", self.id));
        }
        let mut definition = self.shape.definition.clone();
        let added: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        definition.plan.nodes.extend(nodes);
        self.shape = Shape::of(definition)?;
        self.definition_changed = true;
        for name in added {
            self.state.nodes.entry(name).or_default();
        }
        self.advance();
        Ok(())
    }

    /// Decides every waiting node in dependency order, and starts the ready ones the
    /// run's parallelism allows; a node resolved on the spot (a group's join, an empty
    /// expansion, an input that fails) is seen by the nodes after it in the same pass.
    /// Ends the run once every node has.
    fn advance(&mut self) {
        let order: Vec<String> = self.shape.plan.in_order().map(|n| n.name.clone()).collect();
        for name in order {
            if self.state.nodes[&name].phase == Phase::Waiting {
                let node = self
                    .shape
                    .plan
                    .node(&name)
                    .expect("ordered nodes are planned");
                let upstream: Vec<_> = node
                    .depends_on
                    .iter()
                    .map(|up| self.state.nodes[up].phase.outcome())
                    .collect();
                match node.trigger.decide(&upstream) {
                    Readiness::Wait => {}
                    Readiness::Run => {
                        self.state.nodes.get_mut(&name).expect("planned").phase = Phase::Ready
                    }
                    Readiness::Skip => {
                        let reason = format!("trigger {:?} can no longer be met", node.trigger);
                        self.end(&name, Phase::Skipped, None, Some(reason));
                    }
                }
            }
            if self.state.nodes[&name].phase == Phase::Ready && self.has_room() {
                self.launch(&name);
            }
        }
        if self.status() != RunStatus::Running {
            self.finish();
        }
    }

    /// Whether another node may start under `max_parallel`.
    fn has_room(&self) -> bool {
        self.shape.definition.max_parallel.is_none_or(|max| {
            let running = self
                .state
                .nodes
                .values()
                .filter(|n| n.phase == Phase::Running)
                .count();
            running < max as usize
        })
    }

    /// Starts ready node `name`: resolves a join, expands, or hands it to its task.
    fn launch(&mut self, name: &str) {
        let node = self
            .shape
            .plan
            .node(name)
            .expect("launched nodes are planned")
            .clone();
        if node.is_join() {
            return self.resolve_join(&node);
        }
        let context = self.context(name);
        let Some(expand) = &node.expand else {
            let payload = match &node.input {
                Some(template) => template::render(template, &context),
                None => Ok(default_input(&context, &node, None)),
            };
            return match payload {
                Ok(payload) => {
                    let id = format!("{}/{name}", self.id);
                    self.hand_over(&node, id, None, payload);
                }
                Err(err) => self.end(name, Phase::Failed, None, Some(format!("input: {err}"))),
            };
        };
        let items = match expansion::items(expand, &context, self.expanders) {
            Ok(items) => items,
            Err(err) => return self.end(name, Phase::Failed, None, Some(format!("expand: {err}"))),
        };
        if node.output == OutputMode::Single && items.len() != 1 {
            let err = format!(
                "output = \"single\" needs exactly one item; the expansion yielded {}",
                items.len()
            );
            return self.end(name, Phase::Failed, None, Some(err));
        }
        if items.is_empty() {
            return match node.on_empty {
                OnEmpty::Succeed => {
                    let empty = if node.output == OutputMode::Separate {
                        json!({})
                    } else {
                        json!([])
                    };
                    self.end(name, Phase::Succeeded, Some(empty), None);
                }
                OnEmpty::Skip => self.end(
                    name,
                    Phase::Skipped,
                    None,
                    Some("the expansion yielded no item".into()),
                ),
            };
        }
        let mut payloads = Vec::with_capacity(items.len());
        for item in &items {
            let scope =
                expansion::item_scope(&context, expand, &item.value, item.index, Some(&item.key));
            let payload = match &node.input {
                Some(template) => template::render(template, &scope),
                None => Ok(default_input(&scope, &node, Some(item))),
            };
            match payload {
                Ok(payload) => payloads.push(payload),
                Err(err) => {
                    let err = format!("input of item {:?}: {err}", item.key);
                    return self.end(name, Phase::Failed, None, Some(err));
                }
            }
        }
        let total = u32::try_from(items.len()).unwrap_or(u32::MAX);
        for (item, payload) in items.into_iter().zip(payloads) {
            let id = format!("{}/{name}/{}", self.id, item.index);
            self.hand_over(&node, id, Some((item.index, item.key)), payload);
        }
        let state = self.state.nodes.get_mut(name).expect("planned");
        state.items = Some(Items {
            total,
            done: 0,
            failed: 0,
        });
    }

    /// Hands one transaction of `node` over and marks the node running.
    fn hand_over(
        &mut self,
        node: &PlannedNode,
        id: String,
        item: Option<(u32, String)>,
        payload: Value,
    ) {
        self.effects.dispatch.push(Dispatch {
            task: node.task.clone(),
            id,
            node: node.name.clone(),
            item,
            payload,
        });
        let state = self.state.nodes.get_mut(&node.name).expect("planned");
        if state.phase != Phase::Running {
            state.phase = Phase::Running;
            state.started_at = Some(self.now);
            self.event(Some(node.name.clone()), Phase::Running.as_str(), None);
        }
    }

    /// A group's join: failed when more of its nodes failed than it allows, skipped when
    /// all were skipped, else succeeded with their outputs by node.
    fn resolve_join(&mut self, join: &PlannedNode) {
        let members: Vec<&NodeState> = join
            .depends_on
            .iter()
            .map(|m| &self.state.nodes[m])
            .collect();
        let total = u32::try_from(members.len()).unwrap_or(u32::MAX);
        let failed = members
            .iter()
            .filter(|m| matches!(m.phase, Phase::Failed | Phase::Cancelled))
            .count();
        let failed = u32::try_from(failed).unwrap_or(u32::MAX);
        if failed > join.allow_failures.of(total) {
            let err = format!(
                "{failed} of {total} nodes failed (allowed: {})",
                join.allow_failures
            );
            return self.end(&join.name, Phase::Failed, None, Some(err));
        }
        if members.iter().all(|m| m.phase == Phase::Skipped) {
            return self.end(
                &join.name,
                Phase::Skipped,
                None,
                Some("every node of the group was skipped".into()),
            );
        }
        let outputs: Map<String, Value> = join
            .depends_on
            .iter()
            .filter_map(|m| {
                let state = &self.state.nodes[m];
                state
                    .output
                    .clone()
                    .filter(|_| state.phase == Phase::Succeeded)
                    .map(|o| (m.clone(), o))
            })
            .collect();
        self.end(
            &join.name,
            Phase::Succeeded,
            Some(Value::Object(outputs)),
            None,
        );
    }

    /// The template context of node `name`: `input`, `results` (every succeeded
    /// node's output), `run` and `node`.
    fn context(&self, name: &str) -> Value {
        let results: Map<String, Value> = self
            .state
            .nodes
            .iter()
            .filter(|(_, n)| n.phase == Phase::Succeeded)
            .map(|(name, n)| (name.clone(), n.output.clone().unwrap_or(Value::Null)))
            .collect();
        json!({
            "input": self.shape.definition.input,
            "results": results,
            "run": { "id": self.id, "workflow": self.shape.definition.workflow },
            "node": name,
        })
    }

    /// Ends node `name` in `phase`.
    fn end(&mut self, name: &str, phase: Phase, output: Option<Value>, error: Option<String>) {
        let state = self
            .state
            .nodes
            .get_mut(name)
            .expect("ended nodes are planned");
        state.phase = phase;
        state.output = output;
        state.error.clone_from(&error);
        state.finished_at = Some(self.now);
        self.event(Some(name.to_owned()), phase.as_str(), error);
    }

    /// The run ended: its result, for its `on_complete` task.
    fn finish(&mut self) {
        if self.effects.finished.is_some() {
            return;
        }
        let status = self.status();
        let mut results = Map::new();
        let mut failed = Vec::new();
        let mut skipped = Vec::new();
        let mut cancelled = Vec::new();
        for (name, node) in &self.state.nodes {
            match node.phase {
                Phase::Succeeded => {
                    results.insert(name.clone(), node.output.clone().unwrap_or(Value::Null));
                }
                Phase::Failed => failed.push(json!({ "node": name, "error": node.error })),
                Phase::Skipped => skipped.push(name.clone()),
                _ => cancelled.push(name.clone()),
            }
        }
        let payload = json!({
            "run_id": self.id,
            "workflow": self.shape.definition.workflow,
            "status": status.as_str(),
            "results": results,
            "failed": failed,
            "skipped": skipped,
            "cancelled": cancelled,
        });
        self.event(None, status.as_str(), None);
        self.effects.finished = Some(Finished {
            status,
            on_complete: self.shape.definition.on_complete.clone(),
            payload,
        });
    }

    fn event(&mut self, node: Option<String>, status: &'static str, error: Option<String>) {
        self.effects.events.push(RunEvent {
            run_id: self.id.clone(),
            workflow: self.shape.definition.workflow.clone(),
            node,
            status,
            error,
            at_ms: self.now,
        });
    }
}

/// What a node receives without an `input` template: the run's id and input, its name,
/// its upstream nodes' outputs, and its item.
fn default_input(context: &Value, node: &PlannedNode, item: Option<&expansion::Item>) -> Value {
    let upstream: Map<String, Value> = node
        .depends_on
        .iter()
        .filter_map(|up| context["results"].get(up).map(|o| (up.clone(), o.clone())))
        .collect();
    let mut input = json!({
        "run_id": context["run"]["id"],
        "node": node.name,
        "input": context["input"],
        "results": upstream,
    });
    if let Some(item) = item {
        input["item"] = item.value.clone();
        input["key"] = item.key.clone().into();
        input["index"] = item.index.into();
    }
    input
}

/// A stored plan, validated again to be ordered (it was checked against the tasks when
/// it started).
fn revalidate(plan: &RunPlan) -> Result<ValidPlan, String> {
    let limits = PlanLimits {
        max_nodes: usize::MAX,
    };
    plan.clone()
        .validate(|_| true, limits)
        .map_err(|err| err.to_string())
}

/// Checks `plan` before a run of it starts: the plan itself ([`RunPlan::validate`]
/// within `limits`), every task one the journal can hand work to, every template and
/// expression compiling, every custom expander registered.
///
/// # Errors
///
/// The first problem, naming the node.
pub fn check(
    plan: &RunPlan,
    routes: &Routes,
    expanders: &Expanders,
    limits: PlanLimits,
) -> Result<ValidPlan, PlanError> {
    let valid = plan.clone().validate(|task| routes.takes(task), limits)?;
    for node in valid.nodes() {
        let bad = |problem: String| PlanError::BadExpansion {
            node: node.name.clone(),
            problem,
        };
        if let Some(input) = &node.input {
            template::check(input).map_err(bad)?;
        }
        let Some(expand) = &node.expand else {
            continue;
        };
        if let Some(over) = &expand.over {
            template::check_expression(over).map_err(bad)?;
        }
        if let Some(key) = &expand.key {
            template::check_expression(key).map_err(bad)?;
        }
        for source in expand.matrix.iter().flat_map(BTreeMap::values) {
            if let Value::String(expression) = source {
                template::check_expression(expression).map_err(bad)?;
            }
        }
        if let Some(name) = expand.custom.as_ref().filter(|name| !expanders.has(name)) {
            return Err(bad(format!(
                "no expander is registered as `{name}` (registered: {})",
                expanders.names()
            )));
        }
    }
    Ok(valid)
}

#[cfg(test)]
mod tests;

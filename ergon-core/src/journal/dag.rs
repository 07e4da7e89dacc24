//! DAG runs: the plan of a run (named nodes, each running a task, with dependencies and a
//! trigger rule), checked before anything runs, and the rule that decides, from its
//! upstream nodes' outcomes, whether a node runs, waits or is skipped.
//!
//! A plan comes from a `[workflows.NAME]` table or is made at run time by an orchestrator
//! task (from code, or a JSON plan an LLM wrote); either way it goes through
//! [`RunPlan::validate`] first, so a run never starts with a node no task can take, a
//! dependency that does not exist, or a cycle. The journal stores a validated plan and
//! advances it with [`Trigger::decide`] in the commit that completes each node.
//!
//! ```
//! use ergon_core::journal::dag::{PlanLimits, PlannedNode, RunPlan};
//!
//! let plan = RunPlan::new(vec![
//!     PlannedNode::new("extract", "text_extraction"),
//!     PlannedNode::new("language", "language_detection").after(["extract"]),
//!     PlannedNode::new("summary", "summarize").after(["extract", "language"]),
//! ]);
//! let tasks = ["text_extraction", "language_detection", "summarize"];
//! let valid = plan.validate(|task| tasks.contains(&task), PlanLimits::default()).unwrap();
//! assert_eq!(valid.order(), ["extract", "language", "summary"]);
//! assert_eq!(valid.roots(), ["extract"]);
//! ```

mod expand;
mod group;
mod start;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

pub use expand::{AllowFailures, DEFAULT_MAX_ITEMS, Expand, HARD_MAX_ITEMS, OnEmpty, OutputMode};
pub use group::{GROUP_PREFIX, PlannedGroup};
pub use start::RunStart;

/// One node of a plan: a task to run once the nodes it depends on allow it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedNode {
    /// Unique within the run (`[a-zA-Z0-9_-]`, so it can be part of a transaction id).
    pub name: String,
    /// The task that runs it (`[tasks.NAME]`).
    pub task: String,
    /// The nodes whose outcomes its trigger waits for.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// When it runs, given those outcomes (default: every one succeeded).
    #[serde(default)]
    pub trigger: Trigger,
    /// Its input: JSON whose strings are templates over the run's input, the upstream
    /// results and (expanded) the item. Default: `{"run_id", "node", "input", "results"}`
    /// (and `"item"`, `"key"`, `"index"` for an item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// Runs the task once per item of this expansion instead of once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expand: Option<Expand>,
    /// An expanded node's output, made of its items' outputs.
    #[serde(default)]
    pub output: OutputMode,
    /// How many items of the expansion may fail without failing the node.
    #[serde(default)]
    pub allow_failures: AllowFailures,
    /// What an expansion that yields no item does.
    #[serde(default)]
    pub on_empty: OnEmpty,
    /// A group's join (`group:NAME`), made by [`RunPlan::validate`]: no task runs it; it
    /// ends when its nodes have, failed when more than `allow_failures` of them failed.
    #[serde(skip)]
    join: bool,
}

impl PlannedNode {
    /// A node with no dependencies, the default trigger and no input.
    pub fn new(name: impl Into<String>, task: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            task: task.into(),
            depends_on: Vec::new(),
            trigger: Trigger::default(),
            input: None,
            expand: None,
            output: OutputMode::default(),
            allow_failures: AllowFailures::default(),
            on_empty: OnEmpty::default(),
            join: false,
        }
    }

    /// Whether it is a group's join rather than a task's node.
    pub fn is_join(&self) -> bool {
        self.join
    }

    /// Takes `input` (a template) as its input.
    #[must_use]
    pub fn input(mut self, input: serde_json::Value) -> Self {
        self.input = Some(input);
        self
    }

    /// Runs once per item of `expand`.
    #[must_use]
    pub fn expand(mut self, expand: Expand) -> Self {
        self.expand = Some(expand);
        self
    }

    /// Makes its output as `output` says (an expanded node).
    #[must_use]
    pub fn output(mut self, output: OutputMode) -> Self {
        self.output = output;
        self
    }

    /// Lets `allowed` items fail without failing the node.
    #[must_use]
    pub fn allow_failures(mut self, allowed: AllowFailures) -> Self {
        self.allow_failures = allowed;
        self
    }

    /// Depends on `nodes` as well.
    #[must_use]
    pub fn after<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.depends_on.extend(nodes.into_iter().map(Into::into));
        self
    }

    /// Runs under `trigger`.
    #[must_use]
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }
}

/// When a node runs, given the outcomes of the nodes it depends on (Airflow's trigger
/// rules, the ones users rely on). A node whose rule can no longer be met is skipped,
/// and its own dependents then see a skipped upstream: the skip cascades under
/// `all_succeeded`, and stops at an `all_done` or `none_failed` node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Every upstream succeeded; skipped as soon as one failed or was skipped.
    #[default]
    AllSucceeded,
    /// Every upstream is done, whatever its outcome (a report, a cleanup).
    AllDone,
    /// One upstream succeeded (runs at once, without waiting for the others); skipped
    /// when all are done and none succeeded.
    AnySucceeded,
    /// Every upstream is done and none failed (skipped ones are fine); skipped as soon
    /// as one failed.
    NoneFailed,
}

/// How a node ended, as its dependents' triggers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeOutcome {
    /// Its task succeeded.
    Succeeded,
    /// Its task failed for good (dead-lettered or dropped), or the run's timeout cut it.
    Failed,
    /// It never ran: its trigger could no longer be met.
    Skipped,
}

/// What a trigger decides for a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Not yet: an upstream node the rule still needs is not done.
    Wait,
    /// Run it now.
    Run,
    /// Never: the rule can no longer be met.
    Skip,
}

impl Trigger {
    /// Decides for a node whose upstream nodes are `upstream` (`None`: not done yet). A
    /// node with no upstream runs at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use ergon_core::journal::dag::{NodeOutcome::*, Readiness, Trigger};
    ///
    /// assert_eq!(Trigger::AllSucceeded.decide(&[Some(Succeeded), None]), Readiness::Wait);
    /// assert_eq!(Trigger::AllSucceeded.decide(&[Some(Failed), None]), Readiness::Skip);
    /// assert_eq!(Trigger::AnySucceeded.decide(&[Some(Succeeded), None]), Readiness::Run);
    /// assert_eq!(Trigger::AllDone.decide(&[Some(Failed), Some(Skipped)]), Readiness::Run);
    /// ```
    pub fn decide(self, upstream: &[Option<NodeOutcome>]) -> Readiness {
        let count = |wanted: NodeOutcome| upstream.iter().filter(|o| **o == Some(wanted)).count();
        let (succeeded, failed, skipped) = (
            count(NodeOutcome::Succeeded),
            count(NodeOutcome::Failed),
            count(NodeOutcome::Skipped),
        );
        let all_done = succeeded + failed + skipped == upstream.len();
        match self {
            Trigger::AllSucceeded if failed + skipped > 0 => Readiness::Skip,
            Trigger::NoneFailed if failed > 0 => Readiness::Skip,
            Trigger::AnySucceeded if succeeded > 0 || upstream.is_empty() => Readiness::Run,
            Trigger::AnySucceeded if all_done => Readiness::Skip,
            Trigger::AnySucceeded => Readiness::Wait,
            _ if all_done => Readiness::Run,
            _ => Readiness::Wait,
        }
    }
}

/// The limits a plan is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Nodes per run (default 1,000): a planner that loops, or an LLM that rambles,
    /// fails the run before it starts instead of flooding the workers.
    pub max_nodes: usize,
}

impl Default for PlanLimits {
    fn default() -> Self {
        Self { max_nodes: 1_000 }
    }
}

/// The nodes of a run, as planned (not yet checked).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunPlan {
    /// The nodes, in any order.
    pub nodes: Vec<PlannedNode>,
    /// Groups of nodes, by name: a node (or group) that depends on `group:NAME` waits
    /// for all of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, PlannedGroup>,
}

impl RunPlan {
    /// A plan of `nodes`.
    pub fn new(nodes: Vec<PlannedNode>) -> Self {
        Self {
            nodes,
            groups: BTreeMap::new(),
        }
    }

    /// The JSON schema of a plan a model may write (`Llm::structured`'s schema): nodes
    /// with a name, one of `tasks`, their dependencies and a trigger — every field
    /// required and no other, as strict structured outputs want. Inputs are left out: a
    /// node planned this way receives the run's input and its upstream results. What the
    /// model returns still goes through [`RunPlan::validate`].
    ///
    /// ```
    /// let schema = ergon_core::journal::dag::RunPlan::json_schema(&["summarize", "translate"]);
    /// assert_eq!(schema["properties"]["nodes"]["items"]["properties"]["task"]["enum"][1], "translate");
    /// ```
    pub fn json_schema(tasks: &[&str]) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["nodes"],
            "properties": {
                "nodes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["name", "task", "depends_on", "trigger"],
                        "properties": {
                            "name": { "type": "string", "pattern": "^[A-Za-z0-9_-]+$" },
                            "task": { "type": "string", "enum": tasks },
                            "depends_on": { "type": "array", "items": { "type": "string" } },
                            "trigger": {
                                "type": "string",
                                "enum": ["all_succeeded", "all_done", "any_succeeded", "none_failed"]
                            }
                        }
                    }
                }
            }
        })
    }

    /// Adds group `name`.
    #[must_use]
    pub fn group(mut self, name: impl Into<String>, group: PlannedGroup) -> Self {
        self.groups.insert(name.into(), group);
        self
    }

    /// Checks the plan before anything runs: within `limits`, at least one node, names
    /// unique and usable in ids, every task one `has_task` knows (so a plan an LLM wrote
    /// can only choose declared workers), every dependency a node of the plan, and no
    /// cycle. Returns the plan with its nodes in dependency order.
    ///
    /// # Errors
    ///
    /// The first problem found, naming the node (and, for a cycle, its path).
    pub fn validate(
        self,
        has_task: impl Fn(&str) -> bool,
        limits: PlanLimits,
    ) -> Result<ValidPlan, PlanError> {
        if self.nodes.is_empty() {
            return Err(PlanError::Empty);
        }
        if self.nodes.len() > limits.max_nodes {
            return Err(PlanError::TooLarge {
                nodes: self.nodes.len(),
                limit: limits.max_nodes,
            });
        }
        for node in &self.nodes {
            if !is_name(&node.name) {
                return Err(PlanError::BadName(node.name.clone()));
            }
            expansion_problem(node)?;
        }
        let nodes = group::compile(self.nodes, self.groups)?;
        let mut index = BTreeMap::new();
        for (at, node) in nodes.iter().enumerate() {
            if index.insert(node.name.as_str(), at).is_some() {
                return Err(PlanError::DuplicateNode(node.name.clone()));
            }
        }
        for node in &nodes {
            if let Some(upstream) = node.expand.as_ref().and_then(|e| e.each.as_ref())
                && !node.depends_on.contains(upstream)
            {
                return Err(PlanError::BadExpansion {
                    node: node.name.clone(),
                    problem: format!("`each = \"{upstream}\"` must name a node it depends on"),
                });
            }
            if !node.join && !has_task(&node.task) {
                return Err(PlanError::UnknownTask {
                    node: node.name.clone(),
                    task: node.task.clone(),
                });
            }
            let mut seen = BTreeSet::new();
            for upstream in &node.depends_on {
                if !index.contains_key(upstream.as_str()) {
                    return Err(PlanError::MissingDependency {
                        node: node.name.clone(),
                        missing: upstream.clone(),
                    });
                }
                if !seen.insert(upstream.as_str()) {
                    return Err(PlanError::DuplicateDependency {
                        node: node.name.clone(),
                        upstream: upstream.clone(),
                    });
                }
            }
        }
        let order = topological_order(&nodes, &index)?;
        Ok(ValidPlan { nodes, order })
    }
}

/// Why `node`'s expansion (or its absence) is not one a run can use.
fn expansion_problem(node: &PlannedNode) -> Result<(), PlanError> {
    let problem = |problem: String| PlanError::BadExpansion {
        node: node.name.clone(),
        problem,
    };
    let Some(expand) = &node.expand else {
        if node.output != OutputMode::Merge {
            return Err(problem("`output` applies only to an expanded node".into()));
        }
        return Ok(());
    };
    if expand.sources() != 1 {
        return Err(problem(
            "`expand` needs exactly one of `over`, `matrix`, `items`, `each`, `custom`".into(),
        ));
    }
    if expand.limit() > HARD_MAX_ITEMS {
        return Err(problem(format!(
            "max_items {} is above the hard cap of {HARD_MAX_ITEMS}",
            expand.limit()
        )));
    }
    if let Some(name) = &expand.name
        && (!is_name(name) || RESERVED.contains(&name.as_str()))
    {
        return Err(problem(format!(
            "`as = \"{name}\"` must be letters, digits, `_` or `-`, and not one of {}",
            RESERVED.join(", ")
        )));
    }
    Ok(())
}

/// The names templates give the run's values, which an item cannot take (`as`).
const RESERVED: [&str; 7] = ["input", "results", "run", "item", "index", "key", "node"];

/// Node names go into transaction ids (`<run>/<node>`): letters, digits, `_` and `-`.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The nodes' positions in dependency order (Kahn's algorithm, ties in plan order), or
/// the first cycle found by walking the dependencies of a node Kahn could not place.
fn topological_order(
    nodes: &[PlannedNode],
    index: &BTreeMap<&str, usize>,
) -> Result<Vec<usize>, PlanError> {
    let mut waiting: Vec<usize> = nodes.iter().map(|n| n.depends_on.len()).collect();
    let mut dependents = vec![Vec::new(); nodes.len()];
    for (at, node) in nodes.iter().enumerate() {
        for upstream in &node.depends_on {
            dependents[index[upstream.as_str()]].push(at);
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..nodes.len()).filter(|&at| waiting[at] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(at) = ready.pop_front() {
        order.push(at);
        for &next in &dependents[at] {
            waiting[next] -= 1;
            if waiting[next] == 0 {
                ready.push_back(next);
            }
        }
    }
    if order.len() == nodes.len() {
        return Ok(order);
    }
    let stuck = (0..nodes.len())
        .find(|&at| waiting[at] > 0)
        .unwrap_or_default();
    Err(PlanError::Cycle(cycle_from(nodes, index, &waiting, stuck)))
}

/// A cycle among the nodes Kahn could not place, found by following, from `start`, an
/// unplaced dependency until a node repeats. Every unplaced node has one (else Kahn
/// would have placed it), so the walk ends on a cycle.
fn cycle_from(
    nodes: &[PlannedNode],
    index: &BTreeMap<&str, usize>,
    waiting: &[usize],
    start: usize,
) -> Vec<String> {
    let mut path = vec![start];
    let mut at = start;
    loop {
        let next = nodes[at]
            .depends_on
            .iter()
            .map(|name| index[name.as_str()])
            .find(|&up| waiting[up] > 0)
            .unwrap_or(start);
        if let Some(first) = path.iter().position(|&seen| seen == next) {
            // `path` walks against the edges (node → its upstream): read it backwards
            // from where the cycle closes, so it goes the way work flows.
            let closing = nodes[path[first]].name.clone();
            let mut cycle = vec![closing.clone()];
            cycle.extend(
                path[first + 1..]
                    .iter()
                    .rev()
                    .map(|&n| nodes[n].name.clone()),
            );
            cycle.push(closing);
            return cycle;
        }
        path.push(next);
        at = next;
    }
}

/// A plan that passed [`RunPlan::validate`]: what a journal stores and advances.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPlan {
    nodes: Vec<PlannedNode>,
    /// Positions in `nodes`, each after every node it depends on.
    order: Vec<usize>,
}

impl ValidPlan {
    /// The nodes, as planned.
    pub fn nodes(&self) -> &[PlannedNode] {
        &self.nodes
    }

    /// The node names in dependency order (each after everything it depends on; nodes
    /// that do not depend on each other in plan order).
    pub fn order(&self) -> Vec<&str> {
        self.order
            .iter()
            .map(|&at| self.nodes[at].name.as_str())
            .collect()
    }

    /// The nodes that depend on nothing: what a run starts with.
    pub fn roots(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|node| node.depends_on.is_empty())
            .map(|node| node.name.as_str())
            .collect()
    }

    /// The nodes in dependency order.
    pub fn in_order(&self) -> impl Iterator<Item = &PlannedNode> {
        self.order.iter().map(|&at| &self.nodes[at])
    }

    /// Node `name`, if the plan has it.
    pub fn node(&self, name: &str) -> Option<&PlannedNode> {
        self.nodes.iter().find(|node| node.name == name)
    }
}

/// Why a plan was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// No nodes.
    Empty,
    /// More nodes than [`PlanLimits::max_nodes`].
    TooLarge {
        /// Nodes planned.
        nodes: usize,
        /// The limit.
        limit: usize,
    },
    /// A node name that is empty or has characters other than `[a-zA-Z0-9_-]`.
    BadName(String),
    /// Two nodes with one name.
    DuplicateNode(String),
    /// A node whose task is not one the run may use.
    UnknownTask {
        /// The node.
        node: String,
        /// Its task.
        task: String,
    },
    /// A dependency on a node the plan does not have.
    MissingDependency {
        /// The node.
        node: String,
        /// The dependency it names.
        missing: String,
    },
    /// One dependency named twice by a node.
    DuplicateDependency {
        /// The node.
        node: String,
        /// The dependency named twice.
        upstream: String,
    },
    /// Nodes that depend on each other: the path, its first node repeated at the end.
    Cycle(Vec<String>),
    /// An expansion (or output mode) a run cannot use.
    BadExpansion {
        /// The node.
        node: String,
        /// What is wrong.
        problem: String,
    },
    /// A group a run cannot use.
    BadGroup {
        /// The group.
        group: String,
        /// What is wrong.
        problem: String,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Empty => write!(f, "the plan has no nodes"),
            PlanError::TooLarge { nodes, limit } => {
                write!(
                    f,
                    "the plan has {nodes} nodes, more than the limit of {limit}"
                )
            }
            PlanError::BadName(name) => write!(
                f,
                "node name {name:?} must be non-empty letters, digits, `_` or `-`"
            ),
            PlanError::DuplicateNode(name) => write!(f, "node `{name}` is planned twice"),
            PlanError::UnknownTask { node, task } => write!(
                f,
                "node `{node}` runs task `{task}`, which is not a task this run may use"
            ),
            PlanError::MissingDependency { node, missing } => write!(
                f,
                "node `{node}` depends on `{missing}`, which is not a node of the plan"
            ),
            PlanError::DuplicateDependency { node, upstream } => {
                write!(f, "node `{node}` names `{upstream}` twice in depends_on")
            }
            PlanError::Cycle(path) => write!(f, "the plan has a cycle: {}", path.join(" → ")),
            PlanError::BadExpansion { node, problem } => write!(f, "node `{node}`: {problem}"),
            PlanError::BadGroup { group, problem } => write!(f, "group `{group}`: {problem}"),
        }
    }
}

impl std::error::Error for PlanError {}

#[cfg(test)]
mod tests {
    use super::NodeOutcome::{Failed, Skipped, Succeeded};
    use super::*;

    fn check(nodes: Vec<PlannedNode>) -> Result<ValidPlan, PlanError> {
        RunPlan::new(nodes).validate(|task| task != "unknown", PlanLimits::default())
    }

    fn node(name: &str) -> PlannedNode {
        PlannedNode::new(name, "work")
    }

    #[test]
    fn a_diamond_is_ordered_by_its_dependencies() {
        let valid = check(vec![
            node("report").after(["summary", "topics"]),
            node("summary").after(["extract"]),
            node("topics").after(["extract"]),
            node("extract"),
        ])
        .unwrap();
        assert_eq!(valid.order(), ["extract", "summary", "topics", "report"]);
        assert_eq!(valid.roots(), ["extract"]);
    }

    #[test]
    fn a_cycle_is_refused_with_its_path() {
        let err = check(vec![
            node("a"),
            node("b").after(["a", "d"]),
            node("c").after(["b"]),
            node("d").after(["c"]),
            node("e").after(["d"]),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            PlanError::Cycle(vec!["b".into(), "c".into(), "d".into(), "b".into()])
        );
        assert_eq!(err.to_string(), "the plan has a cycle: b → c → d → b");
        let err = check(vec![node("self").after(["self"])]).unwrap_err();
        assert_eq!(err.to_string(), "the plan has a cycle: self → self");
    }

    #[test]
    fn unknown_tasks_missing_nodes_and_bad_shapes_are_refused() {
        let unknown = PlannedNode::new("x", "unknown");
        assert_eq!(
            check(vec![node("a"), unknown]).unwrap_err().to_string(),
            "node `x` runs task `unknown`, which is not a task this run may use"
        );
        assert_eq!(
            check(vec![node("a").after(["ghost"])]).unwrap_err(),
            PlanError::MissingDependency {
                node: "a".into(),
                missing: "ghost".into()
            }
        );
        assert_eq!(check(vec![]).unwrap_err(), PlanError::Empty);
        assert_eq!(
            check(vec![node("a"), node("a")]).unwrap_err(),
            PlanError::DuplicateNode("a".into())
        );
        assert_eq!(
            check(vec![node("a/b")]).unwrap_err(),
            PlanError::BadName("a/b".into())
        );
        assert!(matches!(
            check(vec![node("a"), node("b").after(["a", "a"])]).unwrap_err(),
            PlanError::DuplicateDependency { .. }
        ));
        let many: Vec<PlannedNode> = (0..3).map(|n| node(&format!("n{n}"))).collect();
        let err = RunPlan::new(many)
            .validate(|_| true, PlanLimits { max_nodes: 2 })
            .unwrap_err();
        assert_eq!(err, PlanError::TooLarge { nodes: 3, limit: 2 });
    }

    #[test]
    fn a_plan_decodes_from_json_and_names_bad_keys() {
        let plan: RunPlan = serde_json::from_value(serde_json::json!({
            "nodes": [
                { "name": "extract", "task": "work" },
                { "name": "report", "task": "work", "depends_on": ["extract"], "trigger": "all_done" }
            ]
        }))
        .unwrap();
        assert_eq!(plan.nodes[1].trigger, Trigger::AllDone);
        let err = serde_json::from_value::<RunPlan>(serde_json::json!({
            "nodes": [{ "name": "x", "task": "work", "dependson": [] }]
        }))
        .unwrap_err();
        assert!(err.to_string().contains("dependson"), "{err}");
    }

    #[test]
    fn a_failed_upstream_under_each_trigger() {
        let failed_and_waiting = [Some(Failed), None];
        let failed_and_succeeded = [Some(Failed), Some(Succeeded)];
        let expected = [
            (Trigger::AllSucceeded, Readiness::Skip, Readiness::Skip),
            (Trigger::AllDone, Readiness::Wait, Readiness::Run),
            (Trigger::AnySucceeded, Readiness::Wait, Readiness::Run),
            (Trigger::NoneFailed, Readiness::Skip, Readiness::Skip),
        ];
        for (trigger, waiting, done) in expected {
            assert_eq!(trigger.decide(&failed_and_waiting), waiting, "{trigger:?}");
            assert_eq!(trigger.decide(&failed_and_succeeded), done, "{trigger:?}");
        }
        assert_eq!(
            Trigger::AnySucceeded.decide(&[Some(Failed), Some(Skipped)]),
            Readiness::Skip
        );
    }

    #[test]
    fn a_skip_cascades_under_all_succeeded_and_stops_at_none_failed() {
        assert_eq!(
            Trigger::AllSucceeded.decide(&[Some(Skipped)]),
            Readiness::Skip
        );
        assert_eq!(
            Trigger::NoneFailed.decide(&[Some(Skipped), Some(Succeeded)]),
            Readiness::Run
        );
        assert_eq!(Trigger::AllDone.decide(&[Some(Skipped)]), Readiness::Run);
    }

    #[test]
    fn a_root_runs_at_once_under_every_trigger() {
        for trigger in [
            Trigger::AllSucceeded,
            Trigger::AllDone,
            Trigger::AnySucceeded,
            Trigger::NoneFailed,
        ] {
            assert_eq!(trigger.decide(&[]), Readiness::Run, "{trigger:?}");
        }
    }
}

//! Groups of nodes: named sets with dependencies of their own (on nodes or on other
//! groups), compiled into plain edges and one synthetic join node per group before a
//! plan is ordered.
//!
//! A group `analysis` with `depends_on = ["ingest"]` makes each of its nodes depend on
//! `ingest`; a node that depends on `group:analysis` depends on the group's join, which
//! ends once every node of the group has (so "B after group G" is one edge, not |G|),
//! and fails when more of them failed than the group's `allow_failures`. Partial results
//! stay on the nodes that succeeded.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{AllowFailures, PlanError, PlannedNode, Trigger, is_name};

/// What names a group's join in `depends_on`: `group:NAME`.
pub const GROUP_PREFIX: &str = "group:";

/// A group: `[workflows.NAME.groups.GROUP]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedGroup {
    /// Its nodes (each in one group at most).
    pub nodes: Vec<String>,
    /// What each of its nodes waits for besides its own dependencies: nodes, or
    /// `group:OTHER`.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// How many of its nodes may fail without failing the group.
    #[serde(default)]
    pub allow_failures: AllowFailures,
}

/// `nodes` with each group's dependencies added to its nodes, and one join node per
/// group appended.
pub(super) fn compile(
    mut nodes: Vec<PlannedNode>,
    groups: BTreeMap<String, PlannedGroup>,
) -> Result<Vec<PlannedNode>, PlanError> {
    let mut grouped = BTreeSet::new();
    for (name, group) in &groups {
        let problem = |problem: String| PlanError::BadGroup {
            group: name.clone(),
            problem,
        };
        if !is_name(name) {
            return Err(problem(
                "a group name must be letters, digits, `_` or `-`".into(),
            ));
        }
        if group.nodes.is_empty() {
            return Err(problem("it has no nodes".into()));
        }
        for member in &group.nodes {
            let Some(node) = nodes.iter_mut().find(|node| &node.name == member) else {
                return Err(problem(format!("`{member}` is not a node of the plan")));
            };
            if !grouped.insert(member.clone()) {
                return Err(problem(format!("`{member}` is in another group already")));
            }
            for upstream in &group.depends_on {
                if !node.depends_on.contains(upstream) {
                    node.depends_on.push(upstream.clone());
                }
            }
        }
    }
    for (name, group) in groups {
        let mut join = PlannedNode::new(format!("{GROUP_PREFIX}{name}"), "")
            .after(group.nodes)
            .trigger(Trigger::AllDone)
            .allow_failures(group.allow_failures);
        join.join = true;
        nodes.push(join);
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::super::{PlanLimits, RunPlan};
    use super::*;

    #[test]
    fn a_group_adds_its_dependencies_and_a_join() {
        let plan = RunPlan::new(vec![
            PlannedNode::new("ingest", "work"),
            PlannedNode::new("topics", "work"),
            PlannedNode::new("sentiment", "work"),
            PlannedNode::new("report", "work").after(["group:analysis"]),
        ])
        .group(
            "analysis",
            PlannedGroup {
                nodes: vec!["topics".into(), "sentiment".into()],
                depends_on: vec!["ingest".into()],
                allow_failures: AllowFailures::Count(1),
            },
        );
        let valid = plan.validate(|_| true, PlanLimits::default()).unwrap();
        assert_eq!(
            valid.order(),
            ["ingest", "topics", "sentiment", "group:analysis", "report"]
        );
        let join = valid.node("group:analysis").unwrap();
        assert!(join.is_join());
        assert_eq!(join.trigger, Trigger::AllDone);
        assert_eq!(valid.node("topics").unwrap().depends_on, ["ingest"]);
    }

    #[test]
    fn a_group_of_unknown_or_shared_nodes_is_refused() {
        let nodes = || vec![PlannedNode::new("a", "work"), PlannedNode::new("b", "work")];
        let group = |members: &[&str]| PlannedGroup {
            nodes: members.iter().map(|m| (*m).to_owned()).collect(),
            ..PlannedGroup::default()
        };
        let err = RunPlan::new(nodes())
            .group("g", group(&["ghost"]))
            .validate(|_| true, PlanLimits::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "group `g`: `ghost` is not a node of the plan"
        );
        let err = RunPlan::new(nodes())
            .group("g", group(&["a"]))
            .group("h", group(&["a", "b"]))
            .validate(|_| true, PlanLimits::default())
            .unwrap_err();
        assert!(err.to_string().contains("in another group"), "{err}");
        let err = RunPlan::new(nodes())
            .group("g", group(&["a"]))
            .validate(|_| true, PlanLimits::default())
            .map(|_| ())
            .and_then(|()| {
                RunPlan::new(vec![PlannedNode::new("a", "work").after(["group:g"])])
                    .group("g", group(&["a"]))
                    .validate(|_| true, PlanLimits::default())
            })
            .unwrap_err();
        assert!(matches!(err, PlanError::Cycle(_)), "{err}");
    }
}

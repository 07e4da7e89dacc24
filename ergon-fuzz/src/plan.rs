//! Target `plan`: the bytes as a JSON DAG plan (what a `[workflows.NAME]` table or an
//! orchestrator task, or an LLM it asks, writes), decoded as a [`RunPlan`] and checked by
//! [`ergon_journal::run::check`] as the journal does before a run starts: the plan
//! itself ([`RunPlan::validate`]: names, tasks, dependencies, groups, expansions, cycles),
//! its templates and expressions, its custom expanders.
//!
//! Checks: a valid plan lists every node once in an order that puts each after its
//! dependencies, starts from the nodes that depend on nothing, and uses only tasks the
//! journal can hand work to (or group joins).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use ergon_core::journal::dag::{PlanError, PlanLimits, RunPlan, ValidPlan};
use ergon_journal::Routes;
use ergon_journal::run::{self, Expanders};

/// The tasks a plan may use: those of the `document_processing` example, and two short
/// ones.
pub const TASKS: [&str; 8] = [
    "extract",
    "detect_language",
    "summarize",
    "topics",
    "sentiment",
    "format_report",
    "a",
    "b",
];

/// The custom expander the journal knows.
pub const EXPANDER: &str = "split";

/// A plan's keys and values.
pub const DICTIONARY: &[&[&str]] = &[
    &[
        "\"nodes\"",
        "\"groups\"",
        "\"name\"",
        "\"task\"",
        "\"depends_on\"",
        "\"trigger\"",
        "\"input\"",
        "\"expand\"",
        "\"over\"",
        "\"matrix\"",
        "\"items\"",
        "\"each\"",
        "\"custom\"",
        "\"as\"",
        "\"key\"",
        "\"max_items\"",
        "\"output\"",
        "\"allow_failures\"",
        "\"on_empty\"",
    ],
    &[
        "\"all_succeeded\"",
        "\"all_done\"",
        "\"any_succeeded\"",
        "\"none_failed\"",
        "\"merge\"",
        "\"separate\"",
        "\"split\"",
        "\"group:g\"",
        "\"extract\"",
        "\"summarize\"",
        "\"{{ results.extract }}\"",
        "\"{{ item }}\"",
        "100001",
        "18446744073709551615",
        "0.5",
        "-1",
        "[]",
        "{}",
        "null",
    ],
];

/// Where the journal hands the [`TASKS`] (each to its own local queue), built once.
static ROUTES: LazyLock<Routes> = LazyLock::new(|| {
    TASKS
        .iter()
        .fold(Routes::new(), |routes, task| routes.queue(*task, *task))
});

/// The [`EXPANDER`], which makes no items (a check never calls it).
static EXPANDERS: LazyLock<Expanders> =
    LazyLock::new(|| Expanders::new().with(EXPANDER, Arc::new(|_| Ok(Vec::new()))));

/// Checks `plan` as the journal does before a run starts (the [`TASKS`] routed, the
/// [`EXPANDER`] registered), and what a valid plan says of itself.
///
/// # Errors
///
/// Why the journal refuses the plan.
///
/// # Panics
///
/// On a finding: checking panicked, or a valid plan's order, roots or tasks are wrong.
pub fn check(plan: &RunPlan) -> Result<(), PlanError> {
    let valid = run::check(plan, &ROUTES, &EXPANDERS, PlanLimits::default())?;
    well_formed(&valid);
    Ok(())
}

/// A valid plan's order, roots and tasks.
fn well_formed(valid: &ValidPlan) {
    let order = valid.order();
    let position: BTreeMap<&str, usize> =
        order.iter().enumerate().map(|(at, n)| (*n, at)).collect();
    assert_eq!(
        order.len(),
        valid.nodes().len(),
        "every node once: {order:?}"
    );
    assert_eq!(position.len(), order.len(), "no node twice: {order:?}");
    for node in valid.nodes() {
        for upstream in &node.depends_on {
            assert!(
                position[upstream.as_str()] < position[node.name.as_str()],
                "`{}` ordered before its dependency `{upstream}`: {order:?}",
                node.name
            );
        }
        assert!(
            node.is_join() || ROUTES.takes(&node.task),
            "node `{}` runs task `{}`, which the journal cannot hand work to",
            node.name,
            node.task
        );
        let is_root = valid.roots().contains(&node.name.as_str());
        assert_eq!(is_root, node.depends_on.is_empty(), "root `{}`", node.name);
    }
}

/// The target: `data` is the plan's JSON.
///
/// # Panics
///
/// See [`check`].
pub fn target(data: &[u8]) {
    if let Ok(plan) = serde_json::from_slice::<RunPlan>(data)
        && let Err(err) = check(&plan)
    {
        drop(err.to_string());
    }
}

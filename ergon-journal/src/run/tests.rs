//! The run's logic on the degenerate shapes first: empty expansions, failed upstreams
//! under each trigger, `single` with zero or two items, a timeout while nodes run.

use ergon_core::journal::dag::{
    AllowFailures, Expand, OnEmpty, OutputMode, PlannedGroup, PlannedNode, RunPlan, Trigger,
};
use serde_json::{Value, json};

use super::*;

fn run(plan: RunPlan, expanders: &Expanders) -> Run<'_> {
    let definition = Definition {
        workflow: "wf".into(),
        plan,
        input: json!({ "doc": "text", "langs": ["en", "fr"] }),
        on_complete: Some("report".into()),
        max_parallel: None,
    };
    let mut run = Run::new("r1".into(), definition, expanders, 1_000).unwrap();
    run.start();
    run
}

fn dispatched(run: &mut Run<'_>) -> Vec<String> {
    std::mem::take(&mut run.effects.dispatch)
        .into_iter()
        .map(|d| d.id)
        .collect()
}

fn phase(run: &Run<'_>, name: &str) -> Phase {
    run.state.nodes[name].phase
}

fn node(name: &str) -> PlannedNode {
    PlannedNode::new(name, "work")
}

fn diamond() -> RunPlan {
    RunPlan::new(vec![
        node("a"),
        node("b").after(["a"]),
        node("c").after(["a"]),
        node("d").after(["b", "c"]),
    ])
}

#[test]
fn a_diamond_runs_in_dependency_order_and_sends_its_result() {
    let expanders = Expanders::new();
    let mut run = run(diamond(), &expanders);
    assert_eq!(dispatched(&mut run), ["r1/a"]);
    run.node_ended("a", true, Some(json!({ "n": 1 })), None);
    assert_eq!(dispatched(&mut run), ["r1/b", "r1/c"]);
    run.node_ended("b", true, Some(json!(2)), None);
    assert!(dispatched(&mut run).is_empty(), "d waits for c");
    run.node_ended("c", true, Some(json!(3)), None);
    let d = std::mem::take(&mut run.effects.dispatch);
    assert_eq!(d[0].id, "r1/d");
    assert_eq!(d[0].payload["results"], json!({ "b": 2, "c": 3 }));
    assert_eq!(d[0].payload["input"]["doc"], "text");
    run.node_ended("d", true, None, None);
    assert_eq!(run.status(), RunStatus::Succeeded);
    let finished = run.effects.finished.clone().unwrap();
    assert_eq!(finished.on_complete.as_deref(), Some("report"));
    assert_eq!(finished.payload["results"]["a"], json!({ "n": 1 }));
    assert_eq!(run.counts(), (4, 4, 0));
}

#[test]
fn a_failed_upstream_under_each_trigger() {
    let expanders = Expanders::new();
    let cases = [
        (Trigger::AllSucceeded, Phase::Skipped),
        (Trigger::AllDone, Phase::Running),
        (Trigger::AnySucceeded, Phase::Running),
        (Trigger::NoneFailed, Phase::Skipped),
    ];
    for (trigger, expected) in cases {
        let plan = RunPlan::new(vec![
            node("a"),
            node("b"),
            node("join").after(["a", "b"]).trigger(trigger),
            node("after").after(["join"]),
        ]);
        let mut run = run(plan, &expanders);
        run.node_ended("a", false, None, Some("boom".into()));
        run.node_ended("b", true, Some(json!(1)), None);
        assert_eq!(phase(&run, "join"), expected, "{trigger:?}");
        if expected == Phase::Skipped {
            // The skip cascades, and the run ends as failed with partial results kept.
            assert_eq!(phase(&run, "after"), Phase::Skipped, "{trigger:?}");
            assert_eq!(run.status(), RunStatus::Failed);
            let result = &run.effects.finished.as_ref().unwrap().payload;
            assert_eq!(result["results"]["b"], 1);
            assert_eq!(result["failed"][0]["node"], "a");
            assert_eq!(result["skipped"], json!(["after", "join"]));
        }
    }
}

#[test]
fn an_empty_expansion_resolves_at_once_and_never_hangs() {
    let expanders = Expanders::new();
    for (on_empty, expected, output) in [
        (OnEmpty::Succeed, Phase::Succeeded, Some(json!([]))),
        (OnEmpty::Skip, Phase::Skipped, None),
    ] {
        let mut empty = node("each").expand(Expand::over("{{ input.none }}"));
        empty.on_empty = on_empty;
        let plan = RunPlan::new(vec![
            empty,
            node("after").after(["each"]).trigger(Trigger::AllDone),
        ]);
        let definition = Definition {
            workflow: "wf".into(),
            plan,
            input: json!({ "none": [] }),
            on_complete: None,
            max_parallel: None,
        };
        let mut run = Run::new("r".into(), definition, &expanders, 0).unwrap();
        run.start();
        assert_eq!(phase(&run, "each"), expected);
        assert_eq!(run.state.nodes["each"].output, output);
        assert_eq!(dispatched(&mut run), ["r/after"]);
    }
}

#[test]
fn single_with_zero_or_two_items_fails_the_node() {
    let expanders = Expanders::new();
    for items in [vec![], vec![json!(1), json!(2)]] {
        let count = items.len();
        let single = node("one")
            .expand(Expand::items(items))
            .output(OutputMode::Single);
        let mut run = run(RunPlan::new(vec![single]), &expanders);
        assert_eq!(phase(&run, "one"), Phase::Failed);
        let error = run.state.nodes["one"].error.clone().unwrap();
        assert!(error.contains(&format!("yielded {count}")), "{error}");
        assert!(dispatched(&mut run).is_empty());
        assert_eq!(run.status(), RunStatus::Failed);
    }
    let single = node("one")
        .expand(Expand::items(vec![json!(7)]))
        .output(OutputMode::Single);
    let mut run = run(RunPlan::new(vec![single]), &expanders);
    assert_eq!(dispatched(&mut run), ["r1/one/0"]);
    assert!(run.item_ended("one", true));
    let result = ItemResult {
        key: "0".into(),
        succeeded: true,
        output: Some(json!("only")),
    };
    run.join("one", vec![result]);
    assert_eq!(run.state.nodes["one"].output, Some(json!("only")));
}

#[test]
fn items_merge_in_order_and_allowed_failures_pass() {
    let expanders = Expanders::new();
    let expand = Expand {
        key: Some("{{ lang }}".into()),
        ..Expand::over("{{ input.langs }}").named("lang")
    };
    let summaries = node("summaries")
        .expand(expand)
        .input(json!({ "text": "{{ input.doc }}", "lang": "{{ lang }}" }))
        .allow_failures(AllowFailures::Count(1));
    let plan = RunPlan::new(vec![summaries, node("report").after(["summaries"])]);
    let mut run = run(plan, &expanders);
    let items = std::mem::take(&mut run.effects.dispatch);
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].payload, json!({ "text": "text", "lang": "fr" }));
    assert_eq!(items[1].item, Some((1, "fr".into())));
    assert!(!run.item_ended("summaries", false));
    assert!(run.item_ended("summaries", true));
    run.join(
        "summaries",
        vec![
            ItemResult {
                key: "en".into(),
                succeeded: false,
                output: None,
            },
            ItemResult {
                key: "fr".into(),
                succeeded: true,
                output: Some(json!("salut")),
            },
        ],
    );
    assert_eq!(
        run.state.nodes["summaries"].output,
        Some(json!([null, "salut"]))
    );
    assert_eq!(dispatched(&mut run), ["r1/report"]);
}

#[test]
fn too_many_failed_items_fail_the_node_and_separate_keys_outputs() {
    let expanders = Expanders::new();
    let expand = Expand::items(vec![json!("x"), json!("y")]);
    let plan = RunPlan::new(vec![node("n").expand(expand).output(OutputMode::Separate)]);
    let mut failing = run(plan.clone(), &expanders);
    failing.item_ended("n", false);
    failing.item_ended("n", true);
    failing.join(
        "n",
        vec![
            ItemResult {
                key: "0".into(),
                succeeded: false,
                output: None,
            },
            ItemResult {
                key: "1".into(),
                succeeded: true,
                output: Some(json!(1)),
            },
        ],
    );
    assert_eq!(phase(&failing, "n"), Phase::Failed);
    assert_eq!(
        failing.state.nodes["n"].error.as_deref(),
        Some("1 of 2 items failed (allowed: 0)")
    );
    let mut fine = run(plan, &expanders);
    fine.join(
        "n",
        vec![
            ItemResult {
                key: "0".into(),
                succeeded: true,
                output: Some(json!("a")),
            },
            ItemResult {
                key: "1".into(),
                succeeded: true,
                output: Some(json!("b")),
            },
        ],
    );
    assert_eq!(
        fine.state.nodes["n"].output,
        Some(json!({ "0": "a", "1": "b" }))
    );
}

#[test]
fn a_timeout_while_nodes_run_cancels_them_and_keeps_partial_results() {
    let expanders = Expanders::new();
    let plan = RunPlan::new(vec![
        node("a"),
        node("b").expand(Expand::items(vec![json!(1), json!(2)])),
        node("c").after(["a", "b"]),
    ]);
    let mut run = run(plan, &expanders);
    dispatched(&mut run);
    run.node_ended("a", true, Some(json!("kept")), None);
    run.time_out();
    assert_eq!(run.status(), RunStatus::TimedOut);
    assert_eq!(
        run.effects.withdraw,
        [
            ("work".to_owned(), "r1/b/0".to_owned()),
            ("work".to_owned(), "r1/b/1".to_owned())
        ]
    );
    assert_eq!(phase(&run, "c"), Phase::Cancelled);
    let result = &run.effects.finished.as_ref().unwrap().payload;
    assert_eq!(result["status"], "timed_out");
    assert_eq!(result["results"]["a"], "kept");
    assert_eq!(result["cancelled"], json!(["b", "c"]));
    // A completion arriving after the timeout changes nothing.
    run.node_ended("c", true, None, None);
    assert_eq!(phase(&run, "c"), Phase::Cancelled);
}

#[test]
fn an_undefined_template_variable_fails_the_node() {
    let expanders = Expanders::new();
    let plan = RunPlan::new(vec![
        node("a").input(json!({ "x": "{{ results.nothing.text }}" })),
    ]);
    let run = run(plan, &expanders);
    assert_eq!(phase(&run, "a"), Phase::Failed);
    let error = run.state.nodes["a"].error.clone().unwrap();
    assert!(error.starts_with("input: template"), "{error}");
    assert!(error.contains("undefined"), "{error}");
}

#[test]
fn max_parallel_holds_ready_nodes_back() {
    let expanders = Expanders::new();
    let definition = Definition {
        workflow: "wf".into(),
        plan: RunPlan::new(vec![node("a"), node("b"), node("c")]),
        input: Value::Null,
        on_complete: None,
        max_parallel: Some(2),
    };
    let mut run = Run::new("r".into(), definition, &expanders, 0).unwrap();
    run.start();
    assert_eq!(dispatched(&mut run), ["r/a", "r/b"]);
    assert_eq!(phase(&run, "c"), Phase::Ready);
    run.node_ended("a", true, None, None);
    assert_eq!(dispatched(&mut run), ["r/c"]);
}

#[test]
fn a_group_joins_its_nodes_and_a_running_node_extends_the_run() {
    let expanders = Expanders::new();
    let plan = RunPlan::new(vec![
        node("ingest"),
        node("x"),
        node("y"),
        node("report").after(["group:g"]),
    ])
    .group(
        "g",
        PlannedGroup {
            nodes: vec!["x".into(), "y".into()],
            depends_on: vec!["ingest".into()],
            allow_failures: AllowFailures::Count(1),
        },
    );
    let mut run = run(plan, &expanders);
    assert_eq!(dispatched(&mut run), ["r1/ingest"]);
    run.node_ended("ingest", true, None, None);
    assert_eq!(dispatched(&mut run), ["r1/x", "r1/y"]);
    run.extend(vec![node("extra").after(["ingest"])]).unwrap();
    assert_eq!(dispatched(&mut run), ["r1/extra"]);
    let err = run.extend(vec![node("loop").after(["loop"])]).unwrap_err();
    assert!(err.contains("cycle"), "{err}");
    run.node_ended("x", false, None, Some("bad".into()));
    run.node_ended("y", true, Some(json!("y!")), None);
    assert_eq!(
        phase(&run, "group:g"),
        Phase::Succeeded,
        "one failure is allowed"
    );
    assert_eq!(
        run.state.nodes["group:g"].output,
        Some(json!({ "y": "y!" }))
    );
    assert_eq!(dispatched(&mut run), ["r1/report"]);
}

#[test]
fn a_failure_a_dependent_ran_and_succeeded_despite_does_not_fail_the_run() {
    let expanders = Expanders::new();
    let plan = RunPlan::new(vec![
        node("a"),
        node("cleanup").after(["a"]).trigger(Trigger::AllDone),
    ]);
    let mut run = run(plan, &expanders);
    run.node_ended("a", false, None, Some("boom".into()));
    run.node_ended("cleanup", true, None, None);
    assert_eq!(run.status(), RunStatus::Succeeded);
    let result = &run.effects.finished.as_ref().unwrap().payload;
    assert_eq!(
        result["failed"][0]["node"], "a",
        "the failure is still reported"
    );
    let plan = RunPlan::new(vec![
        node("a"),
        node("cleanup").after(["a"]).trigger(Trigger::AllDone),
    ]);
    let mut failing = super::tests::run(plan, &expanders);
    failing.node_ended("a", false, None, Some("boom".into()));
    failing.node_ended("cleanup", false, None, Some("also".into()));
    assert_eq!(
        failing.status(),
        RunStatus::Failed,
        "a failed leaf fails the run"
    );
}

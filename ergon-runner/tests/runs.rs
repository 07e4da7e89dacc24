//! `runs` and `trace RUN_ID` through the real binary, after a DAG run on the SQLite
//! journal: `first`, then `second` and `fan` (expanded over the document's two languages),
//! then `last`, the result going to `done`.

#![cfg(all(feature = "file", feature = "local", feature = "journal"))]

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
#[path = "common/workflow.rs"]
mod workflow;

use common::{run_ok, runner};
use workflow::{JOURNAL, diamond, enqueue_docs, local_tasks, workflow_table, write_config};

/// Runs workflow `wf` (the diamond, started from the local queue `docs`, its nodes run
/// by `forward` tasks, everything in `dir`) for document `d1` to its end (`run` returns
/// once every queue is drained and no run is in flight) and returns the config.
fn ran_d1(dir: &Path) -> PathBuf {
    let toml = format!(
        "{}{JOURNAL}{}{}",
        local_tasks(None),
        workflow_table("timeout = \"1m\""),
        diamond(true)
    );
    let config = write_config(dir, &toml);
    enqueue_docs(
        &config,
        &[serde_json::json!({ "id": "d1", "doc": "hello", "langs": ["en", "fr"] })],
    );
    run_ok(&config, &["run"]);
    config
}

fn stdout(config: &Path, args: &[&str]) -> String {
    String::from_utf8(run_ok(config, args).stdout).unwrap()
}

fn json(config: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&stdout(config, args)).unwrap()
}

#[test]
fn runs_lists_a_finished_run_with_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let config = ran_d1(dir.path());

    let text = stdout(&config, &["runs"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with("d1 [wf] succeeded 4/4 nodes, took "),
        "{text}"
    );

    let runs = json(&config, &["runs", "--format", "json"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run["run_id"], "d1");
    assert_eq!(run["workflow"], "wf");
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["nodes_total"], 4);
    assert_eq!(run["nodes_done"], 4);
    assert_eq!(run["nodes_failed"], 0);
    assert!(run["finished_at"].as_i64().unwrap() >= run["created_at"].as_i64().unwrap());

    assert_eq!(stdout(&config, &["runs", "--status", "running"]), "");
    assert_eq!(
        json(
            &config,
            &["runs", "--status", "running", "--format", "json"]
        ),
        Value::Array(Vec::new())
    );
    assert_eq!(
        json(
            &config,
            &["runs", "--status", "succeeded", "--format", "json"]
        )[0]["run_id"],
        "d1"
    );
}

#[test]
fn trace_of_a_run_shows_its_nodes_in_dependency_order_then_its_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let config = ran_d1(dir.path());

    let text = stdout(&config, &["trace", "d1"]);
    let (run_view, lineage) = text
        .split_once("\n\n")
        .expect("a run view, then the lineage");
    let lines: Vec<&str> = run_view.lines().collect();
    assert!(
        lines[0].starts_with("run d1 [wf] succeeded 4/4 nodes"),
        "{text}"
    );
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|line| line.contains(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in:\n{text}"))
    };
    let (first, second, fan, last) = (
        at("first [a] succeeded"),
        at("second [b] succeeded"),
        at("fan [b] succeeded"),
        at("last [a] succeeded"),
    );
    assert!(
        first < second && first < fan && second < last && fan < last,
        "{text}"
    );
    assert!(lines[last].contains("after second, fan"), "{text}");
    assert!(
        lines[fan + 1].ends_with("└─ 2 items: 2 succeeded, 0 failed"),
        "the items fold into one line under their node:\n{text}"
    );
    assert_eq!(
        lines.len(),
        6,
        "a header, four nodes, one folded line:\n{text}"
    );

    assert!(lineage.starts_with("d1 [wf] succeeded"), "{text}");
    for id in ["d1/first", "d1/fan/0", "d1/fan/1", "d1/second", "d1/last"] {
        assert!(lineage.contains(&format!("{id} [")), "{id} in:\n{text}");
    }
    assert!(
        lineage.contains("⤷ d1/on_complete [done] succeeded"),
        "{text}"
    );
}

#[test]
fn trace_of_a_run_as_json_is_its_detail_with_its_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let config = ran_d1(dir.path());

    let run = json(&config, &["trace", "d1", "--format", "json"]);
    assert_eq!(run["run_id"], "d1");
    assert_eq!(run["status"], "succeeded");
    let nodes = run["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for (at, node) in nodes.iter().enumerate() {
        assert_eq!(node["phase"], "succeeded", "{node}");
        for upstream in node["depends_on"].as_array().unwrap() {
            let upstream = upstream.as_str().unwrap();
            assert!(
                names[..at].contains(&upstream),
                "{upstream} before {names:?}[{at}]"
            );
        }
    }
    let fan = &nodes[names.iter().position(|&n| n == "fan").unwrap()];
    assert_eq!(fan["items"]["total"], 2);
    assert_eq!(fan["items"]["failed"], 0);
    assert_eq!(run["lineage"]["id"], "d1");
}

#[test]
fn runs_without_a_journal_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[connectors.sink]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );

    let out = runner(&config, &["runs"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the file has no `[journal]`"), "{stderr}");
}

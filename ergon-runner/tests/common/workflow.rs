//! What the runner's DAG-run tests share: the workflow `wf` (its table, its nodes, the
//! diamond most of them run), the local queues and `forward` tasks that run it, the
//! config written into the test's directory, and the documents that start its runs.
//!
//! Included with `#[path = "common/workflow.rs"] mod workflow;` beside `mod common;`, at
//! the test crate's root (it runs the binary through `crate::common`): only the test
//! binaries that run workflows compile it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::run_ok;

/// The journal, in the local queues' file: a node's completion, its ack and what it hands
/// over are one commit.
#[allow(
    dead_code,
    reason = "the RabbitMQ and PostgreSQL test has a journal of its own"
)]
pub const JOURNAL: &str = "[journal]\npath = \"q.db\"\n";

/// The connectors and tasks that run workflow `wf` on one machine: the local queues
/// `docs` (its transactions start runs), `a_in`, `b_in` and `done_in` in `q.db`, each with
/// `lease` when given (how soon what a killed runner held is delivered again); the
/// `forward` tasks `a`, `b` and `done` writing what they get to `out.jsonl`.
#[allow(
    dead_code,
    reason = "the RabbitMQ and PostgreSQL test has queues and tasks of its own"
)]
pub fn local_tasks(lease: Option<&str>) -> String {
    let lease = lease
        .map(|lease| format!("lease = \"{lease}\"\n"))
        .unwrap_or_default();
    let mut toml = "[connectors.sink]\ntype = \"file\"\npath = \"out.jsonl\"\n".to_owned();
    for queue in ["docs", "a_in", "b_in", "done_in"] {
        toml += &format!("[connectors.{queue}]\ntype = \"local\"\npath = \"q.db\"\n{lease}");
    }
    for (task, input) in [("a", "a_in"), ("b", "b_in"), ("done", "done_in")] {
        toml += &format!(
            "[tasks.{task}]\ntype = \"forward\"\ninput = \"{input}\"\noutput = \"sink\"\n"
        );
    }
    toml
}

/// The table of workflow `wf`: the documents of `docs` start its runs and their results
/// go to task `done`; `fields`: more of its keys, as TOML lines.
pub fn workflow_table(fields: &str) -> String {
    format!("[workflows.wf]\nstart = \"docs\"\non_complete = \"done\"\n{fields}\n")
}

/// A node of workflow `wf`: `name` runs task `task` once the nodes it `depends_on` are
/// done; `fields`: more of its keys, as TOML lines.
pub fn node(name: &str, task: &str, depends_on: &[&str], fields: &str) -> String {
    let depends_on: Vec<String> = depends_on
        .iter()
        .map(|node| format!("\"{node}\""))
        .collect();
    format!(
        "[[workflows.wf.nodes]]\nname = \"{name}\"\ntask = \"{task}\"\ndepends_on = [{}]\n{fields}\n",
        depends_on.join(", ")
    )
}

/// The nodes of workflow `wf`, a diamond: `first` (task `a`), then `second` (task `b`)
/// and `fan` (task `b` once per language of the document's `langs`, its output kept by
/// language), then `last` (task `a`). With `templated_inputs`, `second` is handed
/// `{"got": <the document's doc>}` and each `fan` item `{"lang": <its language>}`;
/// without, every node gets the default input, which names its run, node and item.
pub fn diamond(templated_inputs: bool) -> String {
    let (second, lang) = if templated_inputs {
        (
            r#"input = { got = "{{ input.doc }}" }"#,
            r#"input = { lang = "{{ lang }}" }"#,
        )
    } else {
        ("", "")
    };
    let fan = [
        r#"expand = { over = "{{ input.langs }}", as = "lang", key = "{{ lang }}" }"#,
        lang,
        r#"output = "separate""#,
    ]
    .join("\n");
    [
        node("first", "a", &[], ""),
        node("second", "b", &["first"], second),
        node("fan", "b", &["first"], &fan),
        node("last", "a", &["second", "fan"], ""),
    ]
    .concat()
}

/// Writes `toml` as `tasks.toml` in `dir` and returns its path.
pub fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let config = dir.join("tasks.toml");
    std::fs::write(&config, toml).unwrap();
    config
}

/// Enqueues one transaction per document into `docs`, through `docs.jsonl` beside
/// `config`.
pub fn enqueue_docs(config: &Path, docs: &[Value]) {
    let lines: String = docs.iter().map(|doc| format!("{doc}\n")).collect();
    let file = config.with_file_name("docs.jsonl");
    std::fs::write(&file, lines).unwrap();
    run_ok(
        config,
        &["queue", "enqueue", "docs", "--file", file.to_str().unwrap()],
    );
}

//! DAG runs (`[workflows.NAME]`) through the real `ergon-runner` binary on the SQLite
//! journal: a runner killed with SIGKILL mid-run and restarted completes every run with
//! each node recorded once; a run past its timeout cancels its unfinished nodes and
//! withdraws the queued ones; a failed node under each trigger rule; a workflow that
//! cannot run is refused by `validate` with the exact reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ergon_journal::run::view::RunDetail;
use ergon_journal::{Filter, SqliteReader, Status};
use serde_json::{Value, json};

mod common;
#[path = "common/workflow.rs"]
mod workflow;

use common::{run_ok as run, runner};
use workflow::{JOURNAL, diamond, enqueue_docs, local_tasks, node, workflow_table, write_config};

/// A directory with `tasks.toml`: the [`local_tasks`], with a short lease so that what a
/// killed runner held is delivered again soon, and `tables`.
fn setup(tables: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &format!("{}{tables}", local_tasks(Some("1s"))));
    (dir, config)
}

/// The journal of `dir`, for reading.
fn journal(dir: &Path) -> SqliteReader {
    SqliteReader::open(&dir.join("q.db")).unwrap()
}

/// Run `run_id` as the journal holds it.
fn run_detail(journal: &SqliteReader, run_id: &str) -> RunDetail {
    journal
        .run(run_id)
        .unwrap()
        .expect("the journal has the run")
}

/// The phase of each node of `run`.
fn phases(run: &RunDetail) -> BTreeMap<&str, &'static str> {
    run.nodes
        .iter()
        .map(|node| (node.name.as_str(), node.state.phase.as_str()))
        .collect()
}

/// What the journal recorded of the transactions of `run_id`'s lineage: status and
/// delivery count by (transaction id, task).
fn recorded(journal: &SqliteReader, run_id: &str) -> BTreeMap<(String, String), (Status, u32)> {
    let filter = Filter {
        root: Some(run_id.to_owned()),
        limit: 1_000,
        ..Filter::default()
    };
    journal
        .list(&filter)
        .unwrap()
        .into_iter()
        .map(|node| ((node.id, node.task), (node.status, node.deliveries)))
        .collect()
}

/// The lines of `out.jsonl` (a line cut short by a kill is left out).
fn written(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The transaction a line of `out.jsonl` was written for: a node's (its default input
/// names its run, node and item index) or a run's result (`<run>/on_complete`).
fn written_by(line: &Value) -> String {
    let run_id = line["run_id"].as_str().expect("every line names its run");
    match (line["node"].as_str(), line.get("index")) {
        (Some(node), Some(index)) => format!("{run_id}/{node}/{index}"),
        (Some(node), None) => format!("{run_id}/{node}"),
        (None, _) => format!("{run_id}/on_complete"),
    }
}

/// The `queue stats` line of `connector`.
fn stats(config: &Path, connector: &str) -> String {
    let out = run(config, &["queue", "stats", connector]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The transactions (id, task) of a diamond run, its start included.
fn diamond_transactions(run_id: &str) -> BTreeSet<(String, String)> {
    [
        ("", "wf"),
        ("/first", "a"),
        ("/second", "b"),
        ("/fan/0", "b"),
        ("/fan/1", "b"),
        ("/last", "a"),
        ("/on_complete", "done"),
    ]
    .into_iter()
    .map(|(suffix, task)| (format!("{run_id}{suffix}"), task.to_owned()))
    .collect()
}

/// A runner killed with SIGKILL while runs are in progress, then started again: every
/// run ends `succeeded`. Delivery is at least once, so what is asserted is:
/// - the journal recorded each transaction of each run once — exactly the run's start,
///   its five node transactions and its result, all succeeded — and no other;
/// - every node and every result was written to `out.jsonl` (nothing lost), and the only
///   transactions written more than once are those the journal recorded as delivered
///   again (a transaction the kill cut between its write and its commit);
/// - every copy of a run's result is the same, complete, result.
#[test]
fn a_runner_killed_mid_run_completes_every_run_after_a_restart() {
    const RUNS: usize = 1_000;
    // The default inputs: each line written names its transaction.
    let diamond = diamond(false);
    let (dir, config) = setup(&format!(
        "{JOURNAL}{}{diamond}",
        workflow_table("timeout = \"10m\"")
    ));
    let root = dir.path();
    let ids: Vec<String> = (0..RUNS).map(|i| format!("r-{i}")).collect();
    let inputs: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "id": id, "langs": ["en", "fr"] }))
        .collect();
    enqueue_docs(&config, &inputs);
    let journal = journal(root);

    let mut victim = runner(&config, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while journal.runs(Some("succeeded"), RUNS).unwrap().len() < RUNS / 10 {
        assert!(Instant::now() < deadline, "no run finished");
        assert!(
            victim.try_wait().unwrap().is_none(),
            "the runner ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    victim.kill().unwrap(); // SIGKILL: no drain, no last commit
    victim.wait().unwrap();
    let finished = journal.runs(Some("succeeded"), RUNS).unwrap().len();
    assert!(finished < RUNS, "every run had finished before the kill");

    run(&config, &["run"]);

    let runs = journal.runs(None, 2 * RUNS).unwrap();
    assert_eq!(runs.len(), RUNS);
    for summary in &runs {
        assert_eq!(summary.status, "succeeded", "{summary:?}");
        assert_eq!(
            (summary.nodes_done, summary.nodes_total),
            (4, 4),
            "{summary:?}"
        );
    }
    let mut deliveries = BTreeMap::new();
    for id in &ids {
        let records = recorded(&journal, id);
        let transactions: BTreeSet<_> = records.keys().cloned().collect();
        assert_eq!(transactions, diamond_transactions(id), "run {id}");
        for ((tx, task), (status, delivered)) in records {
            assert_eq!(status, Status::Succeeded, "{tx} in {task}");
            deliveries.insert(tx, delivered);
        }
    }

    let lines = written(root);
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for line in &lines {
        *copies.entry(written_by(line)).or_default() += 1;
    }
    let expected: BTreeSet<String> = ids
        .iter()
        .flat_map(|id| diamond_transactions(id))
        .filter(|(_, task)| task != "wf")
        .map(|(tx, _)| tx)
        .collect();
    assert_eq!(
        copies.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "every node and result written, nothing else"
    );
    for (tx, count) in &copies {
        assert!(
            *count == 1 || deliveries[tx] > 1,
            "{tx} written {count} times but delivered once"
        );
    }
    for line in lines.iter().filter(|line| line.get("workflow").is_some()) {
        let run_id = line["run_id"].as_str().unwrap();
        assert_eq!(
            line,
            &json!({
                "run_id": run_id,
                "workflow": "wf",
                "status": "succeeded",
                "results": {
                    "first": null,
                    "second": null,
                    "fan": { "en": null, "fr": null },
                    "last": null,
                },
                "failed": [],
                "skipped": [],
                "cancelled": [],
            })
        );
    }
    for queue in ["docs", "a_in", "b_in", "done_in"] {
        assert!(
            stats(&config, queue).ends_with("ready=0 in_flight=0 expired=0 dead=0"),
            "{}",
            stats(&config, queue)
        );
    }
    let again: usize = copies.values().map(|n| n - 1).sum();
    eprintln!(
        "kill test: {RUNS} runs, {finished} finished before the kill, every one after; \
         {again} transactions written again"
    );
}

/// A workflow whose `b` nodes cannot finish in time: `b` is not run by this runner.
fn stuck() -> String {
    [
        workflow_table("timeout = \"3s\""),
        node("first", "a", &[], ""),
        node("stuck", "b", &["first"], ""),
        node("fan", "b", &["first"], "expand = { items = [1, 2, 3] }"),
        node("last", "a", &["stuck"], ""),
    ]
    .concat()
}

/// A run whose nodes are still queued at its deadline ends `timed_out`: its unfinished
/// nodes are cancelled (in the result too), and the queued node transactions are
/// withdrawn from their queue.
#[test]
fn a_run_past_its_timeout_cancels_its_nodes_and_withdraws_the_queued_ones() {
    let (dir, config) = setup(&format!("{JOURNAL}{}", stuck()));
    let root = dir.path();
    enqueue_docs(&config, &[json!({ "id": "r1" })]);

    let runner = runner(&config, &["run", "wf", "a", "done"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stats(&config, "b_in").contains(" ready=4 ") {
        assert!(
            Instant::now() < deadline,
            "`stuck` and the 3 items of `fan` never queued: {}",
            stats(&config, "b_in")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = runner.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let journal = journal(root);
    let detail = run_detail(&journal, "r1");
    assert_eq!(detail.summary.status, "timed_out");
    assert_eq!(
        phases(&detail),
        BTreeMap::from([
            ("first", "succeeded"),
            ("stuck", "cancelled"),
            ("fan", "cancelled"),
            ("last", "cancelled"),
        ])
    );
    let records = recorded(&journal, "r1");
    for tx in ["r1/stuck", "r1/fan/0", "r1/fan/1", "r1/fan/2"] {
        assert_eq!(
            records[&(tx.to_owned(), "b".to_owned())],
            (Status::Cancelled, 0),
            "{tx} withdrawn before it was delivered"
        );
    }
    assert!(
        stats(&config, "b_in").ends_with("ready=0 in_flight=0 expired=0 dead=0"),
        "{}",
        stats(&config, "b_in")
    );
    let results: Vec<Value> = written(root)
        .into_iter()
        .filter(|line| line.get("workflow").is_some())
        .collect();
    assert_eq!(
        results,
        [json!({
            "run_id": "r1",
            "workflow": "wf",
            "status": "timed_out",
            "results": { "first": null },
            "failed": [],
            "skipped": [],
            "cancelled": ["fan", "last", "stuck"],
        })]
    );
}

/// A task that dead-letters what it gets: its output is a file under a regular file.
const BAD: &str = r#"
[connectors.bad_in]
type = "local"
path = "q.db"

[connectors.nowhere]
type = "file"
path = "blocker/out.jsonl"

[tasks.bad]
type = "forward"
input = "bad_in"
output = "nowhere"
"#;

/// A node `broken` that runs [`BAD`], and a dependent of it under each trigger rule
/// (named after its rule; `cascade` depends on `all_succeeded`).
fn failing() -> String {
    let mut toml = [
        workflow_table(""),
        node("first", "a", &[], ""),
        node("broken", "bad", &["first"], ""),
        node("side", "a", &["first"], ""),
        node("all_succeeded", "a", &["broken", "side"], ""),
        node("cascade", "a", &["all_succeeded"], ""),
    ]
    .concat();
    for trigger in ["all_done", "any_succeeded", "none_failed"] {
        let rule = format!("trigger = \"{trigger}\"");
        toml += &node(trigger, "a", &["broken", "side"], &rule);
    }
    toml
}

/// A node that dead-letters: its `all_succeeded` and `none_failed` dependents are
/// skipped (and the skip cascades), its `all_done` and `any_succeeded` ones run, the
/// run ends `failed` and its result keeps the outputs of the nodes that succeeded.
#[test]
fn a_failed_node_skips_what_needs_it_and_the_run_keeps_the_rest() {
    let (dir, config) = setup(&format!("{BAD}{JOURNAL}{}", failing()));
    let root = dir.path();
    std::fs::write(root.join("blocker"), "").unwrap();
    enqueue_docs(&config, &[json!({ "id": "r1" })]);

    run(&config, &["run"]);

    let journal = journal(root);
    let detail = run_detail(&journal, "r1");
    assert_eq!(detail.summary.status, "failed");
    assert_eq!(
        phases(&detail),
        BTreeMap::from([
            ("first", "succeeded"),
            ("broken", "failed"),
            ("side", "succeeded"),
            ("all_succeeded", "skipped"),
            ("cascade", "skipped"),
            ("all_done", "succeeded"),
            ("any_succeeded", "succeeded"),
            ("none_failed", "skipped"),
        ])
    );
    let records = recorded(&journal, "r1");
    assert_eq!(
        records[&("r1/broken".to_owned(), "bad".to_owned())].0,
        Status::Failed
    );
    assert!(
        stats(&config, "bad_in").ends_with("ready=0 in_flight=0 expired=0 dead=1"),
        "{}",
        stats(&config, "bad_in")
    );

    let lines = written(root);
    let nodes_written: BTreeSet<String> = lines
        .iter()
        .filter(|line| line.get("workflow").is_none())
        .map(written_by)
        .collect();
    assert_eq!(
        nodes_written,
        ["first", "side", "all_done", "any_succeeded"]
            .map(|node| format!("r1/{node}"))
            .into()
    );
    let mut results: Vec<Value> = lines
        .into_iter()
        .filter(|line| line.get("workflow").is_some())
        .collect();
    assert_eq!(results.len(), 1, "{results:?}");
    let mut result = results.remove(0);
    let error = result["failed"][0]["error"].take();
    assert!(
        error
            .as_str()
            .is_some_and(|e| e.starts_with("system: cannot open") && e.contains("blocker")),
        "{error}"
    );
    assert_eq!(
        result,
        json!({
            "run_id": "r1",
            "workflow": "wf",
            "status": "failed",
            "results": { "first": null, "side": null, "all_done": null, "any_succeeded": null },
            "failed": [{ "node": "broken", "error": null }],
            "skipped": ["all_succeeded", "cascade", "none_failed"],
            "cancelled": [],
        })
    );
}

/// A task reading a local queue in another file than the journal's: the journal cannot
/// hand it work.
const FAR: &str = r#"
[connectors.other]
type = "local"
path = "other.db"

[tasks.far]
type = "forward"
input = "other"
output = "sink"
"#;

/// What `validate` says of the [`local_tasks`], [`FAR`] and `tables`: it exits with code 2, and
/// this is its message after the file's name.
fn refused(tables: &str) -> String {
    let (_dir, config) = setup(&format!("{FAR}{tables}"));
    let out = runner(&config, &["validate"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let prefix = format!("ergon-runner: config error: {}: ", config.display());
    stderr
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no config error line in: {stderr}"))
        .to_owned()
}

/// Workflow `wf` of `nodes` alone: no timeout, no result to hand on.
fn bare(nodes: &str) -> String {
    format!("\n[workflows.wf]\nstart = \"docs\"\n\n{nodes}")
}

/// A one-node workflow `wf` whose node `x` runs `task` and has the extra `fields`.
fn one_node(task: &str, fields: &str) -> String {
    bare(&node("x", task, &[], fields))
}

#[test]
fn a_cycle_is_refused_with_its_path() {
    let cycle = bare(&(node("a", "a", &["b"], "") + &node("b", "b", &["a"], "")));
    assert_eq!(
        refused(&format!("{JOURNAL}{cycle}")),
        "workflows.wf.nodes: the plan has a cycle: a → b → a"
    );
}

#[test]
fn a_node_naming_an_unknown_task_is_refused() {
    assert_eq!(
        refused(&format!("{JOURNAL}{}", one_node("nope", ""))),
        "workflows.wf.nodes: node `x` runs task `nope`, which is not a task this run may \
         use; tasks the journal can hand work to: a, b, done"
    );
}

#[test]
fn a_node_task_the_journal_cannot_hand_work_to_is_refused() {
    assert_eq!(
        refused(&format!("{JOURNAL}{}", one_node("far", ""))),
        "workflows.wf.nodes: node `x` runs task `far`, which is not a task this run may \
         use; tasks the journal can hand work to: a, b, done"
    );
}

#[test]
fn a_workflow_without_a_journal_is_refused() {
    assert_eq!(
        refused(&one_node("a", "")),
        "workflows.wf: a workflow's runs are advanced by the journal: add a `[journal]` table"
    );
}

#[test]
fn a_workflow_named_like_a_task_is_refused() {
    let named_a = one_node("a", "").replace("workflows.wf", "workflows.a");
    assert_eq!(
        refused(&format!("{JOURNAL}{named_a}")),
        "workflows.a: a workflow runs as a task of its name, and `[tasks.a]` exists: rename one"
    );
}

#[test]
fn an_expansion_with_two_sources_is_refused() {
    let node = one_node(
        "a",
        "expand = { over = \"{{ input.langs }}\", items = [1, 2] }",
    );
    assert_eq!(
        refused(&format!("{JOURNAL}{node}")),
        "workflows.wf.nodes: node `x`: `expand` needs exactly one of `over`, `matrix`, \
         `items`, `each`, `custom`"
    );
}

#[test]
fn a_template_with_a_syntax_error_is_refused() {
    let node = one_node("a", "input = { text = \"{{ input.text \" }");
    assert_eq!(
        refused(&format!("{JOURNAL}{node}")),
        "workflows.wf.nodes: node `x`: template \"{{ input.text \": syntax error \
         (unexpected end of input, expected end of variable block)"
    );
}

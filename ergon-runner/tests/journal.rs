//! The journal through the runner: a crash (kill -9) between the journal's commit and the
//! queue's ack runs nothing again; `trace`, `get`, `list --parent` and `journal purge`
//! on a real fan-out; `[journal]` mistakes are config errors naming the key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ergon_core::{Consumer, Context, Hybrid, TaskError, Transaction};
use ergon_runner::plan::Plan;
use ergon_runner::{Registry, TaskManager};

fn runner(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ergon-runner"));
    command.arg("--config").arg(config).args(args);
    command
}

fn output(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out: Output = runner(config, args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(config: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = output(config, args);
    assert_eq!(code, Some(0), "ergon-runner {args:?}: {stdout}\n{stderr}");
    stdout
}

fn enqueue(dir: &Path, config: &Path, connector: &str, ids: &[String]) {
    let lines: String = ids
        .iter()
        .map(|id| format!("{{\"id\":\"{id}\"}}\n"))
        .collect();
    let input = dir.join(format!("{connector}.jsonl"));
    std::fs::write(&input, lines).unwrap();
    ok(
        config,
        &[
            "queue",
            "enqueue",
            connector,
            "--file",
            input.to_str().unwrap(),
        ],
    );
}

/// `forward` from the local queue `inbox` to `done.jsonl`, journaling everything.
/// `journal` is the `[journal]` file: the queue's own (`queue.db`), or another.
fn forward_config(dir: &Path, ack_interval: &str, streaming: bool, journal: &str) -> PathBuf {
    let config = dir.join("tasks.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[connectors.inbox]
type = "local"
path = "queue.db"
lease = "1s"
ack_interval = "{ack_interval}"

[connectors.done]
type = "file"
path = "done.jsonl"

[tasks.drain]
type = "forward"
input = "inbox"
output = "done"
policy.loop.streaming = {streaming}
policy.fetch.empty.backoff = "20ms"

[journal]
record = "all"
path = "{journal}"
"#
        ),
    )
    .unwrap();
    config
}

/// How many times each id was forwarded.
fn forwarded(dir: &Path) -> std::collections::BTreeMap<String, usize> {
    let text = std::fs::read_to_string(dir.join("done.jsonl")).unwrap_or_default();
    let mut seen = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
            *seen
                .entry(value["id"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
    }
    seen
}

/// Runs `drain` until all 20 transactions are journaled, then kills it (kill -9).
fn journal_then_kill(root: &Path, config: &Path, ids: &[String]) {
    let mut child = runner(config, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ids
        .iter()
        .all(|id| output(config, &["get", id]).0 == Some(0))
    {
        assert!(
            Instant::now() < deadline,
            "not all journaled: {:?}",
            forwarded(root)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(forwarded(root).len(), 20);
}

#[test]
fn a_queue_in_the_journals_file_is_acked_in_the_journals_commit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Acks of the queue's own are held for an hour; the journal's commit acks.
    let config = forward_config(root, "1h", true, "queue.db");
    let ids: Vec<String> = (0..20).map(|i| format!("o-{i:02}")).collect();
    enqueue(root, &config, "inbox", &ids);
    journal_then_kill(root, &config, &ids);
    let stats = ok(&config, &["queue", "stats", "inbox"]);
    assert!(
        stats.contains("ready=0 in_flight=0 expired=0 dead=0"),
        "all acked: {stats}"
    );
}

#[test]
fn a_crash_between_the_journal_commit_and_the_ack_runs_nothing_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A journal in a file of its own: the queue acks on its own, and holds its acks for
    // an hour, so every completion is journaled and none acked when the process is killed.
    let config = forward_config(root, "1h", true, "journal.db");
    let ids: Vec<String> = (0..20).map(|i| format!("o-{i:02}")).collect();
    enqueue(root, &config, "inbox", &ids);
    journal_then_kill(root, &config, &ids);
    let stats = ok(&config, &["queue", "stats", "inbox"]);
    assert!(
        !stats.contains("ready=0 in_flight=0 expired=0"),
        "nothing was acked: {stats}"
    );

    // Run again, acks flowing: every transaction is delivered again (its lease ran out)
    // and settled as journaled; none is forwarded twice.
    let config = forward_config(root, "5ms", false, "journal.db");
    std::thread::sleep(Duration::from_millis(1_100));
    let summary = ok(&config, &["run"]);
    assert!(
        summary.contains("task drain: processed=20 succeeded=20"),
        "{summary}"
    );
    assert!(
        forwarded(root).values().all(|&n| n == 1),
        "{:?}",
        forwarded(root)
    );
    let stats = ok(&config, &["queue", "stats", "inbox"]);
    assert!(
        stats.contains("ready=0 in_flight=0 expired=0 dead=0"),
        "{stats}"
    );
    let node: serde_json::Value =
        serde_json::from_str(&ok(&config, &["get", "o-07", "--json"])).unwrap();
    assert_eq!(
        node["deliveries"], 1,
        "the record of the first delivery stands: {node}"
    );
    assert_eq!(node["status"], "succeeded");
}

/// Splits a parent into `{"children": n}` children `PARENT/00`, `PARENT/01`, ...
struct FanOut;

impl Hybrid for FanOut {
    async fn process_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        let n = if tx.id() == "p-1" { 25 } else { 2 };
        Ok((0..n)
            .map(|k| tx.child(format!("{}/{k:02}", tx.id()), "{}").build())
            .collect())
    }
}

/// Fails children 20, 21 and 22 with a business error.
struct Item;

impl Consumer for Item {
    type Output = ();

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
        if ["/20", "/21", "/22"]
            .iter()
            .any(|end| tx.id().ends_with(end))
        {
            return Err(TaskError::business(format!("{} is out of stock", tx.id())));
        }
        Ok(())
    }
}

const FAN_OUT: &str = r#"
[connectors.parents]
type = "local"
path = "queue.db"

[connectors.items]
type = "local"
path = "queue.db"

[tasks.fan_out]
type = "fan_out"
input = "parents"
output = "items"

[tasks.item]
type = "item"
input = "items"
policy.loop.concurrency = 1
policy.fetch.batch_size = 1

[journal]
"#;

/// Runs `task` of `config` in this process, with its journal.
async fn run_task(config: &Path, task: &str) {
    let registry = Registry::with_builtins()
        .hybrid("fan_out", |_| Ok(FanOut))
        .consumer("item", |_| Ok(Item));
    let plan = Plan::build(&ergon_runner::config::load(config).unwrap(), &registry).unwrap();
    let tasks = plan.select(&[task.to_owned()]).unwrap();
    let journal = plan.journal.as_ref().expect("[journal]");
    let journal = journal.open(&[task.to_owned()]).await.unwrap();
    let report = TaskManager::new(tasks).journal(journal).quiet().run().await;
    assert!(report.tasks[0].workers.iter().all(Result::is_ok), "{task}");
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_get_and_list_show_a_fan_out_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tasks.toml");
    std::fs::write(&config, FAN_OUT).unwrap();
    enqueue(
        dir.path(),
        &config,
        "parents",
        &["p-1".into(), "p-2".into()],
    );
    run_task(&config, "fan_out").await;
    run_task(&config, "item").await;

    let tree = ok(&config, &["trace", "p-1/05"]);
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 5, "{tree}");
    assert!(lines[0].starts_with("p-1 [fan_out] succeeded "), "{tree}");
    assert!(
        lines[0].ends_with("attempts=1 deliveries=1 children=25"),
        "{tree}"
    );
    assert!(
        lines[1].starts_with("├─ p-1/00 [item] succeeded "),
        "{tree}"
    );
    assert!(
        lines[3].starts_with("├─ p-1/02 [item] succeeded "),
        "{tree}"
    );
    assert_eq!(
        lines[4], "└─ … 22 more: 3 failed, 19 succeeded (list --parent p-1 [--status failed])",
        "{tree}"
    );

    let small = ok(&config, &["trace", "p-2"]);
    assert_eq!(small.lines().count(), 3, "{small}");
    assert!(
        small
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("└─ p-2/01 [item] succeeded"),
        "{small}"
    );

    let failed = ok(&config, &["list", "--parent", "p-1", "--status", "failed"]);
    let failed: Vec<&str> = failed.lines().collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        failed[0].starts_with("p-1/20 [item] failed ")
            && failed[0].ends_with("error=process/business: p-1/20 is out of stock"),
        "{failed:?}"
    );
    assert_eq!(ok(&config, &["list", "--root", "p-1"]).lines().count(), 26);

    let node: serde_json::Value =
        serde_json::from_str(&ok(&config, &["get", "p-1/21", "--json"])).unwrap();
    assert_eq!(node["status"], "failed");
    assert_eq!(node["settlement"], "dead_letter");
    assert_eq!(node["parent_id"], "p-1");
    assert_eq!(node["root_id"], "p-1");
    assert_eq!(node["error"]["message"], "p-1/21 is out of stock");

    let document: serde_json::Value =
        serde_json::from_str(&ok(&config, &["trace", "p-1", "--format", "json"])).unwrap();
    assert_eq!(document["id"], "p-1");
    assert_eq!(
        document["children"].as_array().unwrap().len(),
        25,
        "nothing folded"
    );
    assert_eq!(document["nodes"][0]["task"], "fan_out");

    let (code, _, stderr) = output(&config, &["get", "nope"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("no transaction `nope` in the journal"),
        "{stderr}"
    );

    let purged = ok(&config, &["journal", "purge", "--older-than", "0s"]);
    assert!(purged.starts_with("purged 29 journal records"), "{purged}");
    assert_eq!(output(&config, &["get", "p-1"]).0, Some(1));
}

#[test]
fn journal_mistakes_are_config_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tasks.toml");
    for (table, key) in [
        ("record = \"sometimes\"", "journal.record"),
        ("retention = \"soon\"", "journal.retention"),
        ("path = \"\"", "journal.path"),
        ("colour = \"blue\"", "journal"),
        ("type = \"postgres\"", "journal.url: is required"),
        (
            "type = \"postgres\"\nurl = \"postgres://u:s3cret@h/db\"\npath = \"q.db\"",
            "journal.path: is a key of `type = \"sqlite\"`",
        ),
        (
            "url = \"postgres://h/db\"",
            "journal.url: is a key of `type = \"postgres\"`",
        ),
        (
            "type = \"postgres\"\nurl = \"postgres://h/db\"\nschema = \"Robert'); DROP\"",
            "journal.schema: `Robert'); DROP` is not a plain SQL name",
        ),
        ("type = \"mongodb\"", "journal.type"),
    ] {
        std::fs::write(&config, format!("[journal]\n{table}\n")).unwrap();
        let (code, _, stderr) = output(&config, &["validate"]);
        assert_eq!(code, Some(2), "{table}: {stderr}");
        assert!(stderr.contains(key), "{table}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{table}: {stderr}");
    }
    // A PostgreSQL journal that cannot be reached: `trace` names the database, not the
    // password.
    let unreachable = "[journal]\ntype = \"postgres\"\nurl = \"postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=2\"\n";
    std::fs::write(&config, unreachable).unwrap();
    let (code, _, stderr) = output(&config, &["trace", "x"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("journal postgres://u@127.0.0.1:1/db schema public: cannot connect"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
    // Continuations: they need a journal, and a target that reads a local queue in its
    // file; the key of the offending entry is named.
    let tasks = r#"
[connectors.inbox]
type = "local"
path = "queue.db"

[connectors.other]
type = "local"
path = "elsewhere.db"

[connectors.lines]
type = "file"
path = "lines.jsonl"

[tasks.a]
type = "forward"
input = "inbox"
output = "lines"

[tasks.b]
type = "forward"
input = "other"
output = "lines"

[tasks.c]
type = "forward"
input = "lines"
output = "inbox"
"#;
    for (extra, key, message) in [
        (
            "on_complete = \"a\"",
            "tasks.a.on_complete",
            "add a `[journal]` table",
        ),
        (
            "on_complete = \"c\"\n[journal]\ntype = \"postgres\"\nurl = \"postgres://h/db\"",
            "tasks.a.on_complete",
            "task `c` reads no connector the journal's relay can dispatch to",
        ),
        (
            "on_complete = \"b\"\n[journal]\npath = \"queue.db\"",
            "tasks.a.on_complete",
            "task `b` does not read a local queue in the journal's file",
        ),
        (
            "on_complete = [\"a\", { task = \"c\", when = \"failure\" }]\n[journal]\npath = \"queue.db\"",
            "tasks.a.on_complete.1",
            "task `c` does not read a local queue",
        ),
        (
            "on_complete = { task = \"nope\" }\n[journal]\npath = \"queue.db\"",
            "tasks.a.on_complete",
            "no task named `nope`",
        ),
        (
            "on_complete = { task = \"a\", when = \"sometimes\" }\n[journal]\npath = \"queue.db\"",
            "tasks.a.on_complete.when",
            "unknown variant `sometimes`",
        ),
    ] {
        let file = tasks.replace(
            "output = \"lines\"\n\n[tasks.b]",
            &format!("output = \"lines\"\n{extra}\n\n[tasks.b]"),
        );
        std::fs::write(&config, file).unwrap();
        let (code, _, stderr) = output(&config, &["validate"]);
        assert_eq!(code, Some(2), "{extra}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains(message),
            "{extra}: {stderr}"
        );
    }
    std::fs::write(&config, "[tasks]\n").unwrap();
    let (code, _, stderr) = output(&config, &["trace", "x"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("the file has no `[journal]`"), "{stderr}");
    // Tagged fan-in: `consumes` needs a journal, tasks it knows, a batch size it can
    // hold, and a consumer it can hand batches to; the key at fault is named.
    let journal = "\n[journal]\npath = \"queue.db\"";
    for (consumes, with_journal, key, message) in [
        (
            "{ tags = [\"t\"], from = [\"c\"] }",
            false,
            "tasks.a.consumes",
            "a fan-in batch is sent by the journal: add a `[journal]` table",
        ),
        (
            "{ tags = [], from = [\"c\"] }",
            true,
            "tasks.a.consumes.tags",
            "list at least one tag",
        ),
        (
            "{ tags = [\"t\"], from = [] }",
            true,
            "tasks.a.consumes.from",
            "list the tasks whose results are collected",
        ),
        (
            "{ tags = [\"t\"], from = [\"c\", \"nope\"] }",
            true,
            "tasks.a.consumes.from.1",
            "no task named `nope`",
        ),
        (
            "{ tags = [\"t\"], from = [\"c\"], batch_size = 0 }",
            true,
            "tasks.a.consumes.batch_size",
            "0 is out of range: a batch holds 1..=10000 results",
        ),
        (
            "{ tags = [\"t\"], from = [\"c\"], group_by = \"colour\" }",
            true,
            "tasks.a.consumes.group_by",
            "unknown variant `colour`",
        ),
        (
            "{ tags = [\"t\"], from = [\"c\"], timeout = \"soon\" }",
            true,
            "tasks.a.consumes.timeout",
            "soon",
        ),
    ] {
        let extra = format!("consumes = {consumes}");
        let file = tasks.replace(
            "output = \"lines\"\n\n[tasks.b]",
            &format!("output = \"lines\"\n{extra}\n\n[tasks.b]"),
        );
        let file = if with_journal { file + journal } else { file };
        std::fs::write(&config, file).unwrap();
        let (code, _, stderr) = output(&config, &["validate"]);
        assert_eq!(code, Some(2), "{extra}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains(message),
            "{extra}: {stderr}"
        );
    }
    // The consumer must read a local queue in the journal's file.
    let file = tasks.replace(
        "input = \"other\"\noutput = \"lines\"",
        "input = \"other\"\noutput = \"lines\"\nconsumes = { tags = [\"t\"], from = [\"a\"] }",
    ) + journal;
    std::fs::write(&config, file).unwrap();
    let (code, _, stderr) = output(&config, &["validate"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("tasks.b.consumes")
            && stderr.contains("task `b` does not read a local queue in the journal's file")
            && stderr.contains("cannot hand it batches"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journal_counts_spawns_and_waits_for_the_metrics_endpoint() {
    use ergon_core::journal::Journal;
    use ergon_runner::telemetry::board::WorkerBoard;
    use ergon_runner::telemetry::metrics;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tasks.toml");
    std::fs::write(&config, FAN_OUT).unwrap();
    let registry = Registry::with_builtins()
        .hybrid("fan_out", |_| Ok(FanOut))
        .consumer("item", |_| Ok(Item));
    let plan = Plan::build(&ergon_runner::config::load(&config).unwrap(), &registry).unwrap();
    let journal = plan.journal.as_ref().unwrap().open(&[]).await.unwrap();
    let board = WorkerBoard::default();
    board.journal_opened(journal.metrics().clone());

    let parent = Transaction::new("p-m", "{}");
    let children: Vec<Transaction> = (0..3)
        .map(|k| parent.child(format!("p-m/{k}"), "{}").build())
        .collect();
    assert_eq!(journal.spawn("fan_out", "item", children).await.unwrap(), 3);
    let text = metrics::prometheus::render(&metrics::collect(&board));
    assert!(
        text.contains(
            r#"ergon_children_spawned_total{ergon_task="fan_out",ergon_child_task="item"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"ergon_waits_decided_total{ergon_wait_outcome="timed_out"} 0"#),
        "{text}"
    );
    assert!(text.contains("ergon_wait_in_step 0"), "{text}");
    assert!(
        text.contains(r#"ergon_fanin_batches_total{ergon_batch_reason="complete"} 0"#),
        "{text}"
    );
}

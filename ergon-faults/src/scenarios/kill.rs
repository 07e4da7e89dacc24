//! kill -9 under load, twice per run: for every input connector (local, RabbitMQ,
//! PostgreSQL, Redis Streams), and for the workflow layer (a fan-out with a parked fan-in,
//! DAG runs). After each kill a runner starts again at once; the last one runs the finite
//! run to its end. Nothing may be lost; duplicates are bounded by what a killed runner can
//! hold unsettled.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{
    Deployment, Input, Kills, Pipeline, Queue, Report, Result, Suite, Tally, Tuning, ids,
    kill_at_marks,
};

/// The output marks at which the runner is killed: a third and two thirds of `total`.
fn marks(total: usize) -> [usize; 2] {
    [total / 3, 2 * total / 3]
}

/// How long any one wait of a kill scenario may take before it is a hang.
fn limit(suite: &Suite) -> Duration {
    Duration::from_secs(suite.profile.pick(180, 900))
}

/// `kills restarts recovery_ms` of a report.
fn with_kills(report: Report, kills: &Kills) -> Report {
    report
        .field("kills", kills.kills)
        .field("restarts", kills.restarts)
        .field("recovery_ms", kills.recovery.as_millis())
}

/// `kill9_local`.
pub fn local(suite: &Suite, name: &'static str) -> Result<Report> {
    kill_input(suite, name, Input::Local)
}

/// `kill9_rabbitmq`.
pub fn rabbitmq(suite: &Suite, name: &'static str) -> Result<Report> {
    kill_input(suite, name, Input::RabbitMq)
}

/// `kill9_postgres`.
pub fn postgres(suite: &Suite, name: &'static str) -> Result<Report> {
    kill_input(suite, name, Input::Postgres)
}

/// `kill9_redis`.
pub fn redis(suite: &Suite, name: &'static str) -> Result<Report> {
    kill_input(suite, name, Input::RedisStreams)
}

/// Ids fed into `input`, relayed to a file by a runner killed twice mid-run.
fn kill_input(suite: &Suite, name: &'static str, input: Input) -> Result<Report> {
    let count = suite.profile.pick(5_000, 100_000);
    let tuning = Tuning {
        delay_ms: 2,
        ..Tuning::default()
    };
    let pipeline = Pipeline::new(suite, Queue::new(input, name), tuning)?;
    let sent = ids::numbered("o", count);
    pipeline.feed(&ids::json_lines(&sent))?;
    let (mut last, kills) = kill_at_marks(
        &marks(count),
        limit(suite),
        || pipeline.drain(),
        || pipeline.delivered(),
    )?;
    last.expect_exit(limit(suite), 0)?;
    let bound = kills.kills * pipeline.held_per_kill();
    Ok(with_kills(
        Report::new(name).tally(&pipeline.tally(&sent)?, bound),
        &kills,
    ))
}

/// The queues and tasks both workflow scenarios share: local queues `queues` in `wf.db`
/// (lease 2 s), the journal in the same file, node lines in `out.jsonl`.
fn workflow_connectors(queues: &[&str]) -> String {
    let mut toml = String::from(
        "[journal]\npath = \"wf.db\"\n\n[connectors.sink]\ntype = \"file\"\npath = \"out.jsonl\"\n\n",
    );
    for queue in queues {
        toml += &format!(
            "[connectors.{queue}]\ntype = \"local\"\npath = \"wf.db\"\nlease = \"2s\"\n\n"
        );
    }
    toml
}

/// A relay task `name` from `input` to `output`, `concurrency` at a time.
fn relay_task(name: &str, input: &str, output: &str, concurrency: usize) -> String {
    format!(
        "[tasks.{name}]\ntype = \"relay\"\ninput = \"{input}\"\noutput = \"{output}\"\n\
         policy.loop.concurrency = {concurrency}\npolicy.fetch.batch_size = 64\n\n"
    )
}

/// `kill9_fan_out`: batches each spawn their items (relayed to `out.jsonl`) and park a
/// fan-in on them (one line per batch in `fan_ins.jsonl`); the runner is killed twice
/// while the items run. Every item must come out, every batch must fan in with all of its
/// items succeeded, and the journal fires each fan-in once (a kill between the fan-in's
/// write and its commit may write its line twice: bounded by the kills).
pub fn fan_out(suite: &Suite, name: &'static str) -> Result<Report> {
    let (batches, items) = suite.profile.pick((4, 1_000), (10, 10_000));
    let concurrency = 64;
    let toml = format!(
        "{}[connectors.fan_ins_out]\ntype = \"file\"\npath = \"fan_ins.jsonl\"\n\n\
         [tasks.split]\ntype = \"fan_out\"\ninput = \"batches\"\n\
         settings = {{ children = \"item\", fan_in = \"fan_in\" }}\n\n\
         [tasks.fan_in]\ntype = \"fan_in\"\ninput = \"fan_ins\"\noutput = \"fan_ins_out\"\n\n{}",
        workflow_connectors(&["batches", "items", "fan_ins"]),
        relay_task("item", "items", "sink", concurrency),
    );
    let deployment = Deployment::new(suite, &toml)?;
    let batch_ids = ids::numbered("batch", batches);
    let lines: String = batch_ids
        .iter()
        .map(|id| format!("{{\"id\":\"{id}\",\"items\":{items}}}\n"))
        .collect();
    deployment.write("batches.jsonl", lines)?;
    deployment.enqueue("batches", "batches.jsonl")?;

    let sent: Vec<String> = batch_ids
        .iter()
        .flat_map(|batch| (0..items).map(move |n| format!("{batch}/item/{n}")))
        .collect();
    let out = deployment.path("out.jsonl");
    let (mut last, kills) = kill_at_marks(
        &marks(sent.len()),
        limit(suite),
        || deployment.spawn(&["run"]),
        || Ok(ids::count(&out, "id")?.len()),
    )?;
    last.expect_exit(limit(suite), 0)?;

    let bound = kills.kills * Input::Local.held_per_worker(concurrency, 64);
    let fan_ins = ids::lines(&deployment.path("fan_ins.jsonl"))?;
    let fan_in_counts = ids::count(&deployment.path("fan_ins.jsonl"), "id")?;
    let fan_in_tally = Tally::of(&batch_ids, &fan_in_counts);
    let incomplete: Vec<String> = fan_ins
        .iter()
        .filter(|line| {
            line["total"].as_u64() != Some(items as u64)
                || line["succeeded"].as_u64() != Some(items as u64)
        })
        .map(|line| line.to_string())
        .collect();
    let report = Report::new(name)
        .tally(&ids::Tally::of(&sent, &ids::count(&out, "id")?), bound)
        .field("fan_ins", fan_in_tally.unique)
        .field("fan_ins_duplicated", fan_in_tally.duplicated)
        .check(fan_in_tally.lost() == 0, || {
            format!("{} batches never fanned in", fan_in_tally.lost())
        })
        .check(fan_in_tally.duplicated <= kills.kills, || {
            format!("{} fan-in lines written twice", fan_in_tally.duplicated)
        })
        .check(incomplete.is_empty(), || {
            format!(
                "fan-ins without all items succeeded: {}",
                incomplete.join(" ")
            )
        });
    Ok(with_kills(report, &kills))
}

/// The nodes of each DAG run: a diamond, `first`, then `left` and `right`, then `last`.
const DAG_NODES: [&str; 4] = ["first", "left", "right", "last"];

/// `kill9_dag`: DAG runs of a diamond (`[workflows.wf]`, relay tasks as its nodes, node
/// lines in `out.jsonl`, run results in `results.jsonl`), the runner killed twice while
/// they run. Every node of every run must come out and every run must end `succeeded`
/// with one result (a kill between a line's write and its commit may write it twice:
/// bounded by what a killed runner holds).
pub fn dag(suite: &Suite, name: &'static str) -> Result<Report> {
    let runs = suite.profile.pick(300, 5_000);
    let concurrency = 32;
    let nodes = "[[workflows.wf.nodes]]\nname = \"first\"\ntask = \"a\"\n\n\
                 [[workflows.wf.nodes]]\nname = \"left\"\ntask = \"b\"\ndepends_on = [\"first\"]\n\n\
                 [[workflows.wf.nodes]]\nname = \"right\"\ntask = \"b\"\ndepends_on = [\"first\"]\n\n\
                 [[workflows.wf.nodes]]\nname = \"last\"\ntask = \"a\"\ndepends_on = [\"left\", \"right\"]\n";
    let toml = format!(
        "{}[connectors.results]\ntype = \"file\"\npath = \"results.jsonl\"\n\n{}{}{}\
         [workflows.wf]\nstart = \"docs\"\non_complete = \"done\"\n\n{nodes}",
        workflow_connectors(&["docs", "a_in", "b_in", "done_in"]),
        relay_task("a", "a_in", "sink", concurrency),
        relay_task("b", "b_in", "sink", concurrency),
        relay_task("done", "done_in", "results", concurrency),
    );
    let deployment = Deployment::new(suite, &toml)?;
    let run_ids = ids::numbered("run", runs);
    deployment.write("docs.jsonl", ids::json_lines(&run_ids))?;
    deployment.enqueue("docs", "docs.jsonl")?;

    let sent: Vec<String> = run_ids
        .iter()
        .flat_map(|run| DAG_NODES.iter().map(move |node| format!("{run}/{node}")))
        .collect();
    let out = deployment.path("out.jsonl");
    let node_lines = || {
        ids::count_by(&out, |line| {
            Some(format!(
                "{}/{}",
                line["run_id"].as_str()?,
                line["node"].as_str()?
            ))
        })
    };
    let (mut last, kills) = kill_at_marks(
        &marks(sent.len()),
        limit(suite),
        || deployment.spawn(&["run"]),
        || Ok(node_lines()?.len()),
    )?;
    last.expect_exit(limit(suite), 0)?;

    let bound = kills.kills * Input::Local.held_per_worker(concurrency, 64);
    let results = ids::lines(&deployment.path("results.jsonl"))?;
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for result in &results {
        let status = result["status"].as_str().unwrap_or("none").to_owned();
        *statuses.entry(status).or_insert(0) += 1;
    }
    let result_tally = Tally::of(
        &run_ids,
        &ids::count(&deployment.path("results.jsonl"), "run_id")?,
    );
    let report = Report::new(name)
        .tally(&Tally::of(&sent, &node_lines()?), bound)
        .field("runs", result_tally.unique)
        .field("results_duplicated", result_tally.duplicated)
        .check(result_tally.lost() == 0, || {
            format!("{} runs without a result", result_tally.lost())
        })
        .check(result_tally.duplicated <= bound, || {
            format!("{} results written twice", result_tally.duplicated)
        })
        .check(statuses.keys().all(|status| status == "succeeded"), || {
            format!("run results by status: {statuses:?}")
        });
    Ok(with_kills(report, &kills))
}

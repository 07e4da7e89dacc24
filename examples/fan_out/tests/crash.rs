//! kill -9 in the middle of a fan-out of 10,000 children, on the embedded default: after
//! a restart every child has completed, the fan-in fired exactly once, its continuation
//! exists once in the journal, and nothing is left queued or leased.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const CHILDREN: usize = 10_000;

fn command(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fan_out"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        // Leases left by the killed process expire quickly.
        .env("ERGON__CONNECTORS__ITEMS__LEASE", "1s")
        .env("ERGON__CONNECTORS__BATCHES__LEASE", "1s")
        .env("ERGON__CONNECTORS__SUMS__LEASE", "1s");
    command
}

fn run(config: &Path, args: &[&str]) -> String {
    let out: Output = command(config, args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Children of `batch-1` journaled with `status`.
fn children(config: &Path, status: &str) -> usize {
    let limit = (CHILDREN * 2).to_string();
    let args = [
        "list", "--parent", "batch-1", "--status", status, "--limit", &limit,
    ];
    run(config, &args)
        .lines()
        .filter(|l| l.contains(" [square] "))
        .count()
}

#[test]
fn a_fan_out_killed_midway_completes_after_a_restart_and_fans_in_once() {
    let dir = tempfile::tempdir().unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(here.join("tasks.toml"), dir.path().join("tasks.toml")).unwrap();
    let config = dir.path().join("tasks.toml");
    let batches = dir.path().join("batches.jsonl");
    std::fs::write(
        &batches,
        format!("{{\"id\":\"batch-1\",\"items\":{CHILDREN}}}\n"),
    )
    .unwrap();
    run(
        &config,
        &[
            "queue",
            "enqueue",
            "batches",
            "--file",
            batches.to_str().unwrap(),
        ],
    );

    let mut child = command(&config, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while children(&config, "succeeded") < CHILDREN / 5 {
        assert!(Instant::now() < deadline, "the fan-out never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before = children(&config, "succeeded");
    assert!(done_before < CHILDREN, "killed midway: {done_before} done");

    std::thread::sleep(Duration::from_millis(1_100));
    run(&config, &[]);
    assert_eq!(
        children(&config, "succeeded"),
        CHILDREN,
        "every child completed"
    );
    assert_eq!(children(&config, "queued"), 0, "nothing left queued");
    let stats = run(&config, &["queue", "stats"]);
    for line in stats.lines() {
        assert!(
            line.contains("ready=0 in_flight=0 expired=0 dead=0"),
            "{stats}"
        );
    }

    let continuation = run(&config, &["get", "batch-1/split/then/sum", "--json"]);
    assert_eq!(
        continuation.lines().count(),
        1,
        "the continuation exists once: {continuation}"
    );
    let totals = std::fs::read_to_string(dir.path().join("out/totals.jsonl")).unwrap();
    let expected: u64 = (1..=CHILDREN as u64).map(|n| n * n).sum();
    let lines: Vec<serde_json::Value> = totals
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "the fan-in fired once: {totals}");
    assert_eq!(lines[0]["total"], expected);
    assert_eq!(lines[0]["succeeded"], CHILDREN);
}

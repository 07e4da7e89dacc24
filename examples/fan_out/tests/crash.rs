//! kill -9 in the middle of a fan-out of 10,000 children, on the embedded default: after
//! a restart every child has completed, the fan-in fired exactly once, its continuation
//! exists once in the journal, and nothing is left queued or leased.

use std::process::Stdio;
use std::time::{Duration, Instant};

use example_support::Example;

mod common;

const CHILDREN: usize = 10_000;

#[test]
fn a_fan_out_killed_midway_completes_after_a_restart_and_fans_in_once() {
    let example = Example::copy(
        env!("CARGO_BIN_EXE_fan_out"),
        env!("CARGO_MANIFEST_DIR"),
        &[],
    );
    let batch = format!("{{\"id\":\"batch-1\",\"items\":{CHILDREN}}}\n");
    std::fs::write(example.path("batches.jsonl"), batch).unwrap();
    example.enqueue("batches", "batches.jsonl");
    // Leases left by the killed process expire quickly.
    let leases =
        ["ITEMS", "BATCHES", "SUMS"].map(|c| (format!("ERGON__CONNECTORS__{c}__LEASE"), "1s"));

    let mut child = example
        .command(&[])
        .envs(leases.clone())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while common::journaled(&example, "succeeded", CHILDREN) < CHILDREN / 5 {
        assert!(Instant::now() < deadline, "the fan-out never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before = common::journaled(&example, "succeeded", CHILDREN);
    assert!(done_before < CHILDREN, "killed midway: {done_before} done");

    std::thread::sleep(Duration::from_millis(1_100));
    let rerun = example.command(&[]).envs(leases).output().unwrap();
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    common::every_child_once_and_one_fan_in(&example, CHILDREN);
    let stats = example.run(&["queue", "stats"]);
    for line in stats.lines() {
        assert!(
            line.contains("ready=0 in_flight=0 expired=0 dead=0"),
            "{stats}"
        );
    }
}

//! kill -9 in the middle of a tagged fan-in of 10,000 items, on the embedded default,
//! twice: after the restarts every item has completed once, `aggregate`'s 1,000 batches
//! each exist once in the journal and succeeded, `total` received one batch of all 1,000
//! sums and wrote one line with every square, and nothing is left queued or leased.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use example_support::Example;

mod common;

const ITEMS: u64 = 10_000;

/// The `lease` override of every local connector: a lease left by the killed process
/// expires quickly.
fn leases() -> [(String, &'static str); 4] {
    ["BATCHES", "ITEMS", "AGGREGATIONS", "TOTALS_IN"]
        .map(|c| (format!("ERGON__CONNECTORS__{c}__LEASE"), "1s"))
}

fn runner(example: &Example) -> Child {
    example
        .command(&[])
        .envs(leases())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills the runner with SIGKILL once `at` items succeeded, and checks it was midway.
fn kill_at(example: &Example, mut child: Child, at: usize) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while common::items_journaled(example, "succeeded", ITEMS) < at {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run never reached {at} items");
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the runner exited ({status}) before {at} items");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = common::items_journaled(example, "succeeded", ITEMS);
    assert!(done < ITEMS as usize, "killed midway: {done} done");
    // The killed process's leases expire.
    std::thread::sleep(Duration::from_millis(1_100));
}

#[test]
fn a_fan_in_killed_twice_midway_completes_after_restarts_and_cuts_each_batch_once() {
    let example = Example::copy(
        env!("CARGO_BIN_EXE_fan_in"),
        env!("CARGO_MANIFEST_DIR"),
        &[],
    );
    common::write_order(&example, ITEMS);
    example.enqueue("batches", "batches.jsonl");

    for at in [ITEMS / 5, ITEMS * 3 / 5] {
        kill_at(&example, runner(&example), usize::try_from(at).unwrap());
    }

    // Restarted until the total is written, or a run finds nothing left to do (one
    // restart should do).
    let mut restarts = 0;
    loop {
        let rerun = example.command(&[]).envs(leases()).output().unwrap();
        let summary = String::from_utf8_lossy(&rerun.stdout);
        assert!(
            rerun.status.success(),
            "{summary}\n{}",
            String::from_utf8_lossy(&rerun.stderr)
        );
        restarts += 1;
        let idle = summary
            .lines()
            .filter(|line| line.starts_with("task "))
            .all(|line| line.contains("processed=0 "));
        if idle || restarts == 3 || example.path("out/totals.jsonl").exists() {
            break;
        }
    }

    // 10,000 items make exactly 1,000 full batches, the last of which closes the group;
    // their 1,000 sums make one full batch for `total`, the last of its group too.
    common::every_item_once_and_one_total(&example, ITEMS, "full");
    let stats = example.run(&["queue", "stats"]);
    for line in stats.lines() {
        assert!(
            line.contains("ready=0 in_flight=0 expired=0 dead=0"),
            "{stats}"
        );
    }
}

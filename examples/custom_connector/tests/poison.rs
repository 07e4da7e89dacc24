//! A message that kills the process each time it is processed ends in the dead letters
//! after `max_deliveries` restarts, on the custom `spool` connector and on the local
//! queue: each run aborts (SIGABRT) when it reaches the poison message, the next run gets
//! it again with its delivery count raised, and the run that would deliver it for the
//! fourth time dead-letters it before any step runs and finishes cleanly.
//!
//! Both transports count a delivery when they hand a transaction out, and the engine
//! fetches ahead (one batch while the current one runs), so the message fetched behind
//! the poison one is handed out — and counted — by each aborting run too, without being
//! processed: it reaches `max_deliveries` with the poison one and is dead-lettered with
//! the same reason. The tests allow exactly that one bystander (`batch_size = 1`) and
//! require every other message to be processed.

mod common;

use std::path::Path;

use common::{deliveries_of, files, log, run_until_clean, succeed};

const MAX_DELIVERIES: u32 = 3;

/// `[tasks.consume]` reading `input`, one transaction at a time. A poison delivery waits
/// `abort_delay` before it kills the process, so that what runs beside it (the fetch of
/// the next batch, coalesced acks) has happened: the runs are the same every time.
fn task(root: &Path, input: &str, abort_delay: &str) -> String {
    format!(
        r#"
[tasks.consume]
type = "record"
input = "{input}"
settings = {{ log = "{root}/consume.log", abort_delay = "{abort_delay}" }}
policy.transaction.max_deliveries = {MAX_DELIVERIES}
policy.loop.concurrency = 1
policy.fetch.batch_size = 1
policy.fetch.empty.backoff = "20ms"
policy.fetch.empty.backoff_cap = "100ms"
"#,
        root = root.display()
    )
}

const GOOD: [&str; 4] = ["m-1", "m-2", "m-4", "m-5"];
const POISON: &str = "m-3";

/// The one message that may be fetched behind the poison one (see the module docs).
const BYSTANDER: &str = "m-4";

/// The poison message delivered exactly `1..=MAX_DELIVERIES` times, each delivery a run
/// that aborted; every good message processed at least once, but for the bystander,
/// which is either processed or was never run. Returns whether it ran.
fn assert_logged(root: &Path) -> bool {
    let logged = log(&root.join("consume.log"));
    for id in GOOD.iter().filter(|id| **id != BYSTANDER) {
        assert!(
            !deliveries_of(&logged, id).is_empty(),
            "{id} never processed: {logged:?}"
        );
    }
    assert_eq!(
        deliveries_of(&logged, POISON),
        (1..=MAX_DELIVERIES).collect::<Vec<_>>(),
        "{logged:?}"
    );
    !deliveries_of(&logged, BYSTANDER).is_empty()
}

/// The reason `transaction.max_deliveries` gives.
fn over_delivered(error: &serde_json::Value) -> bool {
    error.as_str().is_some_and(|error| {
        error.contains("delivered 4 times, more than transaction.max_deliveries = 3")
    })
}

#[test]
fn a_poison_file_is_dead_lettered_after_max_deliveries_restarts_on_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ready = root.join("spool/ready");
    std::fs::create_dir_all(&ready).unwrap();
    for id in GOOD {
        std::fs::write(ready.join(id), format!("{{\"id\":\"{id}\"}}")).unwrap();
    }
    std::fs::write(ready.join(POISON), r#"{"poison":true}"#).unwrap();
    let config = root.join("tasks.toml");
    std::fs::write(
        &config,
        format!(
            "[connectors.inbox]\ntype = \"spool\"\npath = \"spool\"\n{}",
            task(root, "inbox", "100ms")
        ),
    )
    .unwrap();

    let (aborts, stdout) = run_until_clean(&config, 10);

    assert_eq!(aborts, MAX_DELIVERIES as usize, "{stdout}");
    let bystander_ran = assert_logged(root);
    let spool = root.join("spool");
    let mut dead = vec![POISON];
    if !bystander_ran {
        dead.push(BYSTANDER);
    }
    let names: Vec<String> = dead.iter().map(|id| format!("{id}.failure.json")).collect();
    let mut expected: Vec<&str> = dead
        .iter()
        .copied()
        .chain(names.iter().map(String::as_str))
        .collect();
    expected.sort_unstable();
    assert_eq!(files(&spool.join("dead")), expected);
    for id in dead {
        let failure: serde_json::Value = serde_json::from_slice(
            &std::fs::read(spool.join(format!("dead/{id}.failure.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(failure["deliveries"], MAX_DELIVERIES + 1, "{failure}");
        assert!(over_delivered(&failure["error"]), "{failure}");
    }
    assert!(files(&spool.join("ready")).is_empty());
    assert!(files(&spool.join("processing")).is_empty());
}

#[test]
fn a_poison_message_is_dead_lettered_after_max_deliveries_restarts_on_the_local_queue() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The local queue counts a delivery when it leases the row; a row leased by a process
    // that died comes back when its lease runs out, hence the short lease. The abort waits
    // a little (as on the spool) so that the coalesced acks of the good messages before it
    // are written.
    let config = root.join("tasks.toml");
    std::fs::write(
        &config,
        format!(
            "[connectors.inbox]\ntype = \"local\"\npath = \"queue.db\"\nlease = \"300ms\"\n{}",
            task(root, "inbox", "100ms")
        ),
    )
    .unwrap();
    let lines: String = ["m-1", "m-2", POISON, "m-4", "m-5"]
        .iter()
        .map(|id| {
            if *id == POISON {
                format!("{{\"id\":\"{id}\",\"poison\":true}}\n")
            } else {
                format!("{{\"id\":\"{id}\"}}\n")
            }
        })
        .collect();
    let input = root.join("input.jsonl");
    std::fs::write(&input, lines).unwrap();
    succeed(
        &config,
        &[
            "queue",
            "enqueue",
            "inbox",
            "--file",
            input.to_str().unwrap(),
        ],
    );

    let (aborts, stdout) = run_until_clean(&config, 10);

    assert_eq!(aborts, MAX_DELIVERIES as usize, "{stdout}");
    let bystander_ran = assert_logged(root);
    let dead = succeed(&config, &["queue", "dead-letters", "inbox"]);
    let dead: Vec<serde_json::Value> = dead
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let ids: Vec<&str> = dead.iter().map(|d| d["id"].as_str().unwrap()).collect();
    if bystander_ran {
        assert_eq!(ids, [POISON]);
    } else {
        assert_eq!(ids, [POISON, BYSTANDER]);
    }
    for letter in &dead {
        assert_eq!(letter["deliveries"], MAX_DELIVERIES + 1, "{letter}");
        assert!(over_delivered(&letter["failure"]["error"]), "{letter}");
    }
    let stats = succeed(&config, &["queue", "stats", "inbox"]);
    assert!(
        stats.contains("ready=0") && stats.contains("in_flight=0"),
        "{stats}"
    );
}

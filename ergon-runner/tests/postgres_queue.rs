//! A `postgres` queue through the real `ergon-runner` binary: a file fed into the queue by
//! one run, drained into a file by another, `queue stats` and `validate --connect` on it;
//! two runners sharing the queue, one killed with SIGKILL, nothing lost.
//! Needs the local PostgreSQL (`ERGON_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

use common::{run_ok as run, runner};

fn url() -> String {
    std::env::var("ERGON_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The `queue stats` line of the queue.
fn stats(config: &Path) -> String {
    let out = run(config, &["queue", "stats", "pgq"]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A directory with `tasks.toml`: `feed` forwards `input.jsonl` into a postgres queue of
/// its own (lease `lease`), `drain` forwards the queue into `done.jsonl`. Returns the
/// directory, the config file and the queue's name.
fn setup(lease: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let queue = format!(
        "e2e-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_007
    );
    let config = dir.path().join("tasks.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[connectors.lines]
type = "file"
path = "input.jsonl"

[connectors.pgq]
type = "postgres"
url = "{url}"
schema = "ergon_test"
queue = "{queue}"
lease = "{lease}"

[connectors.done]
type = "file"
path = "done.jsonl"

[tasks.feed]
type = "forward"
input = "lines"
output = "pgq"

[tasks.drain]
type = "forward"
input = "pgq"
output = "done"

[tasks.drain.policy.loop]
concurrency = 16
"#,
            url = url()
        ),
    )
    .unwrap();
    (dir, config, queue)
}

/// `n` input lines `{"id":"o-<i>","amount":<i>.50}`.
fn input(dir: &Path, n: usize) -> Vec<String> {
    let lines: Vec<String> = (0..n)
        .map(|i| format!("{{\"id\":\"o-{i}\",\"amount\":{i}.50}}"))
        .collect();
    std::fs::write(dir.join("input.jsonl"), lines.join("\n") + "\n").unwrap();
    lines
}

/// How often each id is in `done.jsonl` (a line cut short by a kill is left out).
fn done(dir: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(dir.join("done.jsonl")).unwrap_or_default();
    let mut seen = BTreeMap::new();
    for line in text.lines() {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(line)
            && let Some(id) = value["id"].as_str()
        {
            *seen.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn a_file_goes_through_a_postgres_queue_into_a_file() {
    let (dir, config, queue) = setup("30s");
    let lines = input(dir.path(), 500);

    run(&config, &["validate", "--connect"]);
    run(&config, &["run", "feed"]);
    assert!(
        stats(&config).ends_with(&format!(
            "queue={queue} ready=500 in_flight=0 done=0 dead=0"
        )),
        "{}",
        stats(&config)
    );

    run(&config, &["run", "drain"]);
    let done = std::fs::read_to_string(dir.path().join("done.jsonl")).unwrap();
    let mut got: Vec<&str> = done.lines().collect();
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "every line once, byte for byte");
    assert!(
        stats(&config).ends_with(&format!("queue={queue} ready=0 in_flight=0 done=0 dead=0")),
        "{}",
        stats(&config)
    );
}

/// Two runners share the queue; one is killed with SIGKILL mid-run. Whatever it had
/// claimed comes back when its lease runs out: every row is processed, at least once.
#[test]
fn two_runners_share_a_queue_and_a_kill_loses_nothing() {
    const N: usize = 20_000;
    let (dir, config, queue) = setup("2s");
    input(dir.path(), N);
    run(&config, &["run", "feed"]);

    let spawn = || {
        runner(&config, &["run", "drain"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut victim, survivor) = (spawn(), spawn());
    let started = Instant::now();
    while done(dir.path()).len() < N / 5 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress before the kill"
        );
        assert!(
            victim.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    victim.kill().unwrap(); // SIGKILL: no drain, no flush of its acks
    victim.wait().unwrap();
    let out = survivor.wait_with_output().unwrap();
    assert!(out.status.success(), "the other runner finished cleanly");

    // What the killed runner had claimed is claimable again once its lease ran out.
    for _ in 0..20 {
        run(&config, &["run", "drain"]);
        if stats(&config).ends_with(&format!("queue={queue} ready=0 in_flight=0 done=0 dead=0")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        stats(&config).ends_with(&format!("queue={queue} ready=0 in_flight=0 done=0 dead=0")),
        "{}",
        stats(&config)
    );
    let seen = done(dir.path());
    let missing: Vec<String> = (0..N)
        .map(|i| format!("o-{i}"))
        .filter(|id| !seen.contains_key(id))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("kill test: {N} rows, every one processed; {duplicates} processed twice");
    assert!(
        duplicates <= 2_000,
        "{duplicates} duplicates: more than the killed runner can have had claimed"
    );
}

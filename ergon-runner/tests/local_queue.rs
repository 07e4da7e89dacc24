//! The local queue through the real `ergon-runner` binary: `queue` commands, two
//! processes sharing one queue, and a crash (kill -9) in the middle of a run with nothing
//! lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{run_ok as run, runner};

/// A directory with `tasks.toml`: `drain` forwards the local queue `inbox` (lease
/// `lease`) into `done.jsonl`.
fn setup(lease: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tasks.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[connectors.inbox]
type = "local"
path = "queue.db"
lease = "{lease}"

[connectors.done]
type = "file"
path = "done.jsonl"

[tasks.drain]
type = "forward"
input = "inbox"
output = "done"

[tasks.drain.policy.loop]
concurrency = 64
"#
        ),
    )
    .unwrap();
    (dir, config)
}

fn enqueue(dir: &Path, config: &Path, n: usize) {
    let lines: String = (0..n)
        .map(|i| format!("{{\"id\":\"o-{i}\",\"amount\":{i}}}\n"))
        .collect();
    let input = dir.join("input.jsonl");
    std::fs::write(&input, lines).unwrap();
    let out = run(
        config,
        &[
            "queue",
            "enqueue",
            "inbox",
            "--file",
            input.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("enqueued {n} transaction(s) into inbox")),
        "{stdout}"
    );
}

/// `(ready, in_flight, expired, dead)` from `queue stats`.
fn stats(config: &Path) -> (u64, u64, u64, u64) {
    let out = run(config, &["queue", "stats", "inbox"]);
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .parse()
            .unwrap()
    };
    (
        field("ready"),
        field("in_flight"),
        field("expired"),
        field("dead"),
    )
}

/// How often each id appears in `done.jsonl` (a line torn by the kill is skipped: its
/// transaction was not acked, so it comes again).
fn done(dir: &Path) -> (BTreeMap<String, usize>, usize) {
    let text = std::fs::read_to_string(dir.join("done.jsonl")).unwrap_or_default();
    let mut seen = BTreeMap::new();
    let mut torn = 0;
    for line in text.lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(value) => {
                *seen
                    .entry(value["id"].as_str().unwrap().to_owned())
                    .or_insert(0) += 1
            }
            Err(_) => torn += 1,
        }
    }
    (seen, torn)
}

#[test]
fn queue_commands_enqueue_show_and_requeue() {
    let (dir, config) = setup("30s");
    enqueue(dir.path(), &config, 3);
    assert_eq!(stats(&config), (3, 0, 0, 0));
    // With --strict, a bad line stops the command before anything is written, naming
    // the line; without, it is enqueued as it is and named.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\":\"x\"}\nnot json\n").unwrap();
    let out = runner(
        &config,
        &[
            "queue",
            "enqueue",
            "inbox",
            "--strict",
            "--file",
            bad.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.jsonl: line 2") && stderr.contains("nothing was enqueued"),
        "{stderr}"
    );
    assert_eq!(stats(&config), (3, 0, 0, 0));
    let out = run(
        &config,
        &["queue", "enqueue", "inbox", "--file", bad.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("enqueued 2 transaction(s)") && stdout.contains("bad.jsonl line(s) [2]"),
        "{stdout}"
    );
    assert_eq!(stats(&config), (5, 0, 0, 0));
    // stdin works too; `queue` refuses a connector that keeps no dead letters.
    let mut child = runner(&config, &["queue", "enqueue", "inbox"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"id\":\"s-1\"}\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(stats(&config).0, 6);
    let out = runner(&config, &["queue", "stats", "done"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("connectors.done.type"),
        "{out:?}"
    );
    // Without names, `stats` shows every connector that keeps dead letters, and only those.
    let out = run(&config, &["queue", "stats"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.starts_with("inbox ") && listed.contains("ready=6") && !listed.contains("done"),
        "{listed}"
    );
    let out = run(&config, &["queue", "dead-letters", "inbox"]);
    assert!(out.stdout.is_empty());
    let out = run(&config, &["queue", "requeue-dead", "inbox"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("requeued 0 dead letter(s)"));
}

#[test]
fn two_processes_share_one_queue_and_process_each_transaction_once() {
    let (dir, config) = setup("30s");
    enqueue(dir.path(), &config, 20_000);
    let children: Vec<Child> = (0..2)
        .map(|_| {
            runner(&config, &["run"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let summaries: Vec<String> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    let (seen, torn) = done(dir.path());
    assert_eq!(torn, 0);
    assert_eq!(seen.len(), 20_000, "every transaction processed");
    assert!(
        seen.values().all(|&n| n == 1),
        "none twice while its lease held"
    );
    for summary in &summaries {
        assert!(
            !summary.contains("processed=0 "),
            "both processes took a share: {summary}"
        );
    }
    assert_eq!(stats(&config), (0, 0, 0, 0));
}

#[test]
fn a_runner_killed_mid_run_loses_nothing() {
    const N: usize = 100_000;
    let (dir, config) = setup("2s");
    enqueue(dir.path(), &config, N);

    let mut child = runner(&config, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while done(dir.path()).0.len() < N / 5 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress before the kill"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no drain, no flush
    child.wait().unwrap();
    let at_kill = done(dir.path()).0.len();
    assert!(at_kill < N, "killed mid-run ({at_kill} done)");

    // Start again until the queue is empty: leases of the killed run expire after 2 s.
    for _ in 0..20 {
        run(&config, &["run"]);
        let (ready, in_flight, expired, dead) = stats(&config);
        if ready + in_flight + expired == 0 {
            assert_eq!(dead, 0);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(stats(&config), (0, 0, 0, 0), "the queue drained");
    let (seen, torn) = done(dir.path());
    let missing: Vec<String> = (0..N)
        .map(|i| format!("o-{i}"))
        .filter(|id| !seen.contains_key(id))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "crash test: {N} enqueued, {at_kill} done at the kill, every one processed; {duplicates} processed twice (in flight or not yet acked at the kill), {torn} torn line(s)"
    );
    assert!(
        duplicates <= 5_000,
        "{duplicates} duplicates: more than a lease's worth of in-flight work"
    );
}

#[test]
fn any_bytes_enqueued_come_back_exactly_from_dead_letters_and_their_requeue() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tasks.toml");
    // The output is a directory: every forward fails, once, and is dead-lettered.
    std::fs::create_dir(dir.path().join("blocked")).unwrap();
    std::fs::write(
        &config,
        r#"
[connectors.inbox]
type = "local"
path = "queue.db"

[connectors.blocked]
type = "file"
path = "blocked"

[tasks.drain]
type = "forward"
input = "inbox"
output = "blocked"

[tasks.drain.policy.success.retry]
max_attempts = 1
"#,
    )
    .unwrap();
    let lines: [&[u8]; 6] = [
        b"12\r34",
        b"a\0b",
        b"\xEF\xBB\xBF{\"n\":1}",
        b"\xff\xfe{}",
        b" {\"id\":\"spaced\", \"n\": 2} ",
        b"{\"id\":\"o-1\",\"n\":1.50}",
    ];
    let mut content = Vec::new();
    for line in lines {
        content.extend_from_slice(line);
        content.extend_from_slice(b"\r\n");
    }
    let input = dir.path().join("weird.jsonl");
    std::fs::write(&input, content).unwrap();
    let file = input.to_str().unwrap();

    // --strict refuses the file, naming the first line that is not JSON.
    let out = runner(
        &config,
        &["queue", "enqueue", "inbox", "--strict", "--file", file],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("weird.jsonl: line 1"), "{stderr}");
    // Without it, every line goes in as it is, invalid UTF-8 included.
    let out = run(&config, &["queue", "enqueue", "inbox", "--file", file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("enqueued 6 transaction(s)") && stdout.contains("line(s) [1, 2, 3, 4]"),
        "{stdout}"
    );

    run(&config, &[]);
    assert_eq!(stats(&config), (0, 0, 0, 6));
    let out = run(&config, &["queue", "dead-letters", "inbox"]);
    let listed = String::from_utf8(out.stdout).unwrap();
    let payloads: Vec<Vec<u8>> = listed
        .lines()
        .map(|line| ergon_connectors::jsonl::payload_of(line).unwrap())
        .collect();
    assert_eq!(payloads, lines, "{listed}");

    run(&config, &["queue", "requeue-dead", "inbox"]);
    let mut store = ergon_connectors::local::Store::open(&dir.path().join("queue.db")).unwrap();
    let requeued = store
        .lease("inbox", 100, Duration::from_secs(30), 1)
        .unwrap();
    let requeued: Vec<Vec<u8>> = requeued.into_iter().map(|row| row.payload).collect();
    assert_eq!(requeued, lines, "requeue-dead delivers the same bytes");
}

//! A `postgres` queue through the real `ergon-runner` binary: a file fed into the queue by
//! one run, drained into a file by another, `queue stats` and `validate --connect` on it.
//! Needs the local PostgreSQL (`ERGON_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`).

use std::path::Path;
use std::process::{Command, Output};

fn url() -> String {
    std::env::var("ERGON_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn run(config: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ergon-runner"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ergon-runner {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The `queue stats` line of the queue.
fn stats(config: &Path) -> String {
    let out = run(config, &["queue", "stats", "pgq"]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_file_goes_through_a_postgres_queue_into_a_file() {
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
    let lines: Vec<String> = (0..500)
        .map(|i| format!("{{\"id\":\"o-{i}\",\"amount\":{i}.50}}"))
        .collect();
    std::fs::write(dir.path().join("input.jsonl"), lines.join("\n") + "\n").unwrap();

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

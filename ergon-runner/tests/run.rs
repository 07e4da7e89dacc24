//! Running tasks through the stock `ergon-runner` binary: summaries, limits across workers,
//! signals with a graceful drain and their exit codes, and failing workers.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn write_lines(path: &Path, count: usize) {
    let mut file = std::fs::File::create(path).unwrap();
    for n in 0..count {
        writeln!(file, "{{\"n\":{n}}}").unwrap();
    }
}

fn setup(count: usize, extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write_lines(&dir.path().join("in.jsonl"), count);
    let config = dir.path().join("tasks.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[connectors.source]
type = "file"
path = "in.jsonl"

[connectors.sink]
type = "file"
path = "out/forwarded.jsonl"

[tasks.bridge]
type = "forward"
input = "source"
output = "sink"
{extra}
"#
        ),
    )
    .unwrap();
    (dir, config)
}

fn command(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ergon-runner"));
    command.arg("--config").arg(config).args(args);
    command
}

fn run(config: &Path, args: &[&str]) -> Output {
    command(config, args).output().unwrap()
}

fn forwarded(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("out/forwarded.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_finite_run_forwards_everything_and_summarizes() {
    let (dir, config) = setup(
        500,
        "workers = 2\n[tasks.bridge.policy.fetch]\nbatch_size = 7\n",
    );
    let out = run(&config, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("500 transactions"), "{stdout}");
    assert!(
        stdout.contains("task bridge: processed=500 succeeded=500 failed=0 business=0 system=0 timeout=0 retries=0 dispatched=0 dead_lettered=0"),
        "{stdout}"
    );
    assert!(stdout.contains("ended=exhausted,exhausted"), "{stdout}");
    let mut lines = forwarded(dir.path());
    lines.sort_by_key(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["n"].as_u64());
    let expected: Vec<String> = (0..500).map(|n| format!("{{\"n\":{n}}}")).collect();
    assert_eq!(lines, expected, "every line forwarded exactly once");
}

#[test]
fn the_limit_is_exact_across_workers() {
    let (dir, config) = setup(
        1000,
        "workers = 3\n[tasks.bridge.policy.loop]\nlimit = 101\n[tasks.bridge.policy.fetch]\nbatch_size = 10\n",
    );
    let out = run(&config, &["run", "bridge"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("processed=101 succeeded=101"), "{stdout}");
    assert_eq!(forwarded(dir.path()).len(), 101);
}

fn wait_for_lines(dir: &Path, count: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while forwarded(dir).len() < count {
        assert!(child.try_wait().unwrap().is_none(), "runner exited early");
        assert!(
            Instant::now() < deadline,
            "runner did not forward {count} lines in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal_drains_and_exits_with(signal: &str, code: i32) {
    let (dir, config) = setup(50, "[tasks.bridge.policy.loop]\nstreaming = true\n");
    let mut child = command(&config, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lines(dir.path(), 50, &mut child);
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stdout}{stderr}");
    assert!(stderr.contains("Shutdown requested; draining"), "{stderr}");
    assert!(stdout.contains("processed=50 succeeded=50"), "{stdout}");
    assert!(stdout.contains("ended=shutdown"), "{stdout}");
    assert_eq!(forwarded(dir.path()).len(), 50);
}

#[test]
fn sigterm_drains_then_exits_143() {
    signal_drains_and_exits_with("-TERM", 143);
}

#[test]
fn sigint_drains_then_exits_130() {
    signal_drains_and_exits_with("-INT", 130);
}

#[test]
fn a_worker_that_cannot_read_its_input_fails_the_run() {
    let (dir, config) = setup(0, "");
    std::fs::remove_file(dir.path().join("in.jsonl")).unwrap();
    let out = run(&config, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("ended=failed ("), "{stdout}");
    assert!(
        stdout.contains("in.jsonl"),
        "the missing file is named: {stdout}"
    );
}

#[test]
fn list_without_a_config_shows_what_the_binary_offers() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(&dir.path().join("absent.toml"), &["list"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("forward              role=consumer model=async"),
        "{stdout}"
    );
    // The kinds this build's features compiled in, in name order.
    let built = |kinds: &[(&str, bool)]| {
        let names: Vec<&str> = kinds
            .iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect();
        names.join(", ")
    };
    let connectors = built(&[
        ("file", cfg!(feature = "file")),
        ("http", cfg!(feature = "http-connector")),
        ("local", cfg!(feature = "local")),
        ("memory", cfg!(feature = "memory")),
        ("postgres", cfg!(feature = "postgres")),
        ("rabbitmq", cfg!(feature = "rabbitmq")),
        ("redis_streams", cfg!(feature = "redis-streams")),
    ]);
    let services = built(&[
        ("http", cfg!(feature = "http")),
        ("llm", cfg!(feature = "llm")),
        ("memory_kv", cfg!(feature = "memory-kv")),
        ("postgres", cfg!(feature = "postgres")),
    ]);
    assert!(
        stdout.contains(&format!("connector types: {connectors}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("service types: {services}\n")),
        "{stdout}"
    );
}

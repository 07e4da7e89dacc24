//! Running the example's binary: every test goes through it, as a user's would.

#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest a single run may take before the test calls it a hang.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The binary with `--config config` and `args`.
pub fn binary(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_custom_connector"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn");
    command
}

/// Runs to the end within [`RUN_TIMEOUT`] (killed and failed otherwise).
pub fn run_bounded(config: &Path, args: &[&str]) -> Output {
    let mut child = binary(config, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > RUN_TIMEOUT {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{args:?} hung for {RUN_TIMEOUT:?}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Runs and requires exit 0; returns stdout.
pub fn succeed(config: &Path, args: &[&str]) -> String {
    let out = run_bounded(config, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Whether the process died of `SIGABRT` (what `std::process::abort` raises).
pub fn aborted(status: ExitStatus) -> bool {
    status.signal() == Some(6)
}

/// Runs `run` until a run exits 0; every other run must have aborted. Returns how many
/// aborted (at most `max_aborts`, else the test fails) and the clean run's stdout.
pub fn run_until_clean(config: &Path, max_aborts: usize) -> (usize, String) {
    let mut aborts = 0;
    loop {
        let out = run_bounded(config, &["run"]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.code() == Some(0) {
            return (aborts, stdout);
        }
        assert!(
            aborted(out.status),
            "run {} neither aborted nor succeeded: {:?}\n{stdout}\n{}",
            aborts + 1,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        aborts += 1;
        assert!(aborts <= max_aborts, "still aborting after {aborts} runs");
    }
}

/// The record task's log: `(id, deliveries, payload)` per delivery, in order.
pub fn log(path: &Path) -> Vec<(String, u32, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["deliveries"].as_u64().unwrap() as u32,
                v["payload"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The delivery counts the log shows for `id`, in order.
pub fn deliveries_of(log: &[(String, u32, String)], id: &str) -> Vec<u32> {
    log.iter()
        .filter(|(logged, ..)| logged == id)
        .map(|(_, n, _)| *n)
        .collect()
}

/// `name=value` from a summary line.
pub fn field(summary: &str, task: &str, name: &str) -> u64 {
    let line = summary
        .lines()
        .find(|line| line.starts_with(&format!("task {task}:")))
        .unwrap_or_else(|| panic!("no summary of {task} in {summary}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        .parse()
        .unwrap()
}

/// The file names in `dir`, sorted (none when it does not exist).
pub fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

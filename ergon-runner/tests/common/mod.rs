//! What the runner's integration tests share: running the real `ergon-runner` binary.

use std::path::Path;
use std::process::{Command, Output};

/// `ergon-runner --config CONFIG ARGS…`, not started yet.
pub fn runner(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ergon-runner"));
    command.arg("--config").arg(config).args(args);
    command
}

/// Runs `ergon-runner --config CONFIG ARGS…` to the end and asserts that it succeeded,
/// showing what it printed when it did not.
pub fn run_ok(config: &Path, args: &[&str]) -> Output {
    let out = runner(config, args).output().unwrap();
    assert!(
        out.status.success(),
        "ergon-runner {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

//! A deployment of the suite's runner: a temporary directory holding the generated
//! `tasks.toml` (relative paths in it resolve there), and the runner's commands on it.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::Suite;
use super::error::{Error, Result};
use super::process::RunnerProcess;

/// How long an administrative command (`queue enqueue`, `queue stats`, ...) may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(300);

/// A temporary directory with `tasks.toml`, removed when dropped, and the runner binary
/// that runs on it.
#[derive(Debug)]
pub struct Deployment {
    dir: tempfile::TempDir,
    binary: PathBuf,
    envs: Vec<(String, String)>,
    started: Cell<usize>,
}

impl Deployment {
    /// Writes `toml` as `tasks.toml` in a new temporary directory.
    ///
    /// # Errors
    ///
    /// The directory or the file cannot be created.
    pub fn new(suite: &Suite, toml: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ergon-faults-")
            .tempdir()
            .map_err(Error::io("creating a temporary directory"))?;
        let deployment = Self {
            dir,
            binary: suite.runner.clone(),
            envs: Vec::new(),
            started: Cell::new(0),
        };
        deployment.write("tasks.toml", toml)?;
        Ok(deployment)
    }

    /// Sets `key` to `value` in the environment of every command (e.g. `RUST_LOG`).
    #[must_use]
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.envs.push((key.to_owned(), value.into()));
        self
    }

    /// `relative` inside the deployment's directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `contents` to `relative` inside the directory.
    ///
    /// # Errors
    ///
    /// The file cannot be written.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> Result<()> {
        let path = self.path(relative);
        std::fs::write(&path, contents).map_err(Error::io(format!("writing {}", path.display())))
    }

    /// The runner with `--config <dir>/tasks.toml` and `args`, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--config")
            .arg(self.path("tasks.toml"))
            .args(args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Starts the runner with `args`; its stdout and stderr go to `process-N.out` and
    /// `process-N.err` in the directory.
    ///
    /// # Errors
    ///
    /// It cannot be started.
    pub fn spawn(&self, args: &[&str]) -> Result<RunnerProcess> {
        let n = self.started.get() + 1;
        self.started.set(n);
        RunnerProcess::start(
            self.command(args),
            format!("ergon-faults-runner {}", args.join(" ")),
            self.path(&format!("process-{n}.out")),
            self.path(&format!("process-{n}.err")),
        )
    }

    /// Runs the runner with `args` to its end (at most `limit`), expecting exit code 0,
    /// and returns its stdout.
    ///
    /// # Errors
    ///
    /// Another exit code, or a hang.
    pub fn run(&self, args: &[&str], limit: Duration) -> Result<String> {
        self.spawn(args)?.expect_exit(limit, 0)
    }

    /// The numeric fields of `queue stats CONNECTOR` (`ready`, `in_flight`, `dead`, ...,
    /// in the transport's terms).
    ///
    /// # Errors
    ///
    /// The command failed.
    pub fn stats(&self, connector: &str) -> Result<BTreeMap<String, u64>> {
        let line = self.run(&["queue", "stats", connector], COMMAND_LIMIT)?;
        Ok(line
            .split_whitespace()
            .filter_map(|field| field.split_once('='))
            .filter_map(|(key, value)| Some((key.to_owned(), value.parse().ok()?)))
            .collect())
    }

    /// Enqueues the lines of `file` (in the directory) into the local queue `connector`
    /// with `queue enqueue`, byte for byte.
    ///
    /// # Errors
    ///
    /// The command failed.
    pub fn enqueue(&self, connector: &str, file: &str) -> Result<()> {
        let path = self.path(file);
        let path = path
            .to_str()
            .ok_or_else(|| Error::Output(format!("{} is not UTF-8", path.display())))?;
        self.run(
            &["queue", "enqueue", connector, "--file", path],
            COMMAND_LIMIT,
        )
        .map(drop)
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

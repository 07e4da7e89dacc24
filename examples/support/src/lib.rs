//! What the examples' end-to-end tests share: a copy of an example's files in a temporary
//! directory, and the example's binary run on that copy's `tasks.toml`, as a user would.
//!
//! ```no_run
//! use example_support::Example;
//!
//! // In a test: `Example::copy(env!("CARGO_BIN_EXE_fan_out"), env!("CARGO_MANIFEST_DIR"), …)`.
//! let example = Example::copy("target/debug/fan_out", "examples/fan_out", &["batches.jsonl"]);
//! example.enqueue("batches", "batches.jsonl");
//! let summary = example.run(&[]);
//! assert!(summary.contains("task sum: processed=1"));
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

/// An example's files copied to a temporary directory (removed when dropped), and its
/// binary.
pub struct Example {
    binary: PathBuf,
    dir: tempfile::TempDir,
    /// Set in every command's environment (config overrides: `ERGON__…`).
    envs: Vec<(String, String)>,
}

impl Example {
    /// Copies `tasks.toml` and `files` from the example's directory (`manifest_dir`) into a
    /// new temporary directory; `binary` is the example's executable.
    ///
    /// # Panics
    ///
    /// A file cannot be copied.
    pub fn copy(binary: &str, manifest_dir: &str, files: &[&str]) -> Self {
        Self::copy_config(binary, manifest_dir, "tasks.toml", files)
    }

    /// [`Example::copy`] with the example's config file `config` (another deployment of
    /// the same tasks) copied as `tasks.toml`.
    ///
    /// # Panics
    ///
    /// A file cannot be copied.
    pub fn copy_config(binary: &str, manifest_dir: &str, config: &str, files: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let copies = std::iter::once((config, "tasks.toml")).chain(files.iter().map(|f| (*f, *f)));
        for (file, to) in copies {
            let from = Path::new(manifest_dir).join(file);
            std::fs::copy(&from, dir.path().join(to))
                .unwrap_or_else(|err| panic!("copying {}: {err}", from.display()));
        }
        Self {
            binary: binary.into(),
            dir,
            envs: Vec::new(),
        }
    }

    /// Sets `key` to `value` in the environment of every command (a config override such
    /// as `ERGON__JOURNAL__SCHEMA`).
    #[must_use]
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.envs.push((key.to_owned(), value.into()));
        self
    }

    /// `relative` inside the copy.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The binary with `--config <copy>/tasks.toml` and `args`, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--config")
            .arg(self.path("tasks.toml"))
            .args(args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs the binary with `args` to its end and returns its stdout.
    ///
    /// # Panics
    ///
    /// It exits with another code than 0 (stdout and stderr are in the message).
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("running the example");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?} exited with {}: {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Enqueues the JSON lines of `file` (in the copy) into the local queue `connector`.
    pub fn enqueue(&self, connector: &str, file: &str) {
        let file = self.path(file);
        let file = file.to_str().expect("a UTF-8 path");
        self.run(&["queue", "enqueue", connector, "--file", file]);
    }

    /// How many children of `parent` in `task` the journal holds with `status` (`list
    /// --parent PARENT --status STATUS`, up to `limit`).
    pub fn children(&self, parent: &str, task: &str, status: &str, limit: usize) -> usize {
        let limit = limit.to_string();
        let args = [
            "list", "--parent", parent, "--status", status, "--limit", &limit,
        ];
        let in_task = format!(" [{task}] ");
        let listed = self.run(&args);
        listed.lines().filter(|l| l.contains(&in_task)).count()
    }

    /// The JSON lines of `file` (in the copy).
    ///
    /// # Panics
    ///
    /// The file cannot be read or a line is not JSON.
    pub fn json_lines(&self, file: &str) -> Vec<serde_json::Value> {
        let path = self.path(file);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }
}

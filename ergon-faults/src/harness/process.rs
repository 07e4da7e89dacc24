//! A runner process the scenario controls: started with its output in files, killed with
//! SIGKILL or signalled with SIGTERM / SIGINT, awaited with a deadline.

use std::fs::File;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::error::{Error, Result};

/// A signal the suite sends to a runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: drain, then exit 143.
    Term,
    /// SIGINT: drain, then exit 130.
    Int,
}

impl Signal {
    /// The name `kill` takes (`TERM`, `INT`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Term => "TERM",
            Self::Int => "INT",
        }
    }

    /// The exit code the runner documents after this signal, once drained.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Term => 143,
            Self::Int => 130,
        }
    }
}

/// How a runner process ended.
#[derive(Clone, Copy, Debug)]
pub struct Exit(ExitStatus);

impl Exit {
    /// Its exit code (`None` when a signal ended it).
    pub fn code(self) -> Option<i32> {
        self.0.code()
    }

    /// `code N` or `signal N`, for reports and errors.
    pub fn describe(self) -> String {
        match (self.0.code(), self.0.signal()) {
            (Some(code), _) => format!("code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "an unknown status".to_owned(),
        }
    }
}

/// A running `ergon-faults-runner`; stdout and stderr go to files beside its config.
/// Dropped while still running, it is killed (a failed scenario leaves no process behind).
#[derive(Debug)]
pub struct RunnerProcess {
    child: Child,
    what: String,
    stdout: PathBuf,
    stderr: PathBuf,
    exit: Option<Exit>,
}

impl RunnerProcess {
    /// Starts `command`; `what` names it in errors, `stdout` / `stderr` receive its output.
    ///
    /// # Errors
    ///
    /// The files cannot be created or the binary cannot be started.
    pub fn start(
        mut command: Command,
        what: String,
        stdout: PathBuf,
        stderr: PathBuf,
    ) -> Result<Self> {
        let create = |path: &PathBuf| {
            File::create(path).map_err(Error::io(format!("creating {}", path.display())))
        };
        command
            .stdin(Stdio::null())
            .stdout(create(&stdout)?)
            .stderr(create(&stderr)?);
        let child = command
            .spawn()
            .map_err(Error::io(format!("starting {what}")))?;
        Ok(Self {
            child,
            what,
            stdout,
            stderr,
            exit: None,
        })
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL (no drain, no flush) and reaps it.
    ///
    /// # Errors
    ///
    /// It had already exited (the kill would have been no fault at all), or the kill
    /// failed.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(exit) = self.exited()? {
            return Err(Error::Output(format!(
                "{} ended ({}) before it could be killed: {}",
                self.what,
                exit.describe(),
                self.stderr_tail()
            )));
        }
        self.child
            .kill()
            .map_err(Error::io(format!("killing {}", self.what)))?;
        let status = self
            .child
            .wait()
            .map_err(Error::io(format!("reaping {}", self.what)))?;
        self.exit = Some(Exit(status));
        Ok(())
    }

    /// Sends `signal` (with `kill -SIG PID`: the suite forbids `unsafe`, so no `libc`).
    ///
    /// # Errors
    ///
    /// `kill` cannot run or fails.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{}", signal.name()))
            .arg(self.id().to_string())
            .status()
            .map_err(Error::io("running kill"))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Output(format!(
                "kill -{} {} failed ({status})",
                signal.name(),
                self.id()
            )))
        }
    }

    /// How it ended, or `None` while it runs.
    ///
    /// # Errors
    ///
    /// Its status cannot be read.
    pub fn exited(&mut self) -> Result<Option<Exit>> {
        if self.exit.is_none() {
            let status = self
                .child
                .try_wait()
                .map_err(Error::io(format!("waiting for {}", self.what)))?;
            self.exit = status.map(Exit);
        }
        Ok(self.exit)
    }

    /// Waits for it to end, for at most `limit`; past it the process is killed and the
    /// wait is a hang.
    ///
    /// # Errors
    ///
    /// [`Error::Hang`] past `limit`.
    pub fn wait(&mut self, limit: Duration) -> Result<Exit> {
        let started = Instant::now();
        loop {
            if let Some(exit) = self.exited()? {
                return Ok(exit);
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(Error::Hang {
                    what: format!(
                        "the end of {} (stderr ends: {})",
                        self.what,
                        self.stderr_tail()
                    ),
                    waited: limit,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for it to end (at most `limit`) with exit code `code`, and returns its stdout.
    ///
    /// # Errors
    ///
    /// A hang, or another exit ([`Error::Exit`], with the end of its stderr).
    pub fn expect_exit(&mut self, limit: Duration, code: i32) -> Result<String> {
        let exit = self.wait(limit)?;
        if exit.code() == Some(code) {
            Ok(self.stdout())
        } else {
            Err(Error::Exit {
                what: self.what.clone(),
                got: exit.describe(),
                expected: format!("code {code}"),
                stderr: self.stderr_tail(),
            })
        }
    }

    /// What it printed on stdout so far (the run summary once it ended).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Everything it wrote on stderr so far (its logs: e.g. the health endpoint's address).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The last lines of its stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

//! What every scenario uses: the runner binary and profile of this run of the suite
//! ([`Suite`]), deployments of the runner on generated configs and the processes started
//! on them (kill -9, SIGTERM / SIGINT, waits with deadlines), the input connectors fed
//! with numbered ids, the ids counted at the output, and the [`Report`] line.
//!
//! A typical scenario:
//!
//! ```no_run
//! use ergon_faults::harness::{Input, Pipeline, Queue, Report, Suite, Tuning, ids};
//!
//! # fn scenario(suite: &Suite) -> ergon_faults::harness::Result<Report> {
//! let pipeline = Pipeline::new(suite, Queue::new(Input::Local, "example"), Tuning::default())?;
//! let sent = ids::numbered("o", 1_000);
//! pipeline.feed(&ids::json_lines(&sent))?;
//! pipeline.drain()?.expect_exit(std::time::Duration::from_secs(60), 0)?;
//! Ok(Report::new("example").tally(&pipeline.tally(&sent)?, 0))
//! # }
//! ```

pub mod dead_letters;
mod deployment;
mod error;
pub mod ids;
pub mod inputs;
mod kills;
mod pipeline;
mod process;
mod report;
pub mod wait;

use std::path::PathBuf;

pub use deployment::Deployment;
pub use error::{Error, Result};
pub use ids::Tally;
pub(crate) use inputs::tool;
pub use inputs::{Input, Queue};
pub use kills::{Kills, kill_at_marks};
pub use pipeline::{INBOX, Pipeline, Tuning};
pub use process::{Exit, RunnerProcess, Signal};
pub use report::Report;

use crate::Profile;

/// This run of the suite: the runner binary scenarios deploy, and the profile.
#[derive(Clone, Debug)]
pub struct Suite {
    /// The `ergon-faults-runner` executable.
    pub runner: PathBuf,
    /// Short (CI) or full (release checks).
    pub profile: Profile,
}

impl Suite {
    /// The suite with the `ergon-faults-runner` built beside the current executable (in
    /// the same target directory as `ergon-faults`, or one level up from a test binary
    /// in `deps/`), or named by `ERGON_FAULTS_RUNNER`.
    ///
    /// # Errors
    ///
    /// No runner binary was found (build it: `cargo build -p ergon-faults`).
    pub fn locate(profile: Profile) -> Result<Self> {
        if let Some(runner) = std::env::var_os("ERGON_FAULTS_RUNNER") {
            return Ok(Self {
                runner: runner.into(),
                profile,
            });
        }
        let exe = std::env::current_exe().map_err(Error::io("finding the current executable"))?;
        let name = format!("ergon-faults-runner{}", std::env::consts::EXE_SUFFIX);
        exe.ancestors()
            .skip(1)
            .take(2)
            .map(|dir| dir.join(&name))
            .find(|candidate| candidate.is_file())
            .map(|runner| Self { runner, profile })
            .ok_or_else(|| {
                Error::Output(format!(
                    "no {name} beside {} (build it with `cargo build -p ergon-faults`, or set ERGON_FAULTS_RUNNER)",
                    exe.display()
                ))
            })
    }
}

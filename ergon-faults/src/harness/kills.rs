//! kill -9 under load: a runner killed each time the output reaches a mark, restarted at
//! once, and how long the output took to move again.

use std::time::{Duration, Instant};

use super::error::Result;
use super::process::RunnerProcess;
use super::wait;

/// What [`kill_at_marks`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kills {
    /// Runners killed with SIGKILL.
    pub kills: usize,
    /// Runners started again after a kill.
    pub restarts: usize,
    /// The longest time from a kill to the restarted runner's first new output.
    pub recovery: Duration,
}

/// Starts a runner with `start`, kills it with SIGKILL each time `progress` (the distinct
/// ids at the output) reaches one of `marks` (ascending), and starts another at once.
/// Returns the last runner, still running, and what was done. `limit` bounds each wait.
///
/// # Errors
///
/// A runner ended before its kill (the run was too short to be faulted), a mark or the
/// output's next move did not come within `limit` (a hang), or a runner could not start.
pub fn kill_at_marks(
    marks: &[usize],
    limit: Duration,
    start: impl Fn() -> Result<RunnerProcess>,
    progress: impl Fn() -> Result<usize>,
) -> Result<(RunnerProcess, Kills)> {
    let mut runner = start()?;
    let mut done = Kills::default();
    for &mark in marks {
        wait::until(
            &format!("{mark} ids at the output before a kill"),
            limit,
            || Ok((progress()? >= mark).then_some(())),
        )?;
        runner.kill9()?;
        done.kills += 1;
        let killed = Instant::now();
        let at_kill = progress()?;
        runner = start()?;
        done.restarts += 1;
        wait::until("the output moving again after a kill", limit, || {
            if progress()? > at_kill {
                return Ok(Some(()));
            }
            // A runner that has nothing left to do (everything was out before the kill)
            // ends without new output: that is a recovery too.
            Ok(runner.exited()?.map(drop))
        })?;
        done.recovery = done.recovery.max(killed.elapsed());
    }
    Ok((runner, done))
}

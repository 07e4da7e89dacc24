//! `run [NAME...]` (and the default command): run tasks until they end, then summarize.

use crate::config::ConfigError;
use crate::manager::TaskManager;
use crate::plan::Plan;
use crate::report::summary;

/// Runs the selected tasks and prints the summary; returns the exit code.
pub async fn run(plan: &Plan, names: &[String]) -> Result<u8, ConfigError> {
    let tasks = plan.select(names)?;
    let report = TaskManager::new(tasks).run().await;
    print!("{}", summary::render(&report));
    Ok(report.exit_code())
}

//! # ergon-runner
//!
//! The TaskManager and the CLI of ergon, as a library and as the `ergon-runner` binary.
//!
//! ```text
//! tasks.toml ──config::load──▶ FileConfig ──Plan::build(registry)──▶ Plan
//!      (TOML + ERGON__… env + ${VAR})        (kinds, references, policies checked)
//! Plan ──TaskManager::run──▶ per task × workers: connect ▶ Context ▶ ConsumeLoop
//!      ──▶ RunReport ──▶ summary, exit code (0 done, 1 a task failed, 2 config, 130/143 signal)
//! ```
//!
//! * [`config`]: loading the file, overrides and interpolation, [`ConfigError`].
//! * [`Registry`]: what this binary can run; [`plan`]: the file checked against it.
//! * [`manager`]: the [`TaskManager`], signals and drains; [`report`]: progress, summary.
//! * [`journal`] (feature `journal`): `[journal]`, the durable record of completions;
//!   [`workflows`]: `[workflows.NAME]`, DAG runs started by a connector;
//!   [`run_events`] (feature `run-events`): `[journal.events]`, their progress on Redis.
//! * [`commands`]: `run`, `validate`, `list`, `process`, `queue`, `get`, `trace`, `runs`,
//!   `journal`.
//!
//! A user crate gets the whole CLI with its own tasks from one call:
//!
//! ```no_run
//! # use ergon_core::{Consumer, Context, TaskError, Transaction};
//! # struct MyTask;
//! # impl Consumer for MyTask {
//! #     type Output = ();
//! #     async fn process_transaction(&self, _: &Context, _: &Transaction) -> Result<(), TaskError> { Ok(()) }
//! # }
//! fn main() -> std::process::ExitCode {
//!     ergon_runner::run(ergon_runner::Registry::with_builtins().consumer("my_task", |_cx| Ok(MyTask)))
//! }
//! ```

pub mod builtin;
mod cli;
pub mod commands;
pub mod config;
#[cfg(feature = "journal")]
pub mod journal;
mod launch;
pub mod manager;
pub mod plan;
pub mod registry;
pub mod report;
#[cfg(feature = "run-events")]
pub mod run_events;
pub mod services;
pub mod signal;
pub mod telemetry;
#[cfg(feature = "journal")]
pub mod workflows;

pub use cli::{EXIT_CONFIG, run};
pub use config::ConfigError;
pub use launch::{Model, Role};
pub use manager::{RunReport, TaskManager};
pub use registry::Registry;

//! The command line: `ergon-runner [--config FILE] [run [NAME...] | validate [--connect] | list |
//! process | queue]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;
use crate::config::{self, ConfigError};
use crate::plan::Plan;
use crate::registry::Registry;
use crate::telemetry::Telemetry;

/// Exit code of a config error (also clap's for bad arguments).
pub const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "ergon-runner",
    version,
    about = "Runs ergon tasks declared in a TOML file"
)]
struct Cli {
    /// The tasks file.
    #[arg(long, short, global = true, default_value = "tasks.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the named tasks, or every task when none is named (the default command).
    Run {
        /// Task names (`[tasks.NAME]`).
        names: Vec<String>,
    },
    /// Check the file against this binary and exit.
    Validate {
        /// Also open every connector and build every service of the file, check their
        /// health and close them: exit 0 when all are reachable, 1 when one is not.
        #[arg(long)]
        connect: bool,
    },
    /// List the file's tasks and the task implementations, connector and service types of
    /// this binary.
    List,
    /// Feed and inspect the local queues (`type = "local"`) of the file.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Run one transaction through a task's whole lifecycle and print every step.
    Process {
        /// The task name (`[tasks.NAME]`).
        name: String,
        /// The transaction payload (JSON).
        #[arg(long)]
        payload: String,
        /// The transaction id.
        #[arg(long, default_value = "cli-1")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum QueueAction {
    /// Enqueue lines, byte for byte, from a file or stdin (a JSON line's `id` field is its
    /// id).
    Enqueue {
        /// The connector (`[connectors.NAME]`, `type = "local"`).
        connector: String,
        /// The JSON lines file; stdin when absent or `-`.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Refuse the whole input when a line is not JSON (default: enqueue it as it is,
        /// for the task to reject and dead-letter).
        #[arg(long)]
        strict: bool,
    },
    /// Show ready, in-flight, expired and dead transactions per local queue.
    Stats {
        /// Connectors; every local one when none is named.
        connectors: Vec<String>,
    },
    /// List dead letters with their failure, one JSON object per line.
    DeadLetters {
        /// The connector.
        connector: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Put every dead letter back at the end of its queue.
    RequeueDead {
        /// The connector.
        connector: String,
    },
}

/// Parses the arguments, runs the command with `registry`, and returns the exit code.
///
/// This is the whole `ergon-runner` CLI: call it from your own `main` with your task
/// implementations registered.
pub fn run(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ergon-runner: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(execute(cli, &registry));
    // Workers cut off by a drain timeout may leave blocked tasks behind: do not wait.
    runtime.shutdown_background();
    ExitCode::from(code)
}

async fn execute(cli: Cli, registry: &Registry) -> u8 {
    let command = cli.command.unwrap_or(Command::Run { names: Vec::new() });
    // `run` installs the telemetry its config asks for; the other commands log only.
    if !matches!(command, Command::Run { .. }) {
        Telemetry::install_logs();
    }
    let result = match command {
        Command::List => {
            let plan = if cli.config.exists() {
                match load(&cli.config, registry) {
                    Ok(plan) => Some(plan),
                    Err(err) => return config_error(&err),
                }
            } else {
                None
            };
            print!("{}", commands::list::render(plan.as_ref(), registry));
            Ok(0)
        }
        Command::Validate { connect } => match load(&cli.config, registry) {
            Ok(plan) if connect => {
                let (out, code) = commands::validate::connect(&plan).await;
                print!("{out}");
                Ok(code)
            }
            Ok(plan) => {
                print!("{}", commands::validate::render(&plan));
                Ok(0)
            }
            Err(err) => Err(err),
        },
        Command::Run { names } => match load(&cli.config, registry) {
            Ok(plan) => commands::run::run(&plan, &names, &|name| std::env::var(name).ok()).await,
            Err(err) => Err(err),
        },
        Command::Queue { action } => queue(&cli.config, action),
        Command::Process { name, payload, id } => match load(&cli.config, registry) {
            Ok(plan) => commands::process::run(&plan, &name, &id, &payload).await,
            Err(err) => Err(err),
        },
    };
    result.unwrap_or_else(|err| config_error(&err))
}

#[cfg(feature = "local")]
fn queue(file: &std::path::Path, action: QueueAction) -> Result<u8, ConfigError> {
    let loaded = config::load(file)?;
    let out = match action {
        QueueAction::Enqueue {
            connector,
            file,
            strict,
        } => commands::queue::enqueue(&loaded, &connector, file.as_deref(), strict)?,
        QueueAction::Stats { connectors } => commands::queue::stats(&loaded, &connectors)?,
        QueueAction::DeadLetters { connector, limit } => {
            commands::queue::dead_letters(&loaded, &connector, limit)?
        }
        QueueAction::RequeueDead { connector } => {
            commands::queue::requeue_dead(&loaded, &connector)?
        }
    };
    print!("{out}");
    Ok(0)
}

/// Without the `local` feature there are no local queues to work on.
#[cfg(not(feature = "local"))]
fn queue(file: &std::path::Path, _action: QueueAction) -> Result<u8, ConfigError> {
    Err(ConfigError::new(
        file,
        "connectors",
        "the `queue` command works on local queues (`type = \"local\"`), and this binary \
         was built without ergon-runner's `local` feature",
    ))
}

fn load(file: &std::path::Path, registry: &Registry) -> Result<Plan, ConfigError> {
    Plan::build(&config::load(file)?, registry)
}

fn config_error(err: &ConfigError) -> u8 {
    eprintln!("ergon-runner: config error: {err}");
    EXIT_CONFIG
}

//! The command line: `ergon-runner [--config FILE] [run [NAME...] | validate [--connect] | list |
//! process | queue | get | trace | runs | journal]`.

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
    /// this binary; with `--parent` or `--root`, list journaled transactions instead.
    List {
        #[command(flatten)]
        nodes: ListNodes,
    },
    #[cfg(feature = "journal")]
    /// Show a journaled transaction: lineage, status, settlement, attempts, deliveries,
    /// error (exit 1 when the journal does not know it).
    Get {
        /// The transaction id.
        id: String,
        /// One JSON object per line (one per task it completed in).
        #[arg(long)]
        json: bool,
    },
    #[cfg(feature = "journal")]
    /// Draw the lineage tree of a journaled transaction, from its root; for a DAG run's id,
    /// the run's nodes in dependency order first.
    Trace {
        /// The transaction id (any in the lineage), or a run id.
        id: String,
        /// `tree` (large fan-outs folded) or `json` (nothing folded; a run's detail with
        /// its lineage under `lineage`).
        #[arg(long, value_enum, default_value = "tree")]
        format: commands::trace::TraceFormat,
    },
    #[cfg(feature = "journal")]
    /// List the DAG runs, newest first, with their progress.
    Runs {
        /// Only the runs in this status.
        #[arg(long, value_parser = commands::runs::STATUSES)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// `text` (one line per run) or `json` (an array of run summaries).
        #[arg(long, value_enum, default_value = "text")]
        format: commands::runs::RunsFormat,
    },
    #[cfg(feature = "journal")]
    /// Maintain the journal (`[journal]`).
    Journal {
        #[command(subcommand)]
        action: JournalAction,
    },
    /// Feed and inspect the queues and dead letters of the file's connectors.
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

/// `list`'s journal filters.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("lineage").args(["parent", "root"])))]
struct ListNodes {
    /// Only the children of this transaction.
    #[arg(long)]
    parent: Option<String>,
    /// Only the transactions of this root's lineage.
    #[arg(long)]
    root: Option<String>,
    /// Only those in this status: `queued`, `succeeded`, `failed`, `cancelled` (with
    /// `--parent` or `--root`).
    #[arg(long, requires = "lineage")]
    status: Option<String>,
    /// At most this many, oldest first (with `--parent` or `--root`).
    #[arg(long, default_value_t = 1_000)]
    limit: usize,
    /// One JSON object per line (with `--parent` or `--root`).
    #[arg(long, requires = "lineage")]
    json: bool,
}

#[cfg(feature = "journal")]
#[derive(Debug, Subcommand)]
enum JournalAction {
    /// Delete the records that ended more than `--older-than` ago (default: the file's
    /// `journal.retention`).
    Purge {
        /// How old, e.g. `7d`, `12h`.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
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
    /// Show each queue's counts (local: ready, in flight, expired, dead).
    Stats {
        /// Connectors; every one that keeps dead letters when none is named.
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
        Command::List { nodes } if nodes.parent.is_some() || nodes.root.is_some() => {
            journal::list(&cli.config, nodes).await
        }
        #[cfg(feature = "journal")]
        Command::Get { id, json } => journal::get(&cli.config, &id, json).await,
        #[cfg(feature = "journal")]
        Command::Trace { id, format } => journal::trace(&cli.config, &id, format).await,
        #[cfg(feature = "journal")]
        Command::Runs {
            status,
            limit,
            format,
        } => journal::runs(&cli.config, status.as_deref(), limit, format).await,
        #[cfg(feature = "journal")]
        Command::Journal {
            action: JournalAction::Purge { older_than },
        } => journal::purge(&cli.config, older_than).await,
        Command::List { .. } => {
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
        Command::Queue { action } => queue(&cli.config, registry, action).await,
        Command::Process { name, payload, id } => match load(&cli.config, registry) {
            Ok(plan) => commands::process::run(&plan, &name, &id, &payload).await,
            Err(err) => Err(err),
        },
    };
    result.unwrap_or_else(|err| config_error(&err))
}

async fn queue(
    file: &std::path::Path,
    registry: &Registry,
    action: QueueAction,
) -> Result<u8, ConfigError> {
    let loaded = config::load(file)?;
    let (out, code) = match action {
        QueueAction::Enqueue {
            connector,
            file,
            strict,
        } => (enqueue(&loaded, &connector, file.as_deref(), strict)?, 0),
        QueueAction::Stats { connectors } => {
            commands::queue::stats(&loaded, registry, &connectors).await?
        }
        QueueAction::DeadLetters { connector, limit } => (
            commands::queue::dead_letters(&loaded, registry, &connector, limit).await?,
            0,
        ),
        QueueAction::RequeueDead { connector } => (
            commands::queue::requeue_dead(&loaded, registry, &connector).await?,
            0,
        ),
    };
    print!("{out}");
    Ok(code)
}

#[cfg(feature = "local")]
use commands::queue::enqueue;

/// Without the `local` feature there are no local queues to enqueue into.
#[cfg(not(feature = "local"))]
fn enqueue(
    loaded: &config::LoadedConfig,
    _connector: &str,
    _source: Option<&std::path::Path>,
    _strict: bool,
) -> Result<String, ConfigError> {
    Err(ConfigError::new(
        &loaded.file,
        "connectors",
        "`queue enqueue` writes into local queues (`type = \"local\"`), and this binary \
         was built without ergon-runner's `local` feature",
    ))
}

/// Without the `journal` feature nothing is journaled to list.
#[cfg(not(feature = "journal"))]
mod journal {
    use super::ListNodes;
    use crate::config::ConfigError;

    pub(super) async fn list(file: &std::path::Path, _: ListNodes) -> Result<u8, ConfigError> {
        Err(ConfigError::new(
            file,
            "journal",
            "`list --parent/--root` reads the journal, and this binary was built without \
             ergon-runner's `journal` feature",
        ))
    }
}

/// The journal commands: each reads the file's `[journal]` only.
#[cfg(feature = "journal")]
mod journal {
    use std::path::Path;
    use std::time::Duration;

    use ergon_journal::{Filter, Status};

    use super::ListNodes;
    use crate::commands::journal::{self as command, JournalFile};
    use crate::commands::runs::{self, RunsFormat};
    use crate::commands::trace::{self, TraceFormat};
    use crate::config::{self, ConfigError};

    async fn open(file: &Path) -> Result<JournalFile, ConfigError> {
        JournalFile::open(&config::load(file)?).await
    }

    /// Prints `out` (to stderr when the command failed) and passes its exit code on.
    fn print((out, code): (String, u8)) -> u8 {
        if code == 0 {
            print!("{out}");
        } else {
            eprint!("ergon-runner: {out}");
        }
        code
    }

    pub(super) async fn list(file: &Path, nodes: ListNodes) -> Result<u8, ConfigError> {
        let status = match nodes.status.as_deref() {
            None => None,
            Some(name) => Some(Status::named(name).ok_or_else(|| {
                ConfigError::new(
                    file,
                    "",
                    format!(
                        "--status {name}: expected `queued`, `succeeded`, `failed` or `cancelled`"
                    ),
                )
            })?),
        };
        let filter = Filter {
            parent: nodes.parent,
            root: nodes.root,
            status,
            limit: nodes.limit,
        };
        print!(
            "{}",
            command::list(&open(file).await?, &filter, nodes.json).await?
        );
        Ok(0)
    }

    pub(super) async fn get(file: &Path, id: &str, json: bool) -> Result<u8, ConfigError> {
        Ok(print(command::get(&open(file).await?, id, json).await?))
    }

    pub(super) async fn trace(
        file: &Path,
        id: &str,
        format: TraceFormat,
    ) -> Result<u8, ConfigError> {
        Ok(print(trace::trace(&open(file).await?, id, format).await?))
    }

    pub(super) async fn runs(
        file: &Path,
        status: Option<&str>,
        limit: usize,
        format: RunsFormat,
    ) -> Result<u8, ConfigError> {
        print!(
            "{}",
            runs::runs(&open(file).await?, status, limit, format).await?
        );
        Ok(0)
    }

    pub(super) async fn purge(
        file: &Path,
        older_than: Option<Duration>,
    ) -> Result<u8, ConfigError> {
        print!("{}", command::purge(&open(file).await?, older_than).await?);
        Ok(0)
    }
}

fn load(file: &std::path::Path, registry: &Registry) -> Result<Plan, ConfigError> {
    Plan::build(&config::load(file)?, registry)
}

fn config_error(err: &ConfigError) -> u8 {
    eprintln!("ergon-runner: config error: {err}");
    EXIT_CONFIG
}

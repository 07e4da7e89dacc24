//! The shape of the config file. Field doc comments are the TOML reference.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[tasks.NAME]`: the tasks to run, keyed by name.
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskConfig>,
    /// `[connectors.NAME]`: where transactions come from and go to; each has a `type`.
    #[serde(default)]
    pub connectors: BTreeMap<String, serde_json::Value>,
    /// `[services.NAME]`: capabilities tasks call; each has a `type`.
    #[serde(default)]
    pub services: BTreeMap<String, serde_json::Value>,
    /// `[journal]`: the durable record of every completion (`ergon_journal::JournalConfig`);
    /// absent: no journal.
    #[serde(default)]
    pub journal: Option<serde_json::Value>,
    /// `[workflows.NAME]`: DAG runs started by a connector's transactions
    /// (`crate::workflows::WorkflowConfig`; needs a `[journal]`).
    #[serde(default)]
    pub workflows: BTreeMap<String, serde_json::Value>,
    /// `[telemetry]`: traces, metrics, logs, health.
    #[serde(default)]
    pub telemetry: crate::telemetry::TelemetryConfig,
}

/// One `[tasks.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// The task implementation, as registered in this binary (`ergon-runner list`).
    #[serde(rename = "type")]
    pub implementation: String,
    /// The connector transactions are consumed from (consumers).
    pub input: Option<String>,
    /// The connector the task sends transactions to.
    pub output: Option<String>,
    /// Services injected into the task, by name.
    #[serde(default)]
    pub services: Vec<String>,
    /// Independent loops running this task, each with its own connectors, `1..=1024`
    /// ([`MAX_WORKERS`](Self::MAX_WORKERS)). Default: 1.
    #[serde(default = "one")]
    pub workers: usize,
    /// The policy table of the task's role: `ConsumerPolicy`, `ProducerPolicy` or
    /// `HybridPolicy` (see `ergon_core::policy`).
    #[serde(default)]
    pub policy: Option<serde_json::Value>,
    /// The task's own settings, free-form, decoded by the task.
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
    /// The continuations sent once a transaction of this task is terminal: `"task"`,
    /// `{ task = "...", when = "success" | "failure" | "always" }`, or a list of those
    /// (needs a `[journal]`; `ergon_journal::OnComplete`).
    #[serde(default)]
    pub on_complete: Option<serde_json::Value>,
    /// Tags every transaction the task sends carries (what it dispatches and what it
    /// spawns); children of those inherit them. A tagged fan-in (`consumes`) collects
    /// them.
    #[serde(default)]
    pub produces: Vec<String>,
    /// A tagged fan-in: `{ tags = [...], from = [...], batch_size = N, timeout = "...",
    /// group_by = "tag" | "root" | "parent", include_failed = true }`; the task receives
    /// batches of results on its input (needs a `[journal]`; `ergon_journal::Consumes`).
    #[serde(default)]
    pub consumes: Option<serde_json::Value>,
}

impl TaskConfig {
    /// A task of built-in `implementation` reading `input`, with `policy` and `settings`
    /// (a workflow's start task).
    pub fn builtin(
        implementation: &str,
        input: &str,
        policy: Option<serde_json::Value>,
        settings: serde_json::Value,
    ) -> Self {
        Self {
            implementation: implementation.to_owned(),
            input: Some(input.to_owned()),
            output: None,
            services: Vec::new(),
            workers: 1,
            policy,
            settings: Some(settings),
            on_complete: None,
            produces: Vec::new(),
            consumes: None,
        }
    }

    /// Largest `workers`: each worker opens its own connectors (a file handle, a broker
    /// channel, a database connection), which operating systems and brokers bound.
    pub const MAX_WORKERS: usize = 1_024;
}

fn one() -> usize {
    1
}

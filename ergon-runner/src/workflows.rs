//! `[workflows.NAME]`: DAG runs declared in the config file, each started by a
//! transaction of its `start` connector.
//!
//! ```toml
//! [workflows.document]
//! start = "documents"          # one run per transaction (run id = transaction id)
//! timeout = "10m"
//! on_complete = "report"       # receives {run_id, workflow, status, results, failed, skipped, cancelled}
//!
//! [[workflows.document.nodes]]
//! name = "extract"
//! task = "text_extraction"
//!
//! [[workflows.document.nodes]]
//! name = "summary"
//! task = "summarize"
//! depends_on = ["extract"]
//! input = { text = "{{ results.extract.text }}" }
//! ```
//!
//! Each workflow becomes a task of the same name: a built-in consumer (`start_run`)
//! reading `start`, which starts one run per transaction through the journal. Its plan is
//! checked with the rest of the file — tasks the journal can hand work to, dependencies,
//! cycles, templates — so a run never starts from a plan that cannot run.

use std::collections::BTreeMap;
use std::time::Duration;

use ergon_core::config::{ConfigIssue, decode};
use ergon_core::journal::dag::{PlanLimits, PlannedGroup, PlannedNode, RunPlan};
use ergon_core::{Consumer, Context, TaskError, Transaction};
use ergon_journal::Routes;
use ergon_journal::run::{self, Expanders};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, LoadedConfig, TaskConfig};
use crate::journal::JournalPlan;

/// The task implementation every workflow's start task runs.
pub const START_RUN: &str = "start_run";

/// One `[workflows.NAME]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    /// The connector whose transactions start runs (one each; the run's id is the
    /// transaction's, its input the transaction's payload).
    pub start: String,
    /// How long a run may take: then its unfinished nodes are cancelled and it ends
    /// `timed_out`, partial results kept.
    #[serde(default, with = "ergon_core::policy::duration::option")]
    pub timeout: Option<Duration>,
    /// The task receiving each run's result.
    #[serde(default)]
    pub on_complete: Option<String>,
    /// The most nodes of one run running at once.
    #[serde(default)]
    pub max_parallel: Option<u32>,
    /// The nodes.
    pub nodes: Vec<PlannedNode>,
    /// Groups of nodes (`depends_on = ["group:NAME"]`).
    #[serde(default)]
    pub groups: BTreeMap<String, PlannedGroup>,
    /// The start task's policy (`ConsumerPolicy`).
    #[serde(default)]
    pub policy: Option<serde_json::Value>,
}

impl WorkflowConfig {
    /// Its plan.
    pub fn plan(&self) -> RunPlan {
        RunPlan {
            nodes: self.nodes.clone(),
            groups: self.groups.clone(),
        }
    }
}

/// The workflows of `loaded`, decoded.
///
/// # Errors
///
/// A malformed table, named by its key.
pub fn workflows(loaded: &LoadedConfig) -> Result<BTreeMap<String, WorkflowConfig>, ConfigError> {
    loaded
        .config
        .workflows
        .iter()
        .map(|(name, table)| {
            let at = |issue: ConfigIssue| {
                ConfigError::from_issue(&loaded.file, &format!("workflows.{name}"), issue)
            };
            Ok((name.clone(), decode(table.clone()).map_err(at)?))
        })
        .collect()
}

/// The start task of each workflow: `[tasks.NAME]` of type [`START_RUN`] reading the
/// workflow's `start` connector.
///
/// # Errors
///
/// A workflow named like a task of the file.
pub fn start_tasks(
    loaded: &LoadedConfig,
    workflows: &BTreeMap<String, WorkflowConfig>,
) -> Result<Vec<(String, TaskConfig)>, ConfigError> {
    workflows
        .iter()
        .map(|(name, workflow)| {
            if loaded.config.tasks.contains_key(name) {
                return Err(ConfigError::new(
                    &loaded.file,
                    format!("workflows.{name}"),
                    format!(
                        "a workflow runs as a task of its name, and `[tasks.{name}]` exists: \
                         rename one"
                    ),
                ));
            }
            let settings = serde_json::to_value(StartSettings {
                workflow: name.clone(),
                plan: workflow.plan(),
                timeout_ms: workflow
                    .timeout
                    .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
                on_complete: workflow.on_complete.clone(),
                max_parallel: workflow.max_parallel,
            })
            .map_err(|err| {
                ConfigError::new(&loaded.file, format!("workflows.{name}"), err.to_string())
            })?;
            Ok((
                name.clone(),
                TaskConfig::builtin(
                    START_RUN,
                    &workflow.start,
                    workflow.policy.clone(),
                    settings,
                ),
            ))
        })
        .collect()
}

/// Checks that there is a `journal` to run `workflows`, and each workflow's
/// plan against the tasks it can hand work to and the expanders registered, and its
/// `on_complete` target.
///
/// # Errors
///
/// The first problem, at `workflows.NAME`.
pub fn check_journal(
    loaded: &LoadedConfig,
    workflows: &BTreeMap<String, WorkflowConfig>,
    journal: Option<&JournalPlan>,
    expanders: &Expanders,
) -> Result<(), ConfigError> {
    let Some(name) = workflows.keys().next() else {
        return Ok(());
    };
    let refused =
        |message: &str| ConfigError::new(&loaded.file, format!("workflows.{name}"), message);
    match journal {
        None => Err(refused(
            "a workflow's runs are advanced by the journal: add a `[journal]` table",
        )),
        Some(journal) => check(loaded, workflows, &journal.routes, expanders),
    }
}

/// Checks each workflow's plan against `routes` and `expanders`, and its `on_complete`.
fn check(
    loaded: &LoadedConfig,
    workflows: &BTreeMap<String, WorkflowConfig>,
    routes: &Routes,
    expanders: &Expanders,
) -> Result<(), ConfigError> {
    for (name, workflow) in workflows {
        let at = |sub: &str, message: String| {
            ConfigError::new(&loaded.file, format!("workflows.{name}{sub}"), message)
        };
        run::check(&workflow.plan(), routes, expanders, PlanLimits::default()).map_err(|err| {
            let hint = if err.to_string().contains("not a task this run may use") {
                format!("; tasks the journal can hand work to: {}", routes.targets())
            } else {
                String::new()
            };
            at(".nodes", format!("{err}{hint}"))
        })?;
        if let Some(task) = &workflow.on_complete {
            routes
                .check("on_complete", task)
                .map_err(|err| at(".on_complete", err.to_string()))?;
        }
    }
    Ok(())
}

/// What a start task knows of its workflow (its `settings`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartSettings {
    workflow: String,
    plan: RunPlan,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    on_complete: Option<String>,
    #[serde(default)]
    max_parallel: Option<u32>,
}

/// `type = "start_run"`: starts a run of its workflow per input transaction (the run's
/// id is the transaction's, so a redelivered transaction starts nothing twice).
#[derive(Debug)]
pub struct StartRun {
    settings: StartSettings,
}

impl StartRun {
    /// The start task of the workflow in `cx`'s settings.
    ///
    /// # Errors
    ///
    /// Settings that are not a workflow's.
    pub fn from_context(cx: &Context) -> Result<Self, TaskError> {
        Ok(Self {
            settings: cx.settings()?,
        })
    }
}

impl Consumer for StartRun {
    type Output = String;

    async fn process_transaction(
        &self,
        cx: &Context,
        tx: &Transaction,
    ) -> Result<String, TaskError> {
        let settings = &self.settings;
        let mut run = cx
            .start_run(tx, settings.plan.clone())
            .workflow(settings.workflow.clone());
        if let Some(timeout) = settings.timeout_ms {
            run = run.timeout(Duration::from_millis(timeout));
        }
        if let Some(task) = &settings.on_complete {
            run = run.on_complete(task.clone());
        }
        if let Some(max) = settings.max_parallel {
            run = run.max_parallel(max);
        }
        run.start().await
    }

    fn journal_output(&self, run_id: &String) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "run_id": run_id }))
    }
}

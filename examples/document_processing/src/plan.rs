//! `plan`, the orchestrator: it decomposes each document into a DAG run of the workers
//! and starts it; the journal then hands each node to its worker's queue as its
//! dependencies allow, and sends the run's result to `publish` when it ends.
//!
//! A planner chooses the run's shape: which workers, and what runs after what. Offline
//! the plan is made in code ([`code_plan`]); with `settings.model` it is written by an
//! `llm` service, in the JSON schema of [`RunPlan::json_schema`], so a model can only
//! name declared workers. Either shape then goes through the same two steps in code:
//! every node is named after its worker ([`named_by_task`]), and gets the input its
//! worker reads ([`wire`]): an input template over the run's results, the expansion of
//! `summarize` over the detected languages, and a dependency on every node it reads.
//! The journal validates the result as it validates any plan (tasks it can hand work to,
//! dependencies that exist, no cycle) before the run starts.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use ergon_core::journal::dag::{Expand, OutputMode, PlannedNode, RunPlan};
use ergon_core::{Consumer, Context, TaskError, Transaction};
use ergon_services::llm::{Llm, Message};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::llm_service;

/// The text extraction worker (`[tasks.extract]`).
pub const EXTRACT: &str = "extract";
/// The language detection worker.
pub const DETECT_LANGUAGE: &str = "detect_language";
/// The summarization worker, run once per detected language.
pub const SUMMARIZE: &str = "summarize";
/// The topic extraction worker.
pub const TOPICS: &str = "topics";
/// The sentiment analysis worker.
pub const SENTIMENT: &str = "sentiment";
/// The report formatting worker.
pub const FORMAT_REPORT: &str = "format_report";
/// The task a run's result goes to when the run ends.
pub const PUBLISH: &str = "publish";

/// A worker a plan may use: its task, what it does (for the model), the workers whose
/// results its input needs, and those it uses when the plan runs them.
struct Worker {
    task: &'static str,
    does: &'static str,
    needs: &'static [&'static str],
    uses: &'static [&'static str],
}

/// Every worker a plan may use.
const WORKERS: [Worker; 6] = [
    Worker {
        task: EXTRACT,
        does: "extracts the document's text (markup removed, whitespace normalized)",
        needs: &[],
        uses: &[],
    },
    Worker {
        task: DETECT_LANGUAGE,
        does: "detects the languages the text is written in",
        needs: &[EXTRACT],
        uses: &[],
    },
    Worker {
        task: SUMMARIZE,
        does: "summarizes the text, once per detected language",
        needs: &[DETECT_LANGUAGE],
        uses: &[],
    },
    Worker {
        task: TOPICS,
        does: "finds the text's main topics",
        needs: &[EXTRACT, DETECT_LANGUAGE],
        uses: &[],
    },
    Worker {
        task: SENTIMENT,
        does: "rates the text's sentiment: positive, negative or neutral",
        needs: &[EXTRACT, DETECT_LANGUAGE],
        uses: &[],
    },
    Worker {
        task: FORMAT_REPORT,
        does: "formats the report from the analyses; the last step",
        needs: &[EXTRACT, DETECT_LANGUAGE],
        uses: &[SUMMARIZE, TOPICS, SENTIMENT],
    },
];

/// `plan`'s settings.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PlanSettings {
    /// The `llm` service that writes the plans (listed in the task's `services`); none:
    /// the plan is made in code.
    model: Option<String>,
    /// How long a document's run may take before its unfinished nodes are cancelled.
    /// Default: `"2m"`.
    #[serde(with = "ergon_core::policy::duration")]
    timeout: Duration,
    /// Nodes (or items) of one run that may run at once. Default: 4.
    max_parallel: u32,
}

impl Default for PlanSettings {
    fn default() -> Self {
        Self {
            model: None,
            timeout: Duration::from_secs(120),
            max_parallel: 4,
        }
    }
}

/// The orchestrator: a document → a run of the workers, with the document's id as the
/// run's (a document enqueued again starts no second run).
pub struct Plan {
    settings: PlanSettings,
    model: Option<Arc<Llm>>,
}

impl Plan {
    /// Reads `settings` (`model`, `timeout`, `max_parallel`), then the model's service
    /// if named.
    ///
    /// # Errors
    ///
    /// Bad settings; a named service that is not an injected `llm` service.
    pub fn from_context(cx: &Context) -> Result<Self, TaskError> {
        let settings: PlanSettings = cx.settings()?;
        let model = llm_service(cx, settings.model.as_deref())?;
        Ok(Self { settings, model })
    }

    /// Who plans: `"code"` or `"llm service `NAME`"`.
    fn planner(&self) -> String {
        match &self.settings.model {
            Some(name) => format!("llm service `{name}`"),
            None => "code".into(),
        }
    }
}

impl Consumer for Plan {
    type Output = Value;

    async fn process_transaction(
        &self,
        cx: &Context,
        tx: &Transaction,
    ) -> Result<Value, TaskError> {
        let shape = match &self.model {
            Some(llm) => model_plan(llm, &tx.payload_value()).await?,
            None => code_plan(),
        };
        let plan = wire(named_by_task(shape)?)?;
        let nodes: Vec<String> = plan.nodes.iter().map(|node| node.name.clone()).collect();
        let run_id = cx
            .start_run(tx, plan)
            .on_complete(PUBLISH)
            .timeout(self.settings.timeout)
            .max_parallel(self.settings.max_parallel)
            .start()
            .await?;
        Ok(json!({ "run_id": run_id, "planner": self.planner(), "nodes": nodes }))
    }

    fn journal_output(&self, output: &Value) -> Option<Value> {
        Some(output.clone())
    }
}

/// The plan made in code: extract → detect the languages → summarize (per language),
/// topics and sentiment in parallel → format the report.
pub fn code_plan() -> RunPlan {
    let analyses = [SUMMARIZE, TOPICS, SENTIMENT];
    let mut nodes = vec![
        PlannedNode::new(EXTRACT, EXTRACT),
        PlannedNode::new(DETECT_LANGUAGE, DETECT_LANGUAGE).after([EXTRACT]),
    ];
    nodes.extend(analyses.map(|task| PlannedNode::new(task, task).after([DETECT_LANGUAGE])));
    nodes.push(PlannedNode::new(FORMAT_REPORT, FORMAT_REPORT).after(analyses));
    RunPlan::new(nodes)
}

/// The plan `llm` writes for `document`, in [`RunPlan::json_schema`] of the workers.
async fn model_plan(llm: &Llm, document: &Value) -> Result<RunPlan, TaskError> {
    let tasks = WORKERS.map(|worker| worker.task);
    let schema = RunPlan::json_schema(&tasks);
    let messages = [
        Message::system(planner_instructions()),
        Message::user(describe(document)),
    ];
    llm.structured(&messages, "run_plan", &schema).await
}

/// What the model is told: the workers, what each needs, how a plan is written.
fn planner_instructions() -> String {
    let mut text = String::from(
        "You plan the analysis of a document as a graph of nodes. Each node runs one of \
         the workers below (its `task`), each worker at most once; `depends_on` names the \
         nodes that must end first; `trigger` is `all_succeeded` unless a node should run \
         whatever happened before it. Run independent analyses in parallel. Workers:\n",
    );
    for worker in &WORKERS {
        let _ = write!(text, "- {}: {}", worker.task, worker.does);
        if !worker.needs.is_empty() {
            let _ = write!(text, " (needs {})", worker.needs.join(", "));
        }
        text.push('\n');
    }
    text
}

/// The document as the model sees it: its id, title, length and beginning.
fn describe(document: &Value) -> String {
    let text = document["text"].as_str().unwrap_or_default();
    let beginning: String = text.chars().take(600).collect();
    format!(
        "Document `{}`, titled {}, {} characters. It begins:\n{beginning}",
        document["id"].as_str().unwrap_or("?"),
        document["title"],
        text.chars().count()
    )
}

/// `plan` with every node named after its task, which the input templates refer to
/// (`results.extract.text`), dependencies renamed alike.
///
/// # Errors
///
/// Two nodes with one name, or running one task.
pub fn named_by_task(mut plan: RunPlan) -> Result<RunPlan, TaskError> {
    let mut names = BTreeSet::new();
    let mut tasks = BTreeSet::new();
    for node in &plan.nodes {
        if !names.insert(node.name.clone()) || !tasks.insert(node.task.clone()) {
            return Err(TaskError::business(format!(
                "the plan runs node `{}` (task `{}`) twice: each worker runs once per document",
                node.name, node.task
            )));
        }
    }
    let task_of = |name: &str| {
        plan.nodes
            .iter()
            .find(|node| node.name == name)
            .map(|node| node.task.clone())
    };
    let renamed: Vec<Vec<String>> = plan
        .nodes
        .iter()
        .map(|node| {
            node.depends_on
                .iter()
                .map(|up| task_of(up).unwrap_or_else(|| up.clone()))
                .collect()
        })
        .collect();
    for (node, depends_on) in plan.nodes.iter_mut().zip(renamed) {
        node.name.clone_from(&node.task);
        node.depends_on = depends_on;
    }
    Ok(plan)
}

/// `plan` (nodes named after their tasks) with each worker's input: its template, the
/// expansion of `summarize` over the detected languages (one item per language, keyed
/// by it, outputs kept apart), and a dependency on each node it reads that is not
/// already upstream of it.
///
/// # Errors
///
/// A node needs a worker the plan does not run.
pub fn wire(mut plan: RunPlan) -> Result<RunPlan, TaskError> {
    let planned: BTreeSet<String> = plan.nodes.iter().map(|n| n.task.clone()).collect();
    for at in 0..plan.nodes.len() {
        let task = plan.nodes[at].task.clone();
        let Some(worker) = WORKERS.iter().find(|worker| worker.task == task) else {
            continue; // Not a worker: the journal refuses the plan.
        };
        if let Some(missing) = worker.needs.iter().find(|need| !planned.contains(**need)) {
            return Err(TaskError::business(format!(
                "the plan runs `{task}` but not `{missing}`, whose results `{task}` reads"
            )));
        }
        let reads = worker.needs.iter().chain(worker.uses).copied();
        let reads: Vec<&str> = reads.filter(|read| planned.contains(*read)).collect();
        let upstream = upstream_of(&plan.nodes, &task);
        let node = &mut plan.nodes[at];
        let missing = reads.iter().filter(|read| !upstream.contains(**read));
        node.depends_on
            .extend(missing.map(|read| (*read).to_owned()));
        node.input = Some(input_of(&task, &reads));
        if task == SUMMARIZE {
            node.expand = Some(Expand {
                key: Some("{{ lang }}".into()),
                ..Expand::over("{{ results.detect_language.languages }}").named("lang")
            });
            node.output = OutputMode::Separate;
        }
    }
    Ok(plan)
}

/// Every node `name` waits for, directly or not.
fn upstream_of(nodes: &[PlannedNode], name: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![name.to_owned()];
    while let Some(at) = pending.pop() {
        let Some(node) = nodes.iter().find(|node| node.name == at) else {
            continue;
        };
        for up in &node.depends_on {
            if found.insert(up.clone()) {
                pending.push(up.clone());
            }
        }
    }
    found
}

/// The input template of a node of `task`, over the results of `reads` (nodes are named
/// after their tasks). The journal renders it when the node is ready; a lone expression
/// keeps its value's type (an array stays an array).
fn input_of(task: &str, reads: &[&str]) -> Value {
    match task {
        EXTRACT => json!("{{ input }}"),
        DETECT_LANGUAGE => json!({ "text": "{{ results.extract.text }}" }),
        SUMMARIZE => json!({
            "lang": "{{ lang }}",
            "text": "{{ results.detect_language.sections[lang] }}",
        }),
        TOPICS | SENTIMENT => json!({
            "text": "{{ results.extract.text }}",
            "languages": "{{ results.detect_language.languages }}",
        }),
        _ => {
            let mut findings = json!({
                "id": "{{ run.id }}",
                "title": "{{ results.extract.title }}",
                "languages": "{{ results.detect_language.languages }}",
            });
            let optional = [
                (SUMMARIZE, "summaries", "{{ results.summarize }}"),
                (TOPICS, "topics", "{{ results.topics.topics }}"),
                (SENTIMENT, "sentiment", "{{ results.sentiment }}"),
            ];
            for (read, field, template) in optional {
                if reads.contains(&read) {
                    findings[field] = template.into();
                }
            }
            findings
        }
    }
}

#[cfg(test)]
mod tests {
    use ergon_core::journal::dag::PlanLimits;

    use super::*;

    fn valid(plan: RunPlan) -> Vec<String> {
        let tasks = WORKERS.map(|worker| worker.task);
        let valid = plan
            .validate(|task| tasks.contains(&task), PlanLimits::default())
            .unwrap();
        valid.order().into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn the_code_plan_is_wired_without_extra_edges() {
        let plan = wire(named_by_task(code_plan()).unwrap()).unwrap();
        let report = plan.nodes.last().unwrap();
        assert_eq!(report.depends_on, [SUMMARIZE, TOPICS, SENTIMENT]);
        assert_eq!(
            report.input.as_ref().unwrap()["topics"],
            "{{ results.topics.topics }}"
        );
        let summarize = plan.nodes.iter().find(|n| n.task == SUMMARIZE).unwrap();
        assert_eq!(summarize.output, OutputMode::Separate);
        assert_eq!(
            valid(plan),
            [
                EXTRACT,
                DETECT_LANGUAGE,
                SUMMARIZE,
                TOPICS,
                SENTIMENT,
                FORMAT_REPORT
            ]
        );
    }

    #[test]
    fn a_model_plan_is_renamed_and_gets_the_edges_its_inputs_need() {
        let shape: RunPlan = serde_json::from_value(json!({ "nodes": [
            { "name": "a", "task": "extract", "depends_on": [], "trigger": "all_succeeded" },
            { "name": "b", "task": "detect_language", "depends_on": ["a"], "trigger": "all_succeeded" },
            { "name": "c", "task": "sentiment", "depends_on": ["b"], "trigger": "all_succeeded" },
            { "name": "d", "task": "format_report", "depends_on": [], "trigger": "all_done" },
        ]}))
        .unwrap();
        let plan = wire(named_by_task(shape).unwrap()).unwrap();
        let report = plan.nodes.last().unwrap();
        assert_eq!(report.name, FORMAT_REPORT);
        assert_eq!(report.depends_on, [EXTRACT, DETECT_LANGUAGE, SENTIMENT]);
        assert!(report.input.as_ref().unwrap().get("summaries").is_none());
        assert_eq!(valid(plan).last().unwrap(), FORMAT_REPORT);
    }

    #[test]
    fn a_plan_missing_what_a_worker_needs_or_running_one_twice_is_refused() {
        let mut twice = code_plan();
        twice.nodes.push(PlannedNode::new("again", TOPICS));
        let err = named_by_task(twice).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        let mut no_extract = code_plan();
        no_extract.nodes.remove(0);
        let err = wire(named_by_task(no_extract).unwrap()).unwrap_err();
        assert!(err.to_string().contains("not `extract`"), "{err}");
    }
}
